-- params: src
-- CTEs that release and settle the credit holds of calls (bc_credits.h):
-- src names a CTE with (id, tenant_id, batch_id, hold_cents, cost_cents,
-- billed_min, price_per_min_cents), one row per call whose hold ends in
-- this statement (so once per call). A call with a hold gets a 'release'
-- of it and, if it cost anything to bill (an answered call: billed_min
-- set), a 'settle' of its cost. Usage rows are locked in tenant id order
-- (two statements never wait on each other in a circle). Defines cx (the
-- ledger moves, with each tenant's running sum), cxl (the locked usage
-- rows), cxu (their update), cxw (the ledger rows).
 cx AS MATERIALIZED (SELECT x.*, sum(x.cents) OVER (PARTITION BY x.tenant_id
                       ORDER BY x.call_id, x.ord) AS run,
                     sum(x.cents) OVER (PARTITION BY x.tenant_id) AS total
          FROM (SELECT tenant_id, id AS call_id, batch_id, 'release' AS kind,
                       hold_cents AS cents, NULL::int AS minutes,
                       price_per_min_cents AS price, 1 AS ord
                  FROM :src WHERE hold_cents IS NOT NULL
                UNION ALL
                SELECT tenant_id, id, batch_id, 'settle', -cost_cents, billed_min,
                       price_per_min_cents, 2
                  FROM :src WHERE hold_cents IS NOT NULL AND billed_min IS NOT NULL) x),
 cxl AS MATERIALIZED (SELECT u.tenant_id, t.credits_cents FROM credit_usage u
          JOIN tenants t ON t.id = u.tenant_id
         WHERE u.tenant_id IN (SELECT tenant_id FROM cx)
         ORDER BY u.tenant_id FOR UPDATE OF u),
 cxu AS (UPDATE credit_usage SET used_cents = used_cents - s.total
          FROM (SELECT DISTINCT tenant_id, total FROM cx) s
         WHERE credit_usage.tenant_id = s.tenant_id
           AND credit_usage.tenant_id IN (SELECT tenant_id FROM cxl)
        RETURNING credit_usage.tenant_id, credit_usage.used_cents),
 cxw AS (INSERT INTO credit_ledger (tenant_id, kind, call_id, batch_id, cents,
                                   balance_after, minutes, price_per_min_cents)
         SELECT cx.tenant_id, cx.kind, cx.call_id, cx.batch_id, cx.cents,
                cxl.credits_cents - cxu.used_cents - cx.total + cx.run,
                cx.minutes, cx.price
           FROM cx JOIN cxu ON cxu.tenant_id = cx.tenant_id
           JOIN cxl ON cxl.tenant_id = cx.tenant_id
          ORDER BY cx.tenant_id, cx.call_id, cx.ord RETURNING 1)
