-- One index for a batch's unfinished recipients, split by whether they were
-- released: (batch_id, released, seq). It replaces recipients_active
-- (batch_id, seq) and recipients_inflight (batch_id) WHERE released.
--
-- The window release asks for the next queued, unreleased recipients in seq
-- order. Through (batch_id, seq) it first walked every released recipient
-- of the batch, the whole window (limit x BC_WINDOW_MULTIPLE rows, each a
-- heap fetch to read released): 500 rows and 421 pages a release in B2,
-- whose batches have a limit of 250. With released in the key the first
-- entries are the ones it wants: 8 pages (EXPLAIN ANALYZE, 0.248 ->
-- 0.037 ms on a vacuumed table). The scheduler's "batches with work" probe
-- takes the same path.
--
-- The window's fill (released and unfinished) is the other half of the
-- same key, so recipients_inflight goes: one index fewer for every update
-- of a recipient that is not HOT, and a recipient's status changes three
-- or four times an attempt (bench/RESULTS.md, eighteenth session).
--
-- Like 0013, the build holds writes to recipients while it runs (about a
-- second per million rows here): on a large live table, apply it in a quiet
-- moment.
DROP INDEX IF EXISTS recipients_active;
CREATE INDEX recipients_active ON recipients (batch_id, released, seq)
    WHERE status IN ('queued', 'dispatched', 'started');
DROP INDEX IF EXISTS recipients_inflight;
