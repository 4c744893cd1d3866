-- Serializes the window top-ups of the same batch: the transaction that
-- releases a batch's jobs takes this lock on it first, in a statement of
-- its own, and holds it to its commit. release.sql counts the batch's jobs
-- in flight in its statement's snapshot; two top-ups at once (a worker's
-- after an end and the scheduler's after it grew the batch, or two
-- workers') each counted without the other's and both filled the room, up
-- to twice the window. A top-up that waited here starts release.sql after
-- the other committed, with a snapshot that sees its jobs. In the same
-- statement the wait would not help: a statement's snapshot is taken
-- before it waits.
-- Every batch the transaction will release, at once, in the order of
-- their keys: two transactions never hold one key each and wait for the
-- other's. (A volatile function in the output list runs after the sort.)
-- The two-key form with its own first key never meets the single-key
-- advisory locks (the scheduler's leadership, migrations).
-- $1 JSON array of batch ids.
SELECT pg_advisory_xact_lock(7417, k)
  FROM (SELECT DISTINCT hashtext(id) AS k
          FROM jsonb_array_elements_text($1::jsonb) AS b(id)) AS keys
 ORDER BY k
