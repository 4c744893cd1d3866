-- batchcall core schema. One model under every API surface.
-- Ids are text with a type prefix ("org_", "acb_", ...): they are what the
-- APIs show, and a prefix makes a pasted id self-describing.

CREATE TABLE tenants (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    plan             text NOT NULL DEFAULT 'go',
    rate_per_min     integer NOT NULL DEFAULT 300 CHECK (rate_per_min >= 0),
    burst            integer NOT NULL DEFAULT 25 CHECK (burst >= 0),
    concurrency      integer NOT NULL DEFAULT 10 CHECK (concurrency >= 1),
    credits_cents    bigint  NOT NULL DEFAULT 0,
    default_region   text    NOT NULL DEFAULT 'us',
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Keys are shown once; only a SHA-256 of the whole key is kept. The prefix
-- (the first characters of the random part) finds the row without a scan.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    kind        text NOT NULL CHECK (kind IN ('secret', 'publishable')),
    lookup      text NOT NULL UNIQUE,
    hash        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE agents (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    name        text NOT NULL,
    region      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_tenant ON agents (tenant_id);

CREATE TABLE phone_numbers (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    number      text NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, number)
);

-- state is what was decided (draft/scheduled/pending/admitted/cancelled);
-- the status an API shows is derived from it and the recipients' counters.
CREATE TABLE batches (
    id                        text PRIMARY KEY,
    tenant_id                 text NOT NULL REFERENCES tenants(id),
    surface                   text NOT NULL,
    name                      text NOT NULL,
    agent_id                  text NOT NULL REFERENCES agents(id),
    from_number_id            text REFERENCES phone_numbers(id),
    from_number               text NOT NULL,
    region                    text NOT NULL,
    target_concurrency_limit  integer NOT NULL CHECK (target_concurrency_limit >= 1),
    ringing_timeout_s         integer NOT NULL DEFAULT 60,
    max_call_duration_min     integer NOT NULL DEFAULT 480,
    max_retries               integer NOT NULL DEFAULT 0,
    scheduled_at              timestamptz,
    timezone                  text NOT NULL DEFAULT 'UTC',
    variables                 jsonb NOT NULL DEFAULT '{}',
    metadata                  jsonb NOT NULL DEFAULT '{}',
    state                     text NOT NULL CHECK (state IN
                                ('draft', 'scheduled', 'pending', 'admitted', 'cancelled')),
    total                     integer NOT NULL,
    retry_count               integer NOT NULL DEFAULT 0,
    admitted_at               timestamptz,
    cancelled_at              timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_tenant_created ON batches (tenant_id, created_at DESC);
CREATE INDEX batches_waiting ON batches (created_at) WHERE state IN ('scheduled', 'pending');

-- status: queued -> dispatched -> started -> completed | failed, or cancelled.
-- released: a job for the current attempt has been handed to Kafka (the
-- window); attempts: calls claimed so far. A job names the attempt it is for,
-- so a stale job can never claim a later attempt.
CREATE TABLE recipients (
    id              text PRIMARY KEY,
    batch_id        text NOT NULL REFERENCES batches(id),
    tenant_id       text NOT NULL,
    seq             integer NOT NULL,
    to_number       text NOT NULL,
    from_number     text,
    metadata        jsonb,
    variables       jsonb,
    max_retries     integer,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN
                      ('queued', 'dispatched', 'started', 'completed', 'failed', 'cancelled')),
    released        boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    end_reason      text,
    error_message   text,
    last_call_id    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (batch_id, seq)
);
-- The backlog: what the window releases next, in order.
CREATE INDEX recipients_backlog ON recipients (batch_id, seq)
    WHERE status = 'queued' AND NOT released;

-- One row per attempt. UNIQUE (recipient_id, attempt) is the last line of
-- defence against a second dial of the same attempt.
CREATE TABLE calls (
    id               text PRIMARY KEY,
    recipient_id     text NOT NULL REFERENCES recipients(id),
    batch_id         text NOT NULL,
    tenant_id        text NOT NULL,
    attempt          integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('claimed', 'dialing', 'queued',
                       'ringing', 'in-progress', 'completed', 'busy', 'no-answer',
                       'failed', 'canceled')),
    carrier          text NOT NULL DEFAULT 'twilio',
    carrier_call_id  text,
    lease_slot       integer,
    lease_token      bigint,
    to_number        text NOT NULL,
    from_number      text NOT NULL,
    end_reason       text,
    duration_s       integer,
    history          jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL DEFAULT now(),
    answered_at      timestamptz,
    ended_at         timestamptz,
    UNIQUE (recipient_id, attempt)
);
CREATE INDEX calls_batch ON calls (batch_id);

-- One row per concurrency slot of an admitted batch. holder/call_id NULL
-- means free. token comes from one sequence, so it only grows: a holder whose
-- lease expired and was re-granted can no longer match it.
CREATE SEQUENCE lease_token_seq;
CREATE TABLE leases (
    batch_id    text NOT NULL REFERENCES batches(id),
    slot        integer NOT NULL,
    token       bigint NOT NULL DEFAULT 0,
    holder      text,
    call_id     text,
    expires_at  timestamptz,
    PRIMARY KEY (batch_id, slot)
);
CREATE INDEX leases_expiry ON leases (expires_at) WHERE call_id IS NOT NULL;

-- Transactional outbox: every Kafka message is first a row written in the
-- same transaction as the state it announces. Publishers delete a row once
-- the broker acknowledged it; the scheduler republishes stragglers.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         text NOT NULL,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Recipients still to finish (admission asks "does this batch still run?")
-- and those released to Kafka but not finished (the window's fill).
CREATE INDEX recipients_active ON recipients (batch_id)
    WHERE status IN ('queued', 'dispatched', 'started');
CREATE INDEX recipients_inflight ON recipients (batch_id)
    WHERE released AND status IN ('queued', 'dispatched', 'started');

-- Every API shows times as RFC 3339 in UTC.
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;
