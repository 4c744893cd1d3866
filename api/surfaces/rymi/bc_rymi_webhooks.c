#include "bc_rymi_webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypto.h"
#include "bc_dnc.h"
#include "bc_json.h"
#include "bc_url.h"

/* A webhook delivery as the API shows it (d: webhook_deliveries). */
#define DELIVERY_COLS \
    "'whd_' || d.id AS id, d.event_id, d.event_type, d.status," \
    " CASE WHEN d.status = 'pending' THEN rfc3339(d.next_attempt_at) END AS next_attempt_at," \
    " d.attempts, d.last_status, d.last_error, rfc3339(d.created_at) AS created_at," \
    " rfc3339(d.delivered_at) AS delivered_at, d.payload"

const bc_pg_stmt bc_rymi_webhooks_stmts[] = {
    { "rymi_webhooks",
      "SELECT id, url, events::text[] AS events, enabled, rfc3339(created_at) AS created_at,"
      "       rfc3339(updated_at) AS updated_at"
      "  FROM webhooks WHERE tenant_id = $1 AND ($2::text IS NULL OR id = $2)"
      " ORDER BY created_at, id" },
    { "rymi_webhook_insert",
      "INSERT INTO webhooks (id, tenant_id, url, events, secret, enabled)"
      " VALUES ($1, $2, $3, $4::text[], $5, $6::boolean)" },
    { "rymi_webhook_update",
      "UPDATE webhooks SET url = coalesce($3, url),"
      "       events = coalesce($4::text[], events),"
      "       enabled = coalesce($5::bool, enabled), updated_at = now()"
      " WHERE id = $1 AND tenant_id = $2" },
    { "rymi_webhook_delete",
      "DELETE FROM webhooks WHERE id = $1 AND tenant_id = $2" },
    { "rymi_webhook_owned",
      "SELECT 1 FROM webhooks WHERE id = $1 AND tenant_id = $2" },
    { "rymi_webhook_deliveries",
      "SELECT " DELIVERY_COLS ", count(*) OVER () AS total"
      "  FROM webhook_deliveries d WHERE d.webhook_id = $1"
      "   AND ($2::text IS NULL OR d.status = $2)"
      " ORDER BY d.created_at DESC, d.id DESC LIMIT $3::int OFFSET $4::int" },
    /* A delivery that is not pending starts again from a first try. Returns
     * one row per delivery found; its id is NULL when it was pending. */
    { "rymi_webhook_redeliver",
      "WITH f AS (SELECT d.id, d.status FROM webhook_deliveries d"
      "             JOIN webhooks w ON w.id = d.webhook_id"
      "            WHERE d.id = $3::bigint AND d.webhook_id = $1 AND w.tenant_id = $2"
      "              FOR UPDATE OF d),"
      " d AS (UPDATE webhook_deliveries d SET status = 'pending', attempts = 0,"
      "              next_attempt_at = now(), claim_token = NULL, last_status = NULL,"
      "              last_error = NULL, delivered_at = NULL, updated_at = now()"
      "         FROM f WHERE d.id = f.id AND f.status <> 'pending'"
      "       RETURNING " DELIVERY_COLS ")"
      " SELECT d.* FROM f LEFT JOIN d ON true" },
    { 0, 0 },
};

/* What the webhook sender delivers (docs/webhooks.md); each comes from the
 * call-results topic. */
static const char *webhook_events[] = { "call.completed", "call.failed", "batch.completed",
                                        "call.report", "call.recording", "batch.paused", NULL };

static char *events_array(bc_surface_req *r, json_t *ev)
{
    char why[200];
    size_t i;
    json_t *x;

    if (!json_is_array(ev) || json_array_size(ev) == 0 || json_array_size(ev) > 16) {
        bc_rymi_bad_field(r, "events must be a non-empty array of event names", "events");
        return NULL;
    }
    json_array_foreach(ev, i, x) {
        int ok = 0;
        for (int k = 0; webhook_events[k] && !ok; k++)
            ok = json_is_string(x) && !strcmp(json_string_value(x), webhook_events[k]);
        if (!ok) {
            snprintf(why, sizeof why, "events[%zu] is not one of call.completed, "
                     "call.failed, batch.completed, call.report, call.recording, "
                     "batch.paused", i);
            bc_rymi_bad_field(r, why, "events");
            return NULL;
        }
    }
    return bc_dnc_array(ev, NULL);
}

/* Reads "url" (required or not); 0 with *url set (NULL if absent and
 * optional), or -1 after a 400. */
static int webhook_url(bc_surface_req *r, json_t *in, int required, const char **url)
{
    char why[200];

    if (bc_json_no_null(in, "", "url", why, sizeof why) < 0 ||
        bc_json_str(in, "url", required, BC_URL_MAX, url, why, sizeof why) < 0 ||
        (*url && bc_url_check(*url, r->api->webhook_https_only, r->api->webhook_allow_private,
                                  why, sizeof why) < 0)) {
        bc_rymi_bad_field(r, why, "url");
        return -1;
    }
    return 0;
}

