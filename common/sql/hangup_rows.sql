-- params: src topic
-- The hang-up commands for the calls of a CTE src (id, batch_id,
-- tenant_id, carrier_call_id), as outbox rows (topic, key,
-- payload) on topic, the region's carrier events; the worker that reads
-- one asks the carrier to end the call (worker/bc_events.c). Written by a
-- cancel with hang-up (api) and sent again by the scheduler's sweep
-- (scheduler/bc_reconcile.c) until the call ends.
SELECT :topic, id, json_build_object('v', 1, 'kind', 'hangup', 'call_id', id,
       'batch_id', batch_id, 'tenant_id', tenant_id,
       'carrier_call_id', carrier_call_id)::text
  FROM :src
