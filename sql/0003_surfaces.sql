-- What the three API surfaces need beyond the core model.

-- Rymi's /v1/auth/me shows who the tenant is; spend is priced per minute.
ALTER TABLE tenants ADD COLUMN email text;
ALTER TABLE tenants ADD COLUMN price_per_min_cents integer NOT NULL DEFAULT 10
    CHECK (price_per_min_cents >= 0);

-- Agents carry what Rymi's CRUD shows; numbers may be attached to an agent.
ALTER TABLE agents ADD COLUMN config jsonb NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE agents ADD COLUMN deleted_at timestamptz;
ALTER TABLE phone_numbers ADD COLUMN agent_id text REFERENCES agents(id);
ALTER TABLE phone_numbers ADD COLUMN provider text NOT NULL DEFAULT 'twilio';

-- Do-not-call registry: numbers on it are refused before anything is queued.
CREATE TABLE dnc (
    tenant_id   text NOT NULL REFERENCES tenants(id),
    number      text NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, number)
);

CREATE TABLE webhooks (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    url         text NOT NULL,
    events      text[] NOT NULL,
    secret      text NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id);

-- Idempotency-Key: the first response to a creating POST, replayed for the
-- same key and body; a different body under the same key is refused.
CREATE TABLE idempotency_keys (
    tenant_id     text NOT NULL,
    key           text NOT NULL,
    route         text NOT NULL,
    request_hash  text NOT NULL,
    status        integer,          -- NULL while the first request runs
    response      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- Request rate limits: one token bucket per key, shared by every API
-- instance because it lives here.
CREATE TABLE rate_buckets (
    key_id      text PRIMARY KEY,
    tokens      double precision NOT NULL,
    allowed     boolean NOT NULL DEFAULT true,   -- the last request's verdict
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Where a batch came from on the Rymi surface (its caller-supplied batch_id)
-- and on batch-call (draft/scheduled/sent).
ALTER TABLE batches ADD COLUMN external_id text;
ALTER TABLE batches ADD COLUMN post_call jsonb;
ALTER TABLE recipients ADD COLUMN identity text;
CREATE INDEX calls_tenant_created ON calls (tenant_id, created_at DESC);
CREATE INDEX recipients_tenant_status ON recipients (tenant_id, status);