static json_t *webhook_json(const PGresult *res, int i)
{
    /* text[] comes back as {a,b}; our event names need no quoting. */
    const char *ev = bc_pg_val(res, i, "events");
    json_t *arr = json_array();
    char buf[512];

    snprintf(buf, sizeof buf, "%s", ev ? ev : "{}");
    buf[strlen(buf) - 1] = '\0';
    for (char *save = NULL, *t = strtok_r(buf + 1, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(t));
    return json_pack("{s:o,s:o,s:o,s:b,s:o,s:o}", "id", bc_json_pg_str(res, i, "id"),
                     "url", bc_json_pg_str(res, i, "url"), "events", arr,
                     "enabled", !strcmp(bc_pg_val(res, i, "enabled"), "t"),
                     "created_at", bc_json_pg_str(res, i, "created_at"),
                     "updated_at", bc_json_pg_str(res, i, "updated_at"));
}

static void webhooks_list(bc_surface_req *r, const char *only, int status, const char *secret)
{
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id, only };
    PGresult *res = bc_pg_exec(r->g.pg, "rymi_webhooks", 2, p, &err);
    json_t *arr;

    if (!res) {
        bc_surface_fail(r, "webhooks.list", &err);
        return;
    }
    if (only) {
        if (PQntuples(res) == 1) {
            json_t *w = webhook_json(res, 0);
            if (secret)   /* shown once, when created */
                json_object_set_new(w, "secret", json_string(secret));
            bc_http_json(r->resp, status, w);
        } else {
            bc_http_error(r->resp, 404, "not_found", "Webhook not found");
        }
        PQclear(res);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, webhook_json(res, i));
    PQclear(res);
    bc_http_json(r->resp, 200, json_pack("{s:o}", "webhooks", arr));
}

static void webhook_create(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    json_t *in = bc_surface_body(r);
    const char *url = NULL;
    char id[48], secret[48], *ev = NULL;
    int enabled = 1;
    bc_err err = { "" };
    PGresult *res;

    (void)req;
    (void)resp;
    if (!in)
        return;
    /* Present, it is a boolean, and a webhook created disabled stays so. */
    if (json_unpack(in, "{s?b}", "enabled", &enabled) < 0) {
        bc_rymi_bad_field(r, "enabled must be a boolean", "enabled");
        json_decref(in);
        return;
    }
    if (webhook_url(r, in, 1, &url) == 0 && (ev = events_array(r, json_object_get(in, "events")))) {
        bc_id_new(id, sizeof id, "wh");
        bc_random_token(secret, sizeof secret, "whsec_", 32);
        const char *p[] = { id, r->g.who.tenant_id, url, ev, secret,
                            enabled ? "t" : "f" };
        if (!(res = bc_pg_exec(r->g.pg, "rymi_webhook_insert", 6, p, &err)))
            bc_surface_fail(r, "webhook.create", &err);
        else {
            PQclear(res);
            webhooks_list(r, id, 201, secret);
            bc_gate_idem_secret(&r->g, "secret");
        }
    }
    free(ev);
    json_decref(in);
}

static void webhook_update(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *id = bc_http_param(req, "id");
    json_t *in = bc_surface_body(r), *events;
    const char *url = NULL;
    char *ev = NULL;
    int enabled = -1;   /* absent: left as it is */
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    if (webhook_url(r, in, 0, &url) < 0)
        goto out;
    if (json_unpack(in, "{s?b}", "enabled", &enabled) < 0) {
        bc_rymi_bad_field(r, "enabled must be a boolean", "enabled");
        goto out;
    }
    if ((events = json_object_get(in, "events")) && !(ev = events_array(r, events)))
        goto out;
    const char *p[] = { id, r->g.who.tenant_id, url, ev,
                        enabled < 0 ? NULL : enabled ? "t" : "f" };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_webhook_update", 5, p, &err))) {
        bc_surface_fail(r, "webhook.update", &err);
        goto out;
    }
    if (atoi(PQcmdTuples(res)))
        webhooks_list(r, id, 200, NULL);
    else
        bc_http_error(resp, 404, "not_found", "Webhook not found");
    PQclear(res);
out:
    free(ev);
    json_decref(in);
}

