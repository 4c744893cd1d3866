-- params: src topic legacy v2
-- The call-result events of the calls a statement ends, for its outbox
-- (docs/analytics.md): v2 for each when v2 (SQL boolean) is true, v1 as it
-- always was when legacy is true, and v3 (sql/0017) always, built from the
-- statement's own call rows, since a function reading calls would not see
-- the statement's own update; v3 comes last. src names a CTE with one row
-- per ended call: (id, batch_id, tenant_id, recipient_id, attempt,
-- final_status, reason, answered_by, duration_s, to_number, from_number,
-- rstatus (the recipient's status after it), next_attempt_at, released
-- (its lease freed here), cj (the call row as jsonb)). Rows (topic, key,
-- payload), keyed by batch id. The worker's ends (worker/bc_ends.c) and
-- the scheduler's policy stops (scheduler/bc_expiry.c) both write them.
SELECT :topic, batch_id, json_build_object('schema', 'batchcall.call-result/v2',
       'call_id', id, 'batch_id', batch_id, 'tenant_id', tenant_id,
       'recipient_id', recipient_id, 'attempt', attempt,
       'carrier_status', final_status, 'end_reason', reason, 'answered_by', answered_by,
       'duration_s', duration_s, 'to_number', to_number, 'from_number', from_number,
       'recipient_status', rstatus, 'final', rstatus <> 'queued',
       'retry_at', rfc3339_ms(next_attempt_at), 'lease_released', released,
       'ended_at', rfc3339(now()))::text
  FROM :src WHERE :v2
-- v1 for consumers not yet reading v2: a voicemail is the agent_hangup it
-- was before answering machines were told, a policy stop a dial_failed.
UNION ALL
SELECT :topic, batch_id, json_build_object('schema', 'batchcall.call-result/v1',
       'call_id', id, 'batch_id', batch_id, 'tenant_id', tenant_id,
       'recipient_id', recipient_id, 'attempt', attempt,
       'carrier_status', final_status,
       'end_reason', CASE WHEN reason = 'voicemail' THEN 'agent_hangup'
                          WHEN policy_stop(reason) THEN 'dial_failed' ELSE reason END,
       'duration_s', duration_s, 'to_number', to_number, 'from_number', from_number,
       'recipient_status', rstatus, 'final', rstatus <> 'queued',
       'lease_released', released, 'ended_at', rfc3339(now()))::text
  FROM :src WHERE :legacy
-- v3 with its batch's agent and region passed in, so the function is
-- inlined here rather than planned again at each execution (sql/0035).
UNION ALL
SELECT :topic, s3.batch_id, call_result_v3('call.ended', s3.cj, s3.rstatus,
       s3.rstatus <> 'queued', s3.next_attempt_at, s3.released, now(), NULL,
       b3.agent_id, b3.region)
  FROM :src s3 LEFT JOIN batches b3 ON b3.id = s3.batch_id
