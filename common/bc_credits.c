#include "bc_credits.h"

#include <string.h>

const bc_pg_stmt bc_credits_stmts[] = {
    { "credits_topup",
      "WITH t AS (UPDATE tenants SET credits_cents = credits_cents + $2::bigint"
      "            WHERE id = $1 RETURNING id, credits_cents),"
      " u AS (SELECT used_cents FROM credit_usage WHERE tenant_id = $1 FOR UPDATE),"
      " l AS (INSERT INTO credit_ledger (tenant_id, kind, cents, balance_after, actor)"
      "        SELECT t.id, 'topup', $2::bigint,"
      "               t.credits_cents - coalesce((SELECT used_cents FROM u), 0), $3"
      "          FROM t RETURNING balance_after)"
      " SELECT balance_after AS credits_cents FROM l" },
    { 0, 0 },
};

long long bc_credits_hold(int price, int max_min)
{
    if (price <= 0 || max_min <= 0)
        return 0;
    return (long long)price * max_min;
}

int bc_credits_minutes(long duration_s)
{
    if (duration_s <= 0)
        return 0;
    return (int)((duration_s + 59) / 60);
}

long long bc_credits_cost(const char *status, long duration_s, int price, long long hold)
{
    long long cost;

    /* Carriers bill answered calls only; busy, no-answer, failed and
     * canceled calls cost nothing. */
    if (!status || strcmp(status, "completed") || price <= 0)
        return 0;
    cost = (long long)bc_credits_minutes(duration_s) * price;
    return cost < hold ? cost : hold;
}