static json_t *delivery_json(const PGresult *res, int i)
{
    const char *code = bc_pg_val(res, i, "last_status");

    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:o,s:o,s:o,s:o}",
                     "id", bc_json_pg_str(res, i, "id"),
                     "event_id", bc_json_pg_str(res, i, "event_id"),
                     "event_type", bc_json_pg_str(res, i, "event_type"),
                     "status", bc_json_pg_str(res, i, "status"),
                     "next_attempt_at", bc_json_pg_str(res, i, "next_attempt_at"),
                     "attempts", (json_int_t)bc_pg_int(res, i, "attempts", 0),
                     "last_status_code", code ? json_integer(atoi(code)) : json_null(),
                     "last_error", bc_json_pg_str(res, i, "last_error"),
                     "created_at", bc_json_pg_str(res, i, "created_at"),
                     "delivered_at", bc_json_pg_str(res, i, "delivered_at"),
                     "payload", bc_rymi_json_col(res, i, "payload"));
}

/* GET /v1/webhooks/:id/deliveries: newest first, optionally one status. */
static void deliveries_list(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *id = bc_http_param(req, "id");
    bc_err err = { "" };
    const char *status = bc_http_query(req, "status");
    char lim[16], off[16];
    int limit, offset;
    PGresult *res;
    json_t *arr;

    if (bc_rymi_paging(r, &limit, &offset) < 0)
        return;
    if (status && strcmp(status, "pending") && strcmp(status, "delivered") &&
        strcmp(status, "dead")) {
        bc_http_error(resp, 400, "invalid_request", "status must be pending, delivered or dead");
        return;
    }
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *own[] = { id, r->g.who.tenant_id };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_webhook_owned", 2, own, &err))) {
        bc_surface_fail(r, "webhook.deliveries", &err);
        return;
    }
    if (PQntuples(res) == 0) {
        bc_http_error(resp, 404, "not_found", "Webhook not found");
        PQclear(res);
        return;
    }
    PQclear(res);
    const char *p[] = { id, status, lim, off };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_webhook_deliveries", 4, p, &err))) {
        bc_surface_fail(r, "webhook.deliveries", &err);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, delivery_json(res, i));
    bc_rymi_page(r, "deliveries", arr, res, limit, offset);
    PQclear(res);
}

/* POST /v1/webhooks/:id/deliveries/:delivery_id/retry: a dead-lettered (or
 * delivered) delivery is sent again from a first try; a pending one is 409. */
static void delivery_retry(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *id = bc_http_param(req, "id");
    const char *did = bc_http_param(req, "delivery_id");
    bc_err err = { "" };
    const char *num = strncmp(did, "whd_", 4) ? NULL : did + 4;
    PGresult *res;

    if (!num || !*num || strspn(num, "0123456789") != strlen(num) || strlen(num) > 18) {
        bc_http_error(resp, 404, "not_found", "Delivery not found");
        return;
    }
    const char *p[] = { id, r->g.who.tenant_id, num };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_webhook_redeliver", 3, p, &err))) {
        bc_surface_fail(r, "webhook.redeliver", &err);
        return;
    }
    if (PQntuples(res) == 0)
        bc_http_error(resp, 404, "not_found", "Delivery not found");
    else if (!bc_pg_val(res, 0, "id"))   /* it was pending: nothing changed */
        bc_http_json(resp, 409, json_pack("{s:s,s:s,s:s}", "error",
                                             "Delivery is already waiting to be sent",
                                             "code", "conflict", "detail", "pending"));
    else
        bc_http_json(resp, 202, delivery_json(res, 0));
    PQclear(res);
}

/* GET /v1/webhooks and /v1/webhooks/{id}. */
static void webhooks_read(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    (void)resp;
    webhooks_list(ud, bc_http_param(req, "id"), 200, NULL);
}

static void webhook_delete(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *p[] = { bc_http_param(req, "id"), r->g.who.tenant_id };

    (void)resp;
    bc_rymi_delete(r, "rymi_webhook_delete", 2, p, "Webhook");
}

#define IDEM BC_SURFACE_IDEM

const bc_http_route bc_rymi_webhooks_routes[] = {
    { "GET", "/v1/webhooks", webhooks_read, NULL, 0, NULL },
    { "POST", "/v1/webhooks", webhook_create, NULL, IDEM,
      BC_SURFACE_AUDIT("webhook.create", "url,events,enabled") },   /* not its secret */
    { "GET", "/v1/webhooks/{id}", webhooks_read, NULL, 0, NULL },
    { "PATCH", "/v1/webhooks/{id}", webhook_update, NULL, 0,
      BC_SURFACE_AUDIT("webhook.update", "url,events,enabled") },
    { "DELETE", "/v1/webhooks/{id}", webhook_delete, NULL, 0,
      BC_SURFACE_AUDIT("webhook.delete", NULL) },
    { "GET", "/v1/webhooks/{id}/deliveries", deliveries_list, NULL, 0, NULL },
    { "POST", "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", delivery_retry, NULL, IDEM,
      BC_SURFACE_AUDIT("webhook.redeliver", "event_id,event_type") },
    { 0 },
};
