/* bc_credits: credits that are spent (sql/0022_credits.sql, docs/api.md
 * "Credits"). A tenant's balance is tenants.credits_cents (granted) minus
 * credit_usage.used_cents (held and spent). Before a dial the worker holds
 * the cost of the call's maximum duration (its TimeLimit): price per minute
 * x max_call_duration_min, in the statement that moves the call to
 * 'dialing', and only if the balance covers it; a call the balance cannot
 * cover is not dialed and its batch pauses itself with reason
 * "insufficient_credits" (its recipients stay queued). When the call ends
 * the hold is released and, if it was answered, its cost settled: the
 * carrier's duration rounded up per started minute, times the price, never
 * more than the hold. So the balance never drops below zero, let alone
 * below minus the live calls' holds. Every move is a credit_ledger row. */
#ifndef BC_CREDITS_H
#define BC_CREDITS_H

#include "bc_sql.h"

/* The pause reason of a batch that ran out, and the "blocked" word
 * dial_start gives a call it did not dial for lack of credit. */
#define BC_CREDITS_SHORT "insufficient_credits"

/* Cents held for a call of at most max_min minutes at price cents a
 * minute. */
long long bc_credits_hold(int price, int max_min);

/* Minutes billed for a call the carrier says lasted duration_s seconds:
 * every started minute (61 s is 2); 0 for none. */
int bc_credits_minutes(long duration_s);

/* Cents a call costs: answered (the carrier's "completed") calls cost their
 * billed minutes x price, capped at the hold; any other outcome 0. */
long long bc_credits_cost(const char *status, long duration_s, int price, long long hold);

/* The same three as SQL expressions over columns or parameters (SQL text),
 * so the statements bill exactly as the C does. */
#define BC_SQL_CREDITS_HOLD(price, max_min) "((" price ")::bigint * (" max_min "))"
#define BC_SQL_CREDITS_MINUTES(dur) "(ceil(greatest(coalesce(" dur ", 0), 0) / 60.0)::int)"
#define BC_SQL_CREDITS_COST(status, dur, price, hold)                              \
    "(CASE WHEN " status " = 'completed' THEN least(" hold ", "                     \
    BC_SQL_CREDITS_MINUTES(dur) "::bigint * (" price ")) ELSE 0 END)"

/* The balance of tenant t (a column or parameter), for reads. */
#define BC_SQL_CREDITS_BALANCE(t)                                                  \
    "((SELECT tb.credits_cents FROM tenants tb WHERE tb.id = " t ")"                \
    " - coalesce((SELECT cu.used_cents FROM credit_usage cu WHERE cu.tenant_id = " t "), 0))"

/* A create's test: can the tenant pay one call of max_min minutes? $1
 * tenant $2 max minutes. One row: ok, balance, hold. */
#define BC_CREDITS_AFFORD_STMT                                                     \
    { "credits_afford",                                                            \
      "SELECT " BC_SQL_CREDITS_BALANCE("t.id") " >= "                              \
      BC_SQL_CREDITS_HOLD("t.price_per_min_cents", "$2::int") " AS ok"             \
      "  FROM tenants t WHERE t.id = $1" }

/* A top-up (an admin's `credits-add`): the grant and its ledger row, in one
 * statement. $1 tenant $2 cents $3 actor. Returns the balance after. */
#define BC_CREDITS_TOPUP_STMT                                                      \
    { "credits_topup",                                                             \
      "WITH t AS (UPDATE tenants SET credits_cents = credits_cents + $2::bigint"   \
      "            WHERE id = $1 RETURNING id, credits_cents),"                    \
      " u AS (SELECT used_cents FROM credit_usage WHERE tenant_id = $1 FOR UPDATE)," \
      " l AS (INSERT INTO credit_ledger (tenant_id, kind, cents, balance_after, actor)" \
      "        SELECT t.id, 'topup', $2::bigint,"                                  \
      "               t.credits_cents - coalesce((SELECT used_cents FROM u), 0), $3" \
      "          FROM t RETURNING balance_after)"                                  \
      " SELECT balance_after AS credits_cents FROM l" }

/* The holds of a dial_start: CTEs over g (c call, b batch, tenant_id,
 * hold_cents: the call's hold if it has one already, blocked: a policy
 * stop or NULL), as the worker's dial_start_many builds it. Each tenant's
 * usage row is locked (in id order: two workers never wait on each other
 * in a circle) and its calls are held in call id order while the balance
 * covers them: ch (c, tenant_id, b, price, mins, hold, after, ok). The
 * statement then moves to 'dialing' only calls with a hold (ok) or one
 * already, and passes what it moved to BC_SQL_CREDITS_HOLD_WRITE. */
