-- Sets an admitted batch's lease slots to $2, its reservation
-- (bc_lease_reservation): $2 slots exist, and free slots beyond them (left
-- by an earlier admission) go; a slot in use is never taken. The slots are
-- 0..$2-1, except that with a caller-ID pool, where slot s belongs to
-- number from_pool[s mod n], the slots of the numbers its queued
-- recipients wait for (batch_wanted_slots, sql/0028) come first.
-- $1 batch id, $2 slots.
WITH b AS MATERIALIZED (
    SELECT from_pool, target_concurrency_limit AS lim,
           ARRAY(SELECT batch_wanted_slots(id, target_concurrency_limit)) AS wanted
      FROM batches WHERE id = $1),
kept AS MATERIALIZED (
    SELECT g, b.from_pool[1 + g % cardinality(b.from_pool)] AS number
      FROM b, generate_series(0, greatest(b.lim, $2::int) - 1) AS g
     ORDER BY g = ANY (b.wanted) DESC, g LIMIT $2::int),
dropped AS (
    DELETE FROM leases WHERE batch_id = $1 AND call_id IS NULL
       AND slot NOT IN (SELECT g FROM kept))
INSERT INTO leases (batch_id, slot, number)
SELECT $1, g, number FROM kept ON CONFLICT DO NOTHING;
