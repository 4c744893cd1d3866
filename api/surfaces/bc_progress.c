#include "bc_progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_json.h"
#include "bc_surface.h"

#define PREFIX "/progress/batches"
#define MAX_ID 64

const bc_pg_stmt bc_progress_stmts[] = {
    /* Statements this module needs, for the API's table (bc_api_main.c). The rate counts
     * recipients that reached completed or failed in the last 60 s, over the
     * part of the window the batch has been admitted for (a batch admitted 10 s
     * ago is not diluted over 60). */
    { "progress_batches",
      "SELECT b.id, b.name, b.agent_id, b.region, b.state,"
      "       b.target_concurrency_limit, b.total, b.retry_count,"
      "       rfc3339(b.created_at) AS created_at,"
      "       rfc3339(b.scheduled_at) AS scheduled_at,"
      "       rfc3339(b.admitted_at) AS admitted_at,"
      "       rfc3339(greatest(b.updated_at, c.last)) AS updated_at,"
      "       c.queued, c.live, c.completed, c.failed, c.cancelled, c.expired,"
      "       CASE WHEN c.recent = 0 OR b.admitted_at IS NULL THEN 0"
      "            ELSE c.recent * 60.0 / greatest(1.0, least(60.0,"
      "                 extract(epoch FROM now() - b.admitted_at)))"
      "       END AS rate_per_min, o.outcomes,"
      "       b.state <> 'cancelled' AND (b.paused_at IS NOT NULL"
      "         OR tp.paused_at IS NOT NULL) AS held"
      "  FROM batches b JOIN tenants tp ON tp.id = b.tenant_id"
      "  CROSS JOIN LATERAL (SELECT"
      "       count(*) FILTER (WHERE status = 'queued') AS queued,"
      "       count(*) FILTER (WHERE status IN ('dispatched', 'started')) AS live,"
      "       count(*) FILTER (WHERE status = 'completed') AS completed,"
      "       count(*) FILTER (WHERE status = 'failed') AS failed,"
      "       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,"
      "       count(*) FILTER (WHERE status = 'expired') AS expired,"
      "       count(*) FILTER (WHERE status IN ('completed', 'failed')"
      "                          AND updated_at > now() - interval '60 seconds')"
      "         AS recent,"
      "       max(updated_at) AS last"
      "       FROM recipients r WHERE r.batch_id = b.id) c"
      "  CROSS JOIN LATERAL (SELECT coalesce(jsonb_object_agg(reason, n), '{}')::text"
      "       AS outcomes FROM (SELECT coalesce(end_reason, 'unknown') AS reason,"
      "       count(*) AS n FROM recipients WHERE batch_id = b.id"
      "       AND status IN ('completed', 'failed', 'expired') GROUP BY 1) x) o"
      " WHERE b.tenant_id = $1 AND ($2::text IS NULL OR b.id = $2)"
      "   AND ($3::text IS NULL OR (b.created_at, b.id) <"
      "        (SELECT created_at, id FROM batches WHERE id = $3 AND tenant_id = $1))"
      " ORDER BY b.created_at DESC, b.id DESC LIMIT $4::int" },
    { "progress_tenant",
      "SELECT t.concurrency, (SELECT count(*) FROM recipients r"
      "        WHERE r.tenant_id = t.id AND r.status IN ('dispatched', 'started'))"
      "       AS live FROM tenants t WHERE t.id = $1" },
    { 0, 0 },
};

/* The batch status words of DESIGN.md: what was decided (draft, scheduled,
 * pending, cancelled) or, once admitted, whether work is left and how the
 * rest went; "paused" while a pause holds recipients that wait. */
static const char *status_of(const char *state, long long queued, long long live,
                             long long completed, int held)
{
    if (held && queued > 0 && strcmp(state, "cancelled"))
        return "paused";
    if (strcmp(state, "admitted") && strcmp(state, "paused"))
        return state;
    if (queued + live)
        return "in_progress";
    return completed ? "completed" : "failed";
}

/* bc_http_json, with reals printed as people write them (42.5, not
 * 42.500000000000007): rate_per_min is the one real here. */
static void reply(bc_http_resp *resp, json_t *body)
{
    free(resp->body);
    resp->status = 200;
    resp->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    resp->len = resp->body ? strlen(resp->body) : 0;
    resp->content_type = "application/json";
    json_decref(body);
}

