-- What admitting a batch takes: the slots it can use (need) and whether
-- its region has a live worker (live). $1 batch id.
SELECT batch_slots_needed(id, target_concurrency_limit) AS need,
       region_has_workers(region) AS live
  FROM batches WHERE id = $1;
