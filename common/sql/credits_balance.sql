-- params: t
-- The credit balance of tenant t (SQL text: a column or a parameter), for
-- reads: granted (tenants.credits_cents) minus held and spent
-- (credit_usage.used_cents). bc_credits.h.
((SELECT tb.credits_cents FROM tenants tb WHERE tb.id = :t)
 - coalesce((SELECT cu.used_cents FROM credit_usage cu WHERE cu.tenant_id = :t), 0))
