-- Retry policies: which outcomes are dialed again and when, per batch with
-- per-recipient overrides. Stored as common/bc_retry.c normalises them:
-- {"retry_on": ["busy", "no_answer", "failed", "voicemail"]?,
--  "retry_intervals_s": [s, ...]? | "retry_backoff": {"base_s", "factor",
--  "max_s"}?}. NULL (or a missing key) means the default: retry_on busy,
-- no_answer and failed, waits from the worker's BC_RETRY_BASE_MS. How many
-- retries stays in max_retries (recipients', else the batch's).
ALTER TABLE batches ADD COLUMN retry_policy jsonb;
ALTER TABLE recipients ADD COLUMN retry_policy jsonb;

-- Who answered, as the carrier's answering-machine detection said
-- (Twilio's AnsweredBy: human, machine_end_beep, ...); NULL if not asked.
ALTER TABLE calls ADD COLUMN answered_by text;

-- A recipient's policy over its batch's: its retry_on wins, and its
-- schedule (intervals or back-off) replaces the batch's whole.
CREATE FUNCTION retry_policy_of(batch jsonb, recipient jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN recipient ?| array['retry_intervals_s', 'retry_backoff']
                THEN coalesce(batch, '{}') - 'retry_intervals_s' - 'retry_backoff'
                ELSE coalesce(batch, '{}') END
           || coalesce(recipient, '{}')
$$;

-- Whether an attempt that ended as outcome (busy, no_answer, failed,
-- voicemail, completed, canceled) is one the policy retries.
CREATE FUNCTION retry_listed(policy jsonb, outcome text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(policy->'retry_on', '["busy", "no_answer", "failed"]') ? outcome
$$;

-- Seconds to wait before retry k (1 = the first) under the policy's
-- schedule; NULL when it has none. bc_retry_delay_s() says the same in C.
CREATE FUNCTION retry_delay_s(policy jsonb, k integer) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN policy ? 'retry_intervals_s' THEN
            (policy->'retry_intervals_s'->>(least(greatest(k, 1),
                jsonb_array_length(policy->'retry_intervals_s')) - 1))::double precision
        WHEN policy ? 'retry_backoff' THEN
            least((policy->'retry_backoff'->>'max_s')::double precision,
                  (policy->'retry_backoff'->>'base_s')::double precision
                  * power((policy->'retry_backoff'->>'factor')::double precision,
                          greatest(k, 1) - 1))
    END
$$;
