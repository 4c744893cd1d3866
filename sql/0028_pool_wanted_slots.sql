-- Caller-ID pools: the slots of the numbers queued recipients wait for.
-- A recipient that keeps a pool number (its first attempt's, or its own
-- from_number) takes only a slot of that number (worker/sql/claim.sql),
-- so its batch must hold one. The slots a batch held were chosen by count
-- alone: 0..need-1 at admission, the lowest missing as it grew, the
-- highest free given back as it drained. A batch drained down to such a
-- recipient could keep only slots of other numbers, and the recipient
-- stayed queued for ever. Admission and growth now take these slots
-- first, and the give-back leaves them while they are free.

-- The slots of pooled batch b (limit lim) that its queued recipients
-- keeping a pool number wait for: per number, as many of its slots not in
-- use as recipients wait for it, free ones first, then the lowest missing
-- ones. None without a pool. Reads at most lim of the batch's recipients
-- still to finish: with lim of them it holds every slot anyway.
CREATE FUNCTION batch_wanted_slots(b text, lim integer) RETURNS SETOF integer
LANGUAGE sql STABLE AS $$
    WITH p AS (SELECT from_pool FROM batches WHERE id = b AND from_pool IS NOT NULL),
    waiting AS (
        SELECT a.from_number AS number, count(*) AS n
          FROM p, (SELECT r.status, r.from_number FROM recipients r
                    WHERE r.batch_id = b AND r.status IN ('queued', 'dispatched', 'started')
                    LIMIT greatest(lim, 0)) a
         WHERE a.status = 'queued' AND a.from_number = ANY (p.from_pool)
         GROUP BY 1),
    not_in_use AS (
        SELECT g AS slot, p.from_pool[1 + g % cardinality(p.from_pool)] AS number,
               row_number() OVER (PARTITION BY g % cardinality(p.from_pool)
                                  ORDER BY l.slot IS NULL, g) AS k
          FROM p CROSS JOIN generate_series(0, greatest(lim, 0) - 1) AS g
          LEFT JOIN leases l ON l.batch_id = b AND l.slot = g
         WHERE l.call_id IS NULL)
    SELECT s.slot FROM not_in_use s JOIN waiting w ON w.number = s.number WHERE s.k <= w.n
$$;
