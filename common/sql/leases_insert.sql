-- Sets an admitted batch's lease slots to $2, its reservation
-- (bc_lease_reservation): slots 0..$2-1 exist, and free slots at or above
-- $2 (left by an earlier admission) go; a slot in use is never taken. With
-- a caller-ID pool, slot s belongs to number from_pool[s mod n].
-- $1 batch id, $2 slots.
WITH dropped AS (
    DELETE FROM leases WHERE batch_id = $1 AND slot >= $2::int AND call_id IS NULL)
INSERT INTO leases (batch_id, slot, number)
SELECT $1, g, (SELECT from_pool[1 + g % cardinality(from_pool)]
                 FROM batches WHERE id = $1)
  FROM generate_series(0, $2::int - 1) AS g ON CONFLICT DO NOTHING;
