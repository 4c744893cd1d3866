-- A call that has been quiet too long (no status from the carrier) is asked
-- about by the scheduler: a lost callback must not hold a slot forever.
-- checked_at records the last time we asked, so each call is asked at most
-- once per quiet interval.
ALTER TABLE calls ADD COLUMN checked_at timestamptz;
CREATE INDEX calls_open ON calls (created_at) WHERE ended_at IS NULL;
