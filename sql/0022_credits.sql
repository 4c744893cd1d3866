-- Credits that are spent (docs/api.md, "Credits"; common/bc_credits.h).
--
-- A tenant's balance is what it was granted minus what it used:
--   balance = tenants.credits_cents - credit_usage.used_cents
-- tenants.credits_cents only grows by top-ups (`batchcall credits-add`, a
-- tenant's first credit); credit_usage.used_cents is moved by the worker
-- alone: up by a hold before a dial, down by the hold when the call ends,
-- up by the settled cost of an answered call. The worker never locks the
-- tenants row: that row is the lock of admission and of every batch action
-- (tenant, then batch), which the worker's statements take in the other
-- order (batch, then the money); a row of its own keeps them apart.
--
-- Every move is a credit_ledger row that says why: a hold (the cost of the
-- call's maximum duration, taken in the statement that moves the call to
-- 'dialing'), its release when the call ends (whatever the outcome), the
-- settled cost of an answered call (carrier's CallDuration rounded up per
-- started minute, times the price the hold was taken at, never more than
-- the hold), and top-ups. Each is written in the statement that moves the
-- call's status, and that statement acts once per status (the call's
-- status rank and lease token), so a redelivered event or a replayed
-- statement moves no money twice.

-- The price per minute of each plan, in cents. A tenant's price
-- (tenants.price_per_min_cents, sql/0003) is set from its plan when the
-- tenant is created or its plan changes; 'custom' (and any plan not
-- listed) keeps the price it was given (`--price-per-min`).
CREATE TABLE plan_prices (
    plan                text PRIMARY KEY,
    price_per_min_cents integer NOT NULL CHECK (price_per_min_cents >= 0)
);
INSERT INTO plan_prices VALUES ('free', 10), ('go', 10), ('plus', 8);

CREATE TABLE credit_usage (
    tenant_id  text PRIMARY KEY REFERENCES tenants(id),
    used_cents bigint NOT NULL DEFAULT 0
);
INSERT INTO credit_usage (tenant_id) SELECT id FROM tenants;

-- Every tenant has its usage row from its first instant: the worker's
-- statements lock it, and cannot create it and test it in one go.
CREATE FUNCTION credit_usage_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO credit_usage (tenant_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;
CREATE TRIGGER tenants_credit_usage AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION credit_usage_row();

-- cents: the change to the balance (hold and settle negative, release and
-- topup positive). balance_after: the balance once this row applied.
-- minutes and price_per_min_cents: what a hold covers (the call's maximum
-- duration) or what a settlement bills (started minutes).
CREATE TABLE credit_ledger (
    id                  bigserial PRIMARY KEY,
    tenant_id           text NOT NULL REFERENCES tenants(id),
    kind                text NOT NULL CHECK (kind IN ('hold', 'release', 'settle', 'topup')),
    call_id             text,
    batch_id            text,
    cents               bigint NOT NULL,
    balance_after       bigint NOT NULL,
    minutes             integer,
    price_per_min_cents integer,
    actor               text,
    at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_ledger_tenant ON credit_ledger (tenant_id, at);
CREATE INDEX credit_ledger_call ON credit_ledger (call_id) WHERE call_id IS NOT NULL;

-- The call's money: the hold taken before its dial (NULL: none, e.g. a
-- call dialed before this migration, or one not yet dialed), the price it
-- was taken at, and, once ended, the minutes billed and the settled cost
-- (0 for a call not answered).
ALTER TABLE calls ADD COLUMN hold_cents bigint,
                  ADD COLUMN price_per_min_cents integer,
                  ADD COLUMN billed_min integer,
                  ADD COLUMN cost_cents bigint;

-- Why a batch paused itself ('insufficient_credits'); NULL for a pause by
-- the tenant (API) or none. The scheduler resumes the batches paused for
-- credits once their tenant can pay a call of theirs again.
ALTER TABLE batches ADD COLUMN pause_reason text;
CREATE INDEX batches_paused_credits ON batches (tenant_id)
    WHERE state = 'paused' AND pause_reason = 'insufficient_credits';
