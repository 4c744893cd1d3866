-- The compliance gate (docs/api.md, "Tenant policy"): a recipient the
-- tenant's policy forbids to call ends undialed, status 'failed', with the
-- rule as its end_reason and the rule's message as its error_message. The
-- gate runs when a batch is created (api/bc_batches.c) and again in the
-- worker's dial_start, the last step before the carrier; both use the one
-- expression BC_SQL_POLICY_BLOCK (common/bc_policy.h). The rule is the
-- DNC list ('dnc_blocked'); a new gate rule adds an arm there and a line
-- here, and everything downstream (event, webhook, metric, each surface's
-- words) follows by reason. 'outside_legal_hours' and
-- 'insufficient_credits' are no gate rules: sql/0031_stop_reasons.sql adds
-- them for recipients the policy held until their batch expired.

-- The message of a policy stop, NULL for any other end reason. Inlined by
-- the planner (one CASE), so it costs nothing per row.
CREATE FUNCTION policy_message(reason text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE reason
        WHEN 'dnc_blocked' THEN 'not dialed: the number is on the tenant''s do-not-call list'
    END
$$;

-- 1 if an end reason is a policy stop.
CREATE FUNCTION policy_stop(reason text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT policy_message(reason) IS NOT NULL
$$;

-- The dial-time lookup is one probe of dnc's primary key (tenant_id,
-- number): an index-only scan, whatever the list's size (bench B8 measures
-- it with 1,000,000 numbers). Index-only needs a visibility map that is
-- current; a bulk import of hundreds of thousands of rows would otherwise
-- wait for autovacuum's default 20 % threshold.
ALTER TABLE dnc SET (autovacuum_vacuum_insert_scale_factor = 0.01,
                     autovacuum_analyze_scale_factor = 0.01);