#define BC_SQL_CREDITS_HOLD_CTES                                                   \
    " cu AS MATERIALIZED (SELECT u.tenant_id, t.credits_cents - u.used_cents AS balance," \
    "                            t.price_per_min_cents AS price"                   \
    "          FROM credit_usage u JOIN tenants t ON t.id = u.tenant_id"           \
    "         WHERE u.tenant_id IN (SELECT tenant_id FROM g"                       \
    "                               WHERE blocked IS NULL AND hold_cents IS NULL)" \
    "         ORDER BY u.tenant_id FOR UPDATE OF u),"                              \
    " ch AS MATERIALIZED (SELECT g.c, g.tenant_id, g.b, cu.price, bm.max_call_duration_min AS mins," \
    "          " BC_SQL_CREDITS_HOLD("cu.price", "bm.max_call_duration_min") " AS hold," \
    "          cu.balance - sum(" BC_SQL_CREDITS_HOLD("cu.price", "bm.max_call_duration_min") ")" \
    "            OVER (PARTITION BY g.tenant_id ORDER BY g.c) AS after"           \
    "          FROM g JOIN cu ON cu.tenant_id = g.tenant_id JOIN batches bm ON bm.id = g.b" \
    "         WHERE g.blocked IS NULL AND g.hold_cents IS NULL),"

/* Writes the holds of the calls moved to 'dialing': src (c, tenant_id, b,
 * price, mins, hold, after) holds only rows of ch that were moved. */
#define BC_SQL_CREDITS_HOLD_WRITE(src)                                             \
    " chu AS (UPDATE credit_usage SET used_cents = used_cents + s.total"          \
    "          FROM (SELECT tenant_id, sum(hold) AS total FROM " src               \
    "                 GROUP BY tenant_id) s"                                       \
    "         WHERE credit_usage.tenant_id = s.tenant_id RETURNING 1),"            \
    " chl AS (INSERT INTO credit_ledger (tenant_id, kind, call_id, batch_id, cents," \
    "                                   balance_after, minutes, price_per_min_cents)" \
    "         SELECT tenant_id, 'hold', c, b, -hold, after, mins, price FROM " src \
    "          ORDER BY tenant_id, c RETURNING 1)"

/* Releases and settles the holds of ended calls: src has (id, tenant_id,
 * batch_id, hold_cents, cost_cents, billed_min, price_per_min_cents), one
 * row per call that ended in this statement (so once per call). A call
 * with a hold gets a 'release' of it and, if it cost anything to bill (an
 * answered call: billed_min set), a 'settle' of its cost. Usage rows are
 * locked in tenant id order. Defines cx, cxl, cxu, cxw. */
#define BC_SQL_CREDITS_SETTLE_CTES(src)                                            \
    " cx AS MATERIALIZED (SELECT x.*, sum(x.cents) OVER (PARTITION BY x.tenant_id" \
    "                       ORDER BY x.call_id, x.ord) AS run,"                   \
    "                     sum(x.cents) OVER (PARTITION BY x.tenant_id) AS total"  \
    "          FROM (SELECT tenant_id, id AS call_id, batch_id, 'release' AS kind," \
    "                       hold_cents AS cents, NULL::int AS minutes,"            \
    "                       price_per_min_cents AS price, 1 AS ord"               \
    "                  FROM " src " WHERE hold_cents IS NOT NULL"                  \
    "                UNION ALL"                                                    \
    "                SELECT tenant_id, id, batch_id, 'settle', -cost_cents, billed_min," \
    "                       price_per_min_cents, 2"                                \
    "                  FROM " src " WHERE hold_cents IS NOT NULL AND billed_min IS NOT NULL) x)," \
    " cxl AS MATERIALIZED (SELECT u.tenant_id, t.credits_cents FROM credit_usage u" \
    "          JOIN tenants t ON t.id = u.tenant_id"                               \
    "         WHERE u.tenant_id IN (SELECT tenant_id FROM cx)"                     \
    "         ORDER BY u.tenant_id FOR UPDATE OF u),"                              \
    " cxu AS (UPDATE credit_usage SET used_cents = used_cents - s.total"          \
    "          FROM (SELECT DISTINCT tenant_id, total FROM cx) s"                  \
    "         WHERE credit_usage.tenant_id = s.tenant_id"                          \
    "           AND credit_usage.tenant_id IN (SELECT tenant_id FROM cxl)"        \
    "        RETURNING credit_usage.tenant_id, credit_usage.used_cents),"          \
    " cxw AS (INSERT INTO credit_ledger (tenant_id, kind, call_id, batch_id, cents," \
    "                                   balance_after, minutes, price_per_min_cents)" \
    "         SELECT cx.tenant_id, cx.kind, cx.call_id, cx.batch_id, cx.cents,"   \
    "                cxl.credits_cents - cxu.used_cents - cx.total + cx.run,"     \
    "                cx.minutes, cx.price"                                        \
    "           FROM cx JOIN cxu ON cxu.tenant_id = cx.tenant_id"                  \
    "           JOIN cxl ON cxl.tenant_id = cx.tenant_id"                          \
    "          ORDER BY cx.tenant_id, cx.call_id, cx.ord RETURNING 1)"

