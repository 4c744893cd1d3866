-- params: tenant number
-- The tenant's compliance gate (bc_policy.h) as one expression over a
-- tenant id and an E.164 number (SQL text: columns or parameters): the
-- reason that number may not be called now, or NULL. The DNC rule
-- ('dnc_blocked', BC_POLICY_DNC) is one probe of dnc's primary key
-- (tenant_id, number). A new rule is an arm here.
(CASE WHEN EXISTS (SELECT 1 FROM dnc WHERE dnc.tenant_id = :tenant
                    AND dnc.number = :number)
      THEN 'dnc_blocked' END)
