-- A tenant's reserved slots: the lease rows of its admitted (or paused:
-- they keep their slots) batches, and any slot in use whatever its batch
-- (a cancelled batch's live calls still count). A batch has rows for what
-- it can use (leases_insert.sql) and the scheduler deletes the free ones
-- it no longer can, so a finished batch reserves nothing. $1 tenant id.
SELECT count(*) AS reserved
  FROM leases l JOIN batches b ON b.id = l.batch_id
 WHERE b.tenant_id = $1
   AND (b.state IN ('admitted', 'paused') OR l.call_id IS NOT NULL);
