-- The batches with a recipient still to finish, for the scheduler's probes
-- (running, short, wait_region's count).
--
-- A batch stays admitted when its last recipient finishes: what the
-- surfaces report is read from its recipients. So a region's admitted
-- batches are every batch it ever ran, and the probes that walked them, one
-- lookup of recipients a batch at every pass, grew with the region's
-- history: in the one-hour soak the running probe read 226 pages a call at
-- minute 15 and 716 at minute 45, and 2,066 with 2,000 finished batches
-- (test_scheduler_plans.py; bench/RESULTS.md, twenty-ninth session).
--
-- recipients_active holds exactly the unfinished recipients. This walks it
-- from one batch_id to the next (a loose index scan): one descent a batch
-- with work, however many have finished.
--
-- PL/pgSQL keeps the plan for the session, and enable_seqscan is off while
-- it is made: a plan made on tables whose statistics say empty (a new
-- install) sorted a scan of every recipient at each step, 79,000 pages a
-- call with 30 batches of 5,000 scheduled for tomorrow.
CREATE FUNCTION unfinished_batches() RETURNS SETOF text
LANGUAGE plpgsql STABLE ROWS 10 SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    WITH RECURSIVE ub(id) AS (
        (SELECT r.batch_id FROM recipients r
          WHERE r.status IN ('queued', 'dispatched', 'started')
          ORDER BY r.batch_id LIMIT 1)
        UNION ALL
        SELECT (SELECT r.batch_id FROM recipients r
                 WHERE r.status IN ('queued', 'dispatched', 'started') AND r.batch_id > ub.id
                 ORDER BY r.batch_id LIMIT 1)
          FROM ub WHERE ub.id IS NOT NULL)
    SELECT ub.id FROM ub WHERE ub.id IS NOT NULL;
END
$$;
