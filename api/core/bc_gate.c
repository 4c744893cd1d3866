#include "bc_gate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_auth.h"
#include "bc_crypto.h"

/* Statements the gate needs, for the API's table (bc_api_main.c). */
const bc_pg_stmt bc_gate_stmts[] = {
    { "rate_take",
      "INSERT INTO rate_buckets AS rb (key_id, tokens, allowed, updated_at)"
      " VALUES ($1, $2::float8 - 1, true, clock_timestamp())"
      " ON CONFLICT (key_id) DO UPDATE SET"
      "  allowed = least($2::float8, rb.tokens + extract(epoch FROM clock_timestamp()"
      "            - rb.updated_at) * $3::float8) >= 1,"
      "  tokens = least($2::float8, rb.tokens + extract(epoch FROM clock_timestamp()"
      "            - rb.updated_at) * $3::float8)"
      "         - CASE WHEN least($2::float8, rb.tokens + extract(epoch FROM"
      "            clock_timestamp() - rb.updated_at) * $3::float8) >= 1 THEN 1 ELSE 0 END,"
      "  updated_at = clock_timestamp()"
      " RETURNING tokens, allowed" },
    { "tenant_plan",
      "SELECT rate_per_min, burst, " BC_SQL_CREDITS_BALANCE("$1") " AS credits_cents"
      "  FROM tenants WHERE id = $1" },
    /* A key is taken over when its row expired (a day, sql/0024), or
     * its first request died mid-flight (60 s without an answer). */
    { "idem_claim",
      "INSERT INTO idempotency_keys AS k (tenant_id, key, route, request_hash)"
      " VALUES ($1, $2, $3, $4)"
      " ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = $4, route = $3,"
      "        created_at = now(), status = NULL, response = NULL"
      "  WHERE (k.status IS NULL AND k.created_at < now() - interval '60 seconds')"
      "     OR k.created_at < now() - idempotency_ttl()"
      " RETURNING 1" },
    { "idem_get",
      "SELECT route, request_hash, status, response FROM idempotency_keys"
      " WHERE tenant_id = $1 AND key = $2" },
    { "idem_store",
      "UPDATE idempotency_keys SET status = $3::int, response = $4"
      " WHERE tenant_id = $1 AND key = $2" },
    { "idem_forget",
      "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2" },
    { 0, 0 },
};

static int rate_limit(bc_api *api, bc_gate *g, bc_http_resp *resp, bc_gate_error err)
{
    const char *t[] = { g->who.tenant_id };
    PGresult *res = bc_pg_exec(g->pg, "tenant_plan", 1, t, NULL);
    long per_min, burst;
    char cap[32], rate[32], hv[32];
    double tokens;
    int allowed;

    g->credits_cents = 1;
    if (!res)
        return 0;   /* cannot tell: let it through rather than fail closed */
    per_min = (long)bc_pg_int(res, 0, "rate_per_min", 0);
    g->credits_cents = bc_pg_int(res, 0, "credits_cents", 0);
    burst = (long)bc_pg_int(res, 0, "burst", 0);
    PQclear(res);
    if (per_min <= 0)
        return 0;   /* a custom plan without a request limit */
    /* The bucket holds the burst allowance and refills at the plan's rate. */
    snprintf(cap, sizeof cap, "%ld", burst > 0 ? burst : 1);
    snprintf(rate, sizeof rate, "%.6f", (double)per_min / 60.0);
    const char *p[] = { g->who.key_id, cap, rate };
    if (!(res = bc_pg_exec(g->pg, "rate_take", 3, p, NULL)))
        return 0;
    tokens = strtod(bc_pg_val(res, 0, "tokens"), NULL);
    allowed = !strcmp(bc_pg_val(res, 0, "allowed"), "t");
    PQclear(res);
    snprintf(hv, sizeof hv, "%ld", per_min);
    bc_http_add_header(resp, "X-RateLimit-Limit", hv);
    snprintf(hv, sizeof hv, "%ld", tokens > 0 ? (long)tokens : 0L);
    bc_http_add_header(resp, "X-RateLimit-Remaining", hv);
    if (allowed)
        return 0;
    snprintf(hv, sizeof hv, "%ld", (long)ceil((1.0 - tokens) * 60.0 / (double)per_min));
    if (!strcmp(hv, "0"))
        snprintf(hv, sizeof hv, "1");
    bc_http_add_header(resp, "Retry-After", hv);
    bc_metrics_inc(api->ctx->metrics, "api_rate_limited_total",
                   "Requests refused by the plan's rate limit", NULL, 1);
    err(resp, 429, "rate_limited", "Rate limit exceeded; retry after the Retry-After header value");
    return -1;
}

int bc_gate_enter(bc_api *api, bc_gate *g, const bc_http_req *req,
                  bc_http_resp *resp, int allow_publishable, bc_gate_error err)
{
    bc_auth_result ar = bc_auth_request(g->pg, req, &g->who);

    if (ar == BC_AUTH_ERROR) {
        err(resp, 503, "unavailable", "authentication is unavailable; retry");
        return -1;
    }
    if (ar != BC_AUTH_OK) {
        err(resp, 401, "unauthorized", ar == BC_AUTH_MISSING
                ? "missing API key" : "invalid API key");
        return -1;
    }
    bc_http_client_ip(req, g->who.ip, sizeof g->who.ip);
    if (g->who.publishable && !allow_publishable) {
        err(resp, 403, "forbidden", "publishable keys cannot use this endpoint");
        return -1;
    }
    return rate_limit(api, g, resp, err);
}

