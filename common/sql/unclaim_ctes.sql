-- CTEs that undo the claims a pause left behind in the batches of a CTE
-- pb(id), which must precede them: calls claimed and never sent.
-- dial_start sends a claim only while its batch is admitted, so no claim
-- of a held batch can be sent any more. Each call row goes, its lease slot
-- is freed (while its token is current) and its recipient is queued again
-- for the same attempt, released nowhere. A claim sent meanwhile
-- ('dialing') is left alone: the delete re-checks the row it waited for.
-- Open calls only, so the lookup goes through calls_open, not the batch's
-- every call. Defines uc (the undone calls), ul, ur.
 uc AS (DELETE FROM calls WHERE calls.ended_at IS NULL
          AND calls.status = 'claimed' AND calls.batch_id IN (SELECT id FROM pb)
        RETURNING calls.id, calls.recipient_id, calls.batch_id, calls.attempt,
                  calls.lease_slot, calls.lease_token),
 ul AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL
          FROM uc WHERE leases.batch_id = uc.batch_id
           AND leases.slot = uc.lease_slot AND leases.token = uc.lease_token
        RETURNING 1),
 ur AS (UPDATE recipients SET status = 'queued', attempts = uc.attempt - 1,
              released = false, updated_at = now(),
              last_call_id = (SELECT p.id FROM calls p
                               WHERE p.recipient_id = uc.recipient_id
                                 AND p.attempt = uc.attempt - 1)
          FROM uc WHERE recipients.id = uc.recipient_id
           AND recipients.status = 'dispatched' AND recipients.last_call_id = uc.id
        RETURNING 1)
