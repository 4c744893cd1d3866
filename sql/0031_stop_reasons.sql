-- Recipients the tenant's policy kept from being called until their batch
-- expired (docs/api.md, "Tenant policy"). Legal hours defer a recipient and
-- running out of credits pauses its batch; neither ends anything. When the
-- batch's latest_at passes with the recipient still held for one of those
-- reasons, the scheduler's expiry ends it with that reason, as a policy
-- stop ('failed', an attempt that never reached the carrier, its
-- call-result event and webhook: scheduler/bc_expiry.c, "expire_stop"),
-- instead of the plain 'expired' of a recipient the batch's own hours, its
-- window or a tenant pause held back.

-- Set where legal hours defer a recipient (release, claim): the tenant's
-- next legal opening for it, when the legal window was what was closed
-- then; NULL when only the batch's own calling hours were. Meaningful
-- while window_wait; cleared when the recipient is released.
ALTER TABLE recipients ADD COLUMN legal_opens timestamptz;

-- The next opening of the legal window lw (NULL: policy off) for a
-- recipient at t, or NULL when the window is open for it then.
CREATE FUNCTION legal_wait(lw jsonb, rtz text, btz text, number text, t timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
    z text[];
BEGIN
    IF lw IS NULL THEN
        RETURN NULL;
    END IF;
    z := legal_zones(rtz, number, btz);
    IF in_legal_hours(lw, z, t) THEN
        RETURN NULL;
    END IF;
    RETURN next_legal_time(lw, z, t);
END
$$;

-- Why a recipient still queued when its batch's latest_at passed cannot be
-- called, if the tenant's policy is why; NULL for a plain expiry.
-- 'outside_legal_hours': it waits for a legal opening at or after
-- latest_at (so it could never have been called in time, credits or not);
-- 'insufficient_credits': its batch is paused because its tenant could not
-- pay a call. Inlined by the planner (one CASE).
CREATE FUNCTION expiry_stop_reason(window_wait boolean, legal_opens timestamptz,
                                   latest_at timestamptz, state text, pause_reason text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN window_wait AND legal_opens >= latest_at THEN 'outside_legal_hours'
                WHEN state = 'paused' AND pause_reason = 'insufficient_credits'
                    THEN 'insufficient_credits' END
$$;

-- The stops' messages (sql/0018_dnc_gate.sql): policy_stop() follows, and
-- with it every read that counts a batch's blocked recipients and the v1
-- event's end_reason.
CREATE OR REPLACE FUNCTION policy_message(reason text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE reason
        WHEN 'dnc_blocked' THEN 'not dialed: the number is on the tenant''s do-not-call list'
        WHEN 'outside_legal_hours'
            THEN 'not dialed: outside the tenant''s legal calling hours until the batch expired'
        WHEN 'insufficient_credits'
            THEN 'not dialed: the batch was paused for insufficient credits until it expired'
    END
$$;
