-- Fair reservations. A batch's reservation against its tenant's concurrency
-- is its lease rows: min(its limit, recipients still to finish) of them at
-- admission, and the scheduler deletes free ones a draining batch can no
-- longer use, so the tenant's reservation is count(leases), not the sum of
-- the limits. And a region with no live worker admits nothing: its batches
-- wait, saying so, instead of holding slots nobody can use.

-- Workers say they are alive: each upserts its row every lease renewal
-- (a third of BC_LEASE_TTL) with expires_at one TTL ahead, and deletes it
-- when it drains. A row past expires_at is a worker that died.
CREATE TABLE workers (
    holder      text PRIMARY KEY,          -- the lease holder name it claims with
    region      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX workers_region ON workers (region, expires_at);

-- Why a batch not yet admitted waits: 'concurrency' (its tenant's slots
-- are reserved by other batches) or 'region' (no live worker in its
-- region). NULL once admitted, and for drafts and batches not yet due.
ALTER TABLE batches ADD COLUMN wait_reason text
    CHECK (wait_reason IN ('concurrency', 'region'));

-- The scheduler's sweep of free slots looks them up per batch.
CREATE INDEX leases_free ON leases (batch_id) WHERE call_id IS NULL;

-- 1 if a worker of region r is alive now.
CREATE FUNCTION region_has_workers(r text) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT EXISTS (SELECT 1 FROM workers w WHERE w.region = r AND w.expires_at > now()) $$;

-- The slots batch b can use: min(lim, its recipients still to finish),
-- counted no further than lim (a batch of a million reads lim index rows).
CREATE FUNCTION batch_slots_needed(b text, lim integer) RETURNS integer LANGUAGE sql STABLE AS
$$ SELECT count(*)::integer FROM (SELECT 1 FROM recipients r WHERE r.batch_id = b
      AND r.status IN ('queued', 'dispatched', 'started') LIMIT greatest(lim, 0)) x $$;