/* A batch that could not pay its next call pauses itself, as a pause by
 * its tenant would (its claims undone, the refused one too, its slots
 * kept), with the reason, and tells the tenant's webhooks (batch.paused).
 * If holds came back meanwhile the scheduler's resume (below) admits it
 * again on its next tick. $1 batch ids (a JSON array). Returns the batches it
 * paused: id, tenant_id. */
#define BC_CREDITS_PAUSE_SQL                                                       \
    "WITH b AS (UPDATE batches SET state = 'paused', paused_at = coalesce(paused_at, now())," \
    "                  pause_reason = '" BC_CREDITS_SHORT "', updated_at = now()"   \
    "            WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)) AND state = 'admitted'"               \
    "           RETURNING id, tenant_id, paused_at),"                              \
    " pb AS (SELECT id FROM b),"                                                   \
    BC_SQL_UNCLAIM_CTES ","                                                        \
    " wh AS (INSERT INTO webhook_deliveries (webhook_id, tenant_id, event_id, event_type, payload)" \
    "        SELECT w.id, w.tenant_id, 'evt_' || b.id || '_paused_'"               \
    "                 || (extract(epoch FROM b.paused_at) * 1000)::bigint, 'batch.paused'," \
    "               jsonb_build_object('id', 'evt_' || b.id || '_paused_'"          \
    "                 || (extract(epoch FROM b.paused_at) * 1000)::bigint,"         \
    "                 'type', 'batch.paused', 'created_at', rfc3339(b.paused_at),"  \
    "                 'data', jsonb_build_object('batch_id', b.id,"                 \
    "                   'reason', '" BC_CREDITS_SHORT "',"                          \
    "                   'paused_at', rfc3339(b.paused_at),"                        \
    "                   'balance_cents', " BC_SQL_CREDITS_BALANCE("b.tenant_id") "))::text" \
    "          FROM b JOIN webhooks w ON w.tenant_id = b.tenant_id AND w.enabled"  \
    "           AND 'batch.paused' = ANY (w.events)"                               \
    "        ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING 1)"          \
    " SELECT id, tenant_id FROM b"

/* The scheduler's resume: batches of the region paused for credits whose
 * tenant can pay one of their calls again (a top-up, or holds released)
 * and is not paused itself are admitted again; their queued recipients go
 * back to the backlog, which the window releases in order. $1 region.
 * Returns the batches resumed: id, tenant_id. */
#define BC_CREDITS_RESUME_SQL                                                      \
    "WITH b AS (UPDATE batches SET state = 'admitted', paused_at = NULL,"          \
    "                  pause_reason = NULL, updated_at = now()"                    \
    "            WHERE region = $1 AND state = 'paused'"                           \
    "              AND pause_reason = '" BC_CREDITS_SHORT "'"                       \
    "              AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = batches.tenant_id" \
    "                              AND t.paused_at IS NOT NULL)"                    \
    "              AND " BC_SQL_CREDITS_BALANCE("batches.tenant_id") " >= "        \
    BC_SQL_CREDITS_HOLD("(SELECT t.price_per_min_cents FROM tenants t"            \
    "                     WHERE t.id = batches.tenant_id)", "batches.max_call_duration_min") \
    "           RETURNING id, tenant_id),"                                         \
    " pb AS (SELECT id FROM b),"                                                   \
    BC_SQL_UNCLAIM_CTES ","                                                        \
    " rr AS (UPDATE recipients SET released = false, updated_at = now() FROM pb"   \
    "         WHERE recipients.batch_id = pb.id AND recipients.status = 'queued'"  \
    "           AND recipients.released RETURNING 1)"                              \
    " SELECT id, tenant_id FROM b"

#endif
