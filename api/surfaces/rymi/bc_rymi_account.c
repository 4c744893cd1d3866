#include "bc_rymi_account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_audit.h"
#include "bc_json.h"

const bc_pg_stmt bc_rymi_account_stmts[] = {
    { "rymi_me",
      "SELECT id, name, plan, email, rate_per_min, burst, concurrency,"
      "       " BC_SQL_CREDITS_BALANCE("$1") " AS credits_cents,"
      "       default_region, rfc3339(created_at) AS created_at FROM tenants WHERE id = $1" },
    /* Spend is what was settled: the ledger's settle rows (bc_credits.h),
     * by UTC day of settlement. */
    { "rymi_spend",
      "SELECT to_char(date_trunc('day', l.at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day,"
      "       count(*) AS calls, coalesce(sum(l.minutes), 0)::bigint AS minutes,"
      "       (-sum(l.cents))::bigint AS cents"
      "  FROM credit_ledger l"
      " WHERE l.tenant_id = $1 AND l.kind = 'settle'"
      "   AND l.at >= $2::date AND l.at < $3::date + 1"
      " GROUP BY 1 ORDER BY 1" },
    { 0, 0 },
};

static void me(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id };
    PGresult *res = bc_pg_exec(r->g.pg, "rymi_me", 1, p, &err);

    (void)req;
    if (!res) {
        bc_surface_fail(r, "me", &err);
        return;
    }
    bc_http_json(resp, 200, json_pack(
        "{s:{s:o,s:o,s:o,s:o,s:o,s:o},s:{s:s,s:s},s:{s:I,s:I,s:I},s:I}",
        "tenant", "id", bc_json_pg_str(res, 0, "id"), "name", bc_json_pg_str(res, 0, "name"),
        "email", bc_json_pg_str(res, 0, "email"), "plan", bc_json_pg_str(res, 0, "plan"),
        "default_region", bc_json_pg_str(res, 0, "default_region"),
        "created_at", bc_json_pg_str(res, 0, "created_at"),
        "key", "id", r->g.who.key_id, "type", r->g.who.publishable ? "publishable" : "secret",
        "limits", "requests_per_min", (json_int_t)bc_pg_int(res, 0, "rate_per_min", 0),
        "burst", (json_int_t)bc_pg_int(res, 0, "burst", 0),
        "concurrent_calls", (json_int_t)bc_pg_int(res, 0, "concurrency", 0),
        "credits_cents", (json_int_t)bc_pg_int(res, 0, "credits_cents", 0)));
    PQclear(res);
}

static int date_ok(const char *s)
{
    return s && strlen(s) == 10 && s[4] == '-' && s[7] == '-';
}

static void spend(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *from = bc_http_query(req, "from"), *to = bc_http_query(req, "to");
    bc_err err = { "" };
    PGresult *res;
    json_t *days;
    long long calls = 0, minutes = 0, cents = 0;

    if ((from && !date_ok(from)) || (to && !date_ok(to))) {
        bc_http_error(resp, 400, "invalid_request", "from and to must be dates (YYYY-MM-DD)");
        return;
    }
    const char *p[] = { r->g.who.tenant_id, from ? from : "1970-01-01", to ? to : "9999-12-30" };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_spend", 3, p, &err))) {
        if (!strncmp(bc_pg_sqlstate(r->g.pg), "22", 2))
            bc_http_error(resp, 400, "invalid_request", "from and to must be valid dates");
        else
            bc_surface_fail(r, "spend", &err);
        return;
    }
    days = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        long long c = bc_pg_int(res, i, "calls", 0), m = bc_pg_int(res, i, "minutes", 0),
                  ct = bc_pg_int(res, i, "cents", 0);
        calls += c;
        minutes += m;
        cents += ct;
        json_array_append_new(days, json_pack("{s:s,s:I,s:I,s:I}", "date",
                                              bc_pg_val(res, i, "day"), "calls", (json_int_t)c,
                                              "minutes", (json_int_t)m, "cents", (json_int_t)ct));
    }
    PQclear(res);
    bc_http_json(resp, 200, json_pack("{s:s,s:I,s:I,s:I,s:o}", "currency", "usd",
                                         "calls", (json_int_t)calls, "minutes", (json_int_t)minutes,
                                         "total_cents", (json_int_t)cents, "days", days));
}

/* GET /v1/audit-logs: the tenant's audit log, newest first; limit/offset
 * and an optional action. Admin rows do not name the operator. */
static void audit_list(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *action = bc_http_query(req, "action");
    int limit, offset;
    long long total = 0;
    bc_err err = { "" };
    json_t *arr;

    if (bc_rymi_paging(r, &limit, &offset) < 0)
        return;
    if (action && (!*action || strlen(action) > 64 ||
                   strspn(action, "abcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(action))) {
        bc_http_error(resp, 400, "invalid_request",
              "action must be 1 to 64 lowercase letters, digits, '.', '_' or '-'");
        return;
    }
    if (!(arr = bc_audit_list(r->g.pg, r->g.who.tenant_id, action, limit, offset, 0, &total,
                              &err))) {
        bc_surface_fail(r, "audit.list", &err);
        return;
    }
    bc_http_json(resp, 200, json_pack("{s:o,s:I,s:i,s:i}", "audit_logs", arr, "total",
                                         (json_int_t)total, "limit", limit, "offset", offset));
}

const bc_http_route bc_rymi_account_routes[] = {
    { "GET", "/v1/auth/me", me, NULL, 0, NULL },
    { "GET", "/v1/analytics/spend", spend, NULL, 0, NULL },
    { "GET", "/v1/audit-logs", audit_list, NULL, 0, NULL },
    { 0 },
};
