-- The release lock (release_lock.sql) as the top-ups on a timer take it:
-- the worker's after its ends and the scheduler's pass over the running
-- batches. Each takes the lock of the batches no other transaction is
-- releasing now and leaves the rest to its next round, since the one
-- releasing them fills their windows meanwhile. Waiting, a worker stood
-- still (no end written, no claim, no dial) while the scheduler's
-- once-a-second pass released every running batch under their locks: up
-- to 40 ms a time with 100 batches (bench/RESULTS.md, thirty-fourth
-- session). Nothing waits here, so the order does not matter; a lock
-- this transaction holds already is taken again.
-- $1 JSON array of batch ids. Returns the positions (from 0) of those
-- locked.
SELECT b.i - 1 AS i
  FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS b(id, i)
 WHERE pg_try_advisory_xact_lock(7417, hashtext(b.id))
