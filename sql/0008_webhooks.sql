-- Webhook deliveries: one row per (endpoint, event), filled by the webhook
-- consumer from the call-results topic before it stores its Kafka offset,
-- and worked off by senders that claim due rows with SKIP LOCKED. The row is
-- the delivery's whole state, so a sender killed at any instant loses
-- nothing: an unacknowledged claim simply falls due again.
CREATE SEQUENCE webhook_claim_seq;
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       text NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    tenant_id        text NOT NULL,
    event_id         text NOT NULL,      -- the same for every try and every duplicate
    event_type       text NOT NULL,
    payload          text NOT NULL,      -- the exact body, so every try signs the same bytes
    status           text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,   -- tries that got an outcome
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claim_token      bigint,             -- the sender holding it; results must match
    last_status      integer,            -- HTTP status of the last try (NULL: no answer)
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
-- What senders look for: due rows, oldest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
-- The API's listing of one endpoint's deliveries, newest first.
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at DESC, id DESC);
