-- Tops up a batch's window: releases the next queued recipients (in seq
-- order, due ones only, inside their calling hours, none past the batch's
-- latest_at: the scheduler expires those) until window = slots * $2 jobs
-- are in flight, and writes one job per released recipient to the outbox,
-- in one statement. Jobs are keyed by recipient, not batch, so one batch
-- spreads over every partition and every worker of the region.
-- $1 batch id, $2 window multiple (BC_WINDOW_MULTIPLE), $3 jobs topic.
-- Returns the outbox rows.
--
-- slots: the lease rows the batch holds (at least one, at most its limit),
-- not its limit. A batch admitted with the few slots its tenant had left
-- (another of its batches holds the rest) released limit * $2 jobs that
-- waited in the workers for slots until the other batch ended: a
-- partition's offset is stored only past finished jobs, so every partition
-- stopped committing, and a worker kept every message it consumed
-- meanwhile (the soak at 5927ac8, minute 59: 50 s, 4,976 messages of lag,
-- RSS +3.6 MiB; bench/RESULTS.md, thirtieth session). The scheduler tops a
-- batch up as it grows it.
WITH batch AS (
    SELECT id, LEAST(target_concurrency_limit,
                     GREATEST(1, (SELECT count(*) FROM leases l WHERE l.batch_id = $1)))
               * $2::int AS win,
           calling_hours, timezone, bc_now() AS t,
           tenant_legal_hours(tenant_id) AS lw
      FROM batches WHERE id = $1 AND state = 'admitted'
       AND (latest_at IS NULL OR latest_at > bc_now())),
in_flight AS (
    SELECT count(*) AS n FROM recipients
     WHERE batch_id = $1 AND released
       AND status IN ('queued', 'dispatched', 'started')),
room AS (
    SELECT GREATEST(0, coalesce((SELECT win FROM batch), 0)
                       - (SELECT n FROM in_flight)) AS n),
-- The next due recipients in order, and with calling hours up to 256 more:
-- those outside their own hours (read in their time zone, else the
-- batch's) are deferred to their next opening, holding nothing. Calling
-- hours are the batch's and the tenant's legal window (lw,
-- sql/0023_legal_hours.sql). The hours functions run only when the batch
-- has either: per row they were nine tenths of this statement's time (B2).
candidates AS (
    SELECT r.id, r.seq, r.timezone, r.to_number,
           CASE WHEN batch.calling_hours IS NULL AND batch.lw IS NULL THEN true
                ELSE recipient_open(batch.calling_hours, batch.lw, r.timezone,
                                    batch.timezone, r.to_number, batch.t)
           END AS open,
           CASE WHEN batch.calling_hours IS NOT NULL OR batch.lw IS NOT NULL
                THEN recipient_opens(batch.calling_hours, batch.lw, r.timezone,
                                     batch.timezone, r.to_number, batch.t)
           END AS opens
      FROM batch, LATERAL (SELECT id, seq, timezone, to_number FROM recipients
                            WHERE batch_id = $1 AND status = 'queued'
                              AND NOT released
                              AND (next_attempt_at IS NULL OR next_attempt_at <= batch.t)
                            ORDER BY seq
                            LIMIT (SELECT n FROM room)
                                  + CASE WHEN batch.calling_hours IS NULL AND batch.lw IS NULL
                                         THEN 0 ELSE 256 END
                            FOR UPDATE SKIP LOCKED) r),
-- legal_opens: whether the tenant's legal window is what holds it, which
-- its batch's expiry then says (sql/0031_stop_reasons.sql); looked up for
-- the deferred rows alone.
deferred AS (
    UPDATE recipients SET next_attempt_at = candidates.opens, window_wait = true,
           legal_opens = legal_wait(batch.lw, candidates.timezone, batch.timezone,
                                    candidates.to_number, batch.t),
           updated_at = now()
      FROM candidates, batch WHERE recipients.id = candidates.id AND NOT candidates.open
    RETURNING 1),
-- = ANY(ARRAY(...)), not IN (...): with IN the planner guesses the LIMIT's
-- size and hashes a sequential scan of every recipient (measured: 6 ms at
-- 5,000 rows, growing with the table); ARRAY() makes it look each id up.
newly_released AS (
    UPDATE recipients SET released = true, window_wait = false, legal_opens = NULL,
           updated_at = now()
     WHERE id = ANY(ARRAY(SELECT id FROM candidates WHERE open ORDER BY seq
                          LIMIT (SELECT n FROM room)))
    RETURNING id, batch_id, tenant_id, attempts)
INSERT INTO outbox (topic, key, payload)
SELECT $3, newly_released.id, json_build_object('v', 1, 'recipient_id', newly_released.id,
       'batch_id', newly_released.batch_id, 'tenant_id', newly_released.tenant_id,
       'attempt', newly_released.attempts + 1)::text
  FROM newly_released
RETURNING id, topic, key, payload;