int bc_gate_credits(bc_gate *g, bc_http_resp *resp, bc_gate_error err,
                    const char *msg)
{
    if (g->credits_cents > 0)
        return 0;
    err(resp, 402, "insufficient_credits", msg);
    return -1;
}

int bc_gate_idem_begin(bc_api *api, bc_gate *g, const bc_http_req *req,
                       bc_http_resp *resp, const char *route, int conflict_status,
                       bc_gate_error err)
{
    const char *key = bc_http_header(req, "Idempotency-Key");
    char hash[BC_SHA256_HEX], *buf;
    size_t len, n;
    const char *body = bc_http_body(req, &len);
    PGresult *res;
    int claimed;

    (void)api;
    if (!key)
        return 0;
    if (!*key || strlen(key) > 255) {
        err(resp, 400, "invalid_request", "Idempotency-Key must be 1-255 characters");
        return 1;
    }
    /* The request is "the same" if its route and body are. */
    n = strlen(route) + 1 + len;
    if (!(buf = malloc(n + 1)))
        return 0;
    snprintf(buf, n + 1, "%s\n", route);
    memcpy(buf + strlen(route) + 1, body, len);
    bc_sha256_hex(buf, n, hash);
    free(buf);
    const char *p[] = { g->who.tenant_id, key, route, hash };
    if (!(res = bc_pg_exec(g->pg, "idem_claim", 4, p, NULL))) {
        err(resp, 503, "unavailable", "idempotency store unavailable; retry");
        return 1;
    }
    claimed = PQntuples(res) == 1;
    PQclear(res);
    if (claimed) {
        snprintf(g->idem_key, sizeof g->idem_key, "%s", key);
        return 0;
    }
    const char *q[] = { g->who.tenant_id, key };
    if (!(res = bc_pg_exec(g->pg, "idem_get", 2, q, NULL)) || PQntuples(res) != 1) {
        PQclear(res);
        err(resp, 503, "unavailable", "idempotency store unavailable; retry");
        return 1;
    }
    if (strcmp(bc_pg_val(res, 0, "request_hash"), hash)) {
        err(resp, conflict_status, "idempotency_key_reused",
            "this Idempotency-Key was used with a different request");
    } else if (!bc_pg_val(res, 0, "status")) {
        err(resp, 409, "conflict", "a request with this Idempotency-Key is still in progress");
    } else {
        resp->status = (int)bc_pg_int(res, 0, "status", 200);
        resp->body = strdup(bc_pg_val(res, 0, "response"));
        resp->len = resp->body ? strlen(resp->body) : 0;
        resp->content_type = "application/json";
        bc_http_add_header(resp, "Idempotent-Replayed", "true");
    }
    PQclear(res);
    return 1;
}

void bc_gate_idem_secret(bc_gate *g, const char *field)
{
    snprintf(g->idem_secret, sizeof g->idem_secret, "%s", field);
}

/* The answer as stored for replays: body with its secret field, if any,
 * redacted. Returns a new string (caller frees), NULL if it cannot be made. */
static char *idem_kept(const bc_gate *g, const char *body)
{
    json_t *j;
    char *out;

    if (!g->idem_secret[0])
        return strdup(body);
    if (!(j = json_loads(body, 0, NULL)))
        return NULL;
    if (json_is_string(json_object_get(j, g->idem_secret)))
        json_object_set_new(j, g->idem_secret, json_string("redacted"));
    out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return out;
}

void bc_gate_idem_done(bc_api *api, bc_gate *g, const bc_http_resp *resp)
{
    char status[16], *kept = NULL;
    const char *p[] = { g->who.tenant_id, g->idem_key, status, NULL };
    int forget = resp->status >= 500;
    bc_err err = { "" };

    if (!g->idem_key[0])
        return;
    snprintf(status, sizeof status, "%d", resp->status);
    /* A 5xx is ours, not the client's: the key is freed so the retry runs
     * for real. Any other answer is kept for replays, never with a secret
     * in clear; one that cannot be redacted frees the key too. Unstored, a
     * repeat of the request runs again instead of replaying this answer:
     * what Idempotency-Key is for is lost, so it is an error. */
    if (!forget && !(p[3] = kept = idem_kept(g, resp->body ? resp->body : ""))) {
        bc_log(api->ctx->log, BC_ERROR, "idempotency.store_failed", "{s:s}", "error",
               "cannot redact the answer's secret");
        forget = 1;
    }
    if (bc_pg_run(g->pg, forget ? "idem_forget" : "idem_store", forget ? 2 : 4, p, &err) < 0)
        bc_log(api->ctx->log, BC_ERROR, "idempotency.store_failed", "{s:s}", "error", err.msg);
    free(kept);
}
