-- params: tenant
-- Whether the tenant's gate (policy_block.sql) could stop any number of
-- theirs: false when the tenant has nothing the gate looks up (no DNC
-- list). A statement that applies the gate to a whole batch states it
-- once, over its parameters, so PostgreSQL checks it once and skips the
-- batch's rows when it is false (the create's gate: 5.3 ms of a 5,000-row
-- create for a tenant with no list, bench/RESULTS.md). A new rule of
-- policy_block.sql is an arm here too.
(EXISTS (SELECT 1 FROM dnc WHERE dnc.tenant_id = :tenant))
