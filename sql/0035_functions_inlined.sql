-- The SQL functions the hot statements call once per execution, made cheap
-- to call. A LANGUAGE sql function whose body is a single expression is
-- inlined into the statement that calls it; one whose body reads a table
-- cannot be, and is parsed, analyzed and planned again at every execution
-- of its caller (its plan lives as long as that execution). Timed alone,
-- per execution: call_result_v3 260-370 us, bc_now() 70-90 us,
-- tenant_legal_hours() 60 us; in B3, parsing and planning such bodies was
-- about 15 % of the worker's backend (perf), and each ends statement (the
-- call-result events) and each claim and window release paid it.
-- PL/pgSQL keeps its plans for the session.

-- The test clock's offset (sql/0025), read only where the test clock is on.
CREATE FUNCTION clock_offset_s() RETURNS float8 LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT offset_s FROM clock_offset), 0);
END
$$;

-- As before, but one expression: inlined, and in production (the setting
-- off) it is now() and reads nothing.
CREATE OR REPLACE FUNCTION bc_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('batchcall.test_clock', true) = 'on'
                THEN now() + make_interval(secs => clock_offset_s())
                ELSE now() END
$$;

CREATE OR REPLACE FUNCTION tenant_legal_hours(tenant text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT CASE WHEN legal_hours
                        THEN jsonb_build_object('start', legal_start::text,
                                                'end', legal_end::text) END
              FROM tenants WHERE id = tenant);
END
$$;

-- call_result_v3 (sql/0017) with its batch's agent and region passed in
-- instead of read: one expression, inlined into the statement that writes
-- the events (common/sql/call_result_rows.sql joins the batch).
CREATE FUNCTION call_result_v3(ev text, c jsonb, rstatus text, final boolean,
                               retry_at timestamptz, released boolean,
                               at timestamptz, report jsonb,
                               batch_agent_id text, batch_region text) RETURNS text
LANGUAGE sql STABLE AS $$
SELECT json_build_object('schema', 'batchcall.call-result/v3', 'event', ev,
         'call_id', c->>'id', 'batch_id', c->>'batch_id', 'tenant_id', c->>'tenant_id',
         'recipient_id', c->>'recipient_id',
         'agent_id', coalesce(c->>'agent_id', batch_agent_id), 'region', batch_region,
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
$$;

-- The eight-argument form reads the batch and hands over: one definition of
-- the event. The API's per-request statements (a recording, a report) and
-- any binary not yet rolled out call it.
CREATE OR REPLACE FUNCTION call_result_v3(ev text, c jsonb, rstatus text, final boolean,
                                          retry_at timestamptz, released boolean,
                                          at timestamptz, report jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
SELECT call_result_v3(ev, c, rstatus, final, retry_at, released, at, report,
                      b.agent_id, b.region)
  FROM (SELECT 1) one LEFT JOIN batches b ON b.id = c->>'batch_id'
$$;
