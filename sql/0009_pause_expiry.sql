-- Pause and resume (a batch, or every batch of a tenant), and expiry.
-- Nothing here names what later migrations add: on a database that already
-- has them this file runs after them, on a fresh one before.

-- 'paused': admitted, and held. Workers claim only from admitted batches
-- and the window releases only theirs, so a paused batch places no new
-- call; it keeps its concurrency reservation, so resume never waits.
ALTER TABLE batches DROP CONSTRAINT batches_state_check;
ALTER TABLE batches ADD CONSTRAINT batches_state_check CHECK (state IN
    ('draft', 'scheduled', 'pending', 'admitted', 'paused', 'cancelled'));
-- Set while the batch itself is paused. A batch is held while it or its
-- tenant is paused; one not yet admitted then waits where it is.
ALTER TABLE batches ADD COLUMN paused_at timestamptz;
ALTER TABLE tenants ADD COLUMN paused_at timestamptz;
-- The scheduler looks for claims a pause left behind in paused batches.
CREATE INDEX batches_paused ON batches (region) WHERE state = 'paused';

-- Expiry: a recipient not dialed by latest_at ends as 'expired' (the
-- scheduler sweeps). expiry_done: swept, and nothing of the batch was live
-- then, so nothing can be queued again by a retry; a manual retry clears it.
ALTER TABLE batches ADD COLUMN latest_at timestamptz;
ALTER TABLE batches ADD COLUMN expiry_done boolean NOT NULL DEFAULT false;
CREATE INDEX batches_expiring ON batches (latest_at)
    WHERE latest_at IS NOT NULL AND NOT expiry_done;
ALTER TABLE recipients DROP CONSTRAINT recipients_status_check;
ALTER TABLE recipients ADD CONSTRAINT recipients_status_check CHECK (status IN
    ('queued', 'dispatched', 'started', 'completed', 'failed', 'cancelled', 'expired'));