static json_t *batch_json(const PGresult *res, int i)
{
    long long queued = bc_pg_int(res, i, "queued", 0), live = bc_pg_int(res, i, "live", 0);
    long long completed = bc_pg_int(res, i, "completed", 0);
    const char *state = bc_pg_val(res, i, "state");
    const char *status = status_of(state, queued, live, completed,
                                   !strcmp(bc_pg_val(res, i, "held"), "t"));
    double rate = strtod(bc_pg_val(res, i, "rate_per_min"), NULL);
    json_t *outcomes = json_loads(bc_pg_val(res, i, "outcomes"), 0, NULL);
    /* Done: nothing of it will change any more. A cancelled batch still has
     * its live calls to finish. */
    int done = !strcmp(status, "completed") || !strcmp(status, "failed") ||
               (!strcmp(status, "cancelled") && queued + live == 0);
    json_t *eta = json_null();

    if (!done && !strcmp(status, "in_progress") && rate > 0)
        eta = json_integer((json_int_t)ceil((double)(queued + live) * 60.0 / rate));
    return json_pack("{s:o,s:o,s:o,s:o,s:s,s:b,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I,s:I},s:o,"
                     "s:f,s:o,s:I,s:o,s:o,s:o,s:o}",
                     "id", bc_json_pg_str(res, i, "id"), "name", bc_json_pg_str(res, i, "name"),
                     "agent_id", bc_json_pg_str(res, i, "agent_id"),
                     "region", bc_json_pg_str(res, i, "region"), "status", status, "done", done,
                     "total", (json_int_t)bc_pg_int(res, i, "total", 0),
                     "target_concurrency_limit",
                     (json_int_t)bc_pg_int(res, i, "target_concurrency_limit", 0),
                     "counts", "queued", (json_int_t)queued, "live", (json_int_t)live,
                     "completed", (json_int_t)completed,
                     "failed", (json_int_t)bc_pg_int(res, i, "failed", 0),
                     "cancelled", (json_int_t)bc_pg_int(res, i, "cancelled", 0),
                     "expired", (json_int_t)bc_pg_int(res, i, "expired", 0),
                     "outcomes", outcomes ? outcomes : json_object(),
                     "rate_per_min", round(rate * 10.0) / 10.0, "eta_seconds", eta,
                     "retry_count", (json_int_t)bc_pg_int(res, i, "retry_count", 0),
                     "created_at", bc_json_pg_str(res, i, "created_at"),
                     "scheduled_at", bc_json_pg_str(res, i, "scheduled_at"),
                     "admitted_at", bc_json_pg_str(res, i, "admitted_at"),
                     "updated_at", bc_json_pg_str(res, i, "updated_at"));
}

static json_t *tenant_json(bc_pg *pg, const char *tenant, bc_err *err)
{
    const char *p[] = { tenant };
    PGresult *res = bc_pg_exec(pg, "progress_tenant", 1, p, err);
    json_t *t;

    if (!res)
        return NULL;
    if (PQntuples(res) != 1) {
        bc_err_set(err, "tenant '%s' not found", tenant);
        PQclear(res);
        return NULL;
    }
    t = json_pack("{s:I,s:I}", "live_calls", (json_int_t)bc_pg_int(res, 0, "live", 0),
                  "concurrency_limit", (json_int_t)bc_pg_int(res, 0, "concurrency", 0));
    PQclear(res);
    return t;
}

static void respond(bc_api *api, bc_pg *pg, const char *tenant, const char *id,
                    const bc_http_req *req, bc_http_resp *resp)
{
    const char *after = id ? NULL : bc_http_query(req, "starting_after");
    char lim[16];
    long n = 1;
    bc_err err = { "" };
    PGresult *res = NULL;
    json_t *t = NULL, *arr;

    if (!id && bc_http_query_long(req, "limit", 1, 100, 10, &n) < 0) {
        bc_http_error(resp, 400, "invalid_request", "limit must be an integer between 1 and 100");
        return;
    }
    snprintf(lim, sizeof lim, "%ld", n + 1);   /* one more tells has_more */
    const char *p[] = { tenant, id, after, lim };
    if (!(res = bc_pg_exec(pg, "progress_batches", 4, p, &err)) ||
        !(t = tenant_json(pg, tenant, &err))) {
        bc_log(api->ctx->log, BC_ERROR, "progress.read_failed", "{s:s,s:s}", "tenant_id",
               tenant, "error", err.msg);
        bc_http_error(resp, 500, "internal_error", "The progress could not be read.");
        goto out;
    }
    if (id) {
        json_t *b;

        if (PQntuples(res) != 1) {
            bc_http_error(resp, 404, "not_found", "batch not found");
            goto out;
        }
        b = batch_json(res, 0);
        json_object_set_new(b, "tenant", t);
        t = NULL;
        reply(resp, b);
        goto out;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res) && i < n; i++)
        json_array_append_new(arr, batch_json(res, i));
    reply(resp, json_pack("{s:o,s:b,s:o}", "data", arr, "has_more", PQntuples(res) > n,
                          "tenant", t));
    t = NULL;
out:
    json_decref(t);
    PQclear(res);
}

static void list(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;

    respond(s->api, s->g.pg, s->g.who.tenant_id, NULL, req, resp);
}

static void get(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;
    const char *id = bc_http_param(req, "id");

    if (strlen(id) > MAX_ID)
        bc_http_error(resp, 404, "not_found", "no such route");
    else
        respond(s->api, s->g.pg, s->g.who.tenant_id, id, req, resp);
}

static const bc_http_route routes[] = {
    { "GET", PREFIX, list, NULL, 0, NULL },
    { "GET", PREFIX "/{id}", get, NULL, 0, NULL },
    { 0 },
};

static const bc_surface_gate gate = { .name = "progress", .error = bc_http_error,
                                      .not_found = "no such route",
                                      .failed = "The progress could not be read." };

bc_http_surface bc_progress_surface(bc_api *api)
{
    return (bc_http_surface){ PREFIX, routes, bc_surface_serve, api, &gate };
}
