-- Idempotency-Key rows (0003) were kept forever, and with them the first
-- answer of every creating POST, secrets included: a new API key
-- (bc_sk_, bc_pk_) or a webhook's signing secret (whsec_) sat there in
-- clear, and a repeat of the request showed it again. From here on the API
-- stores such an answer with the secret replaced by "redacted" (so a
-- replay shows it redacted too), and a row lives a day: after
-- idempotency_ttl() its key is free again (the API's claim takes it over)
-- and the scheduler deletes it.
--
-- Written to be re-runnable: every statement leaves the same state when
-- applied twice (test_holes.py applies it again over rows it planted).

CREATE OR REPLACE FUNCTION idempotency_ttl() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '24 hours' $$;

-- Rows stored before: every string shaped as a key or a webhook secret is
-- redacted, as the API now stores them.
UPDATE idempotency_keys
   SET response = regexp_replace(response,
           '"(bc_sk_[0-9A-Za-z]{16}_[0-9A-Za-z]{32}|bc_pk_[0-9A-Za-z]{16}_[0-9A-Za-z]{32}|whsec_[0-9A-Za-z]{32})"',
           '"redacted"', 'g')
 WHERE response ~ '"(bc_sk_[0-9A-Za-z]{16}_[0-9A-Za-z]{32}|bc_pk_[0-9A-Za-z]{16}_[0-9A-Za-z]{32}|whsec_[0-9A-Za-z]{32})"';

DELETE FROM idempotency_keys WHERE created_at < now() - idempotency_ttl();
