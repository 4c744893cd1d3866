-- The call-result v3 event (docs/schemas/call-result.v3.json) of one call,
-- built in SQL so the worker's end of a call and the API's report and
-- recording write the same fields the same way. c is the call's row as
-- to_jsonb(calls): the caller passes the row its own statement wrote
-- (RETURNING), because a function reading calls would not see an update of
-- the statement that calls it. The recipient's fields are the caller's too
-- (the worker knows them from its own update). The batch is only read.
-- report is the agent's report, carried by call.report events only.
CREATE FUNCTION call_result_v3(ev text, c jsonb, rstatus text, final boolean,
                               retry_at timestamptz, released boolean,
                               at timestamptz, report jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
SELECT json_build_object('schema', 'batchcall.call-result/v3', 'event', ev,
         'call_id', c->>'id', 'batch_id', c->>'batch_id', 'tenant_id', c->>'tenant_id',
         'recipient_id', c->>'recipient_id',
         'agent_id', coalesce(c->>'agent_id', b.agent_id), 'region', b.region,
         'attempt', (c->>'attempt')::int,
         'carrier_call_id', c->>'carrier_call_id', 'carrier_status', c->>'status',
         'end_reason', c->>'end_reason', 'answered_by', c->>'answered_by',
         'voicemail_action', c->>'voicemail_action', 'duration_s', (c->>'duration_s')::int,
         'to_number', c->>'to_number', 'from_number', c->>'from_number',
         'started_at', rfc3339((c->>'created_at')::timestamptz),
         'answered_at', rfc3339((c->>'answered_at')::timestamptz),
         'ended_at', rfc3339((c->>'ended_at')::timestamptz),
         'recording_url', c->>'recording_url',
         'recording_duration_s', (c->>'recording_duration_s')::int,
         'disposition', c->>'disposition', 'summary', c->'report'->>'summary',
         'report', report, 'recipient_status', rstatus, 'final', final,
         'retry_at', rfc3339_ms(retry_at), 'lease_released', released,
         'at', rfc3339(at))::text
  FROM (SELECT 1) one LEFT JOIN batches b ON b.id = c->>'batch_id'
$$;
