#include "bc_surface.h"

#include <stdio.h>
#include <string.h>

#include "bc_audit.h"
#include "bc_batches.h"
#include "bc_json.h"

const char *bc_surface_verb(const bc_surface_req *s)
{
    return strrchr(s->route->pattern, '/') + 1;
}

json_t *bc_surface_body(bc_surface_req *s)
{
    char why[300];
    size_t len;
    const char *raw = bc_http_body(s->req, &len);
    json_t *j = bc_json_object(raw, len, why, sizeof why);

    if (!j)
        s->gate->error(s->resp, 400, "invalid_request", why);
    return j;
}

json_t *bc_surface_tenant_pause(bc_surface_req *s)
{
    bc_err err = { "" };
    json_t *out = bc_tenant_pause(s->api, s->g.pg, &s->g.who,
                                  !strncmp(bc_surface_verb(s), "pause", 5), &err);

    if (!out)
        s->gate->error(s->resp, 500, "internal_error", s->gate->failed);
    return out;
}

void bc_surface_pause_all(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    json_t *out = bc_surface_tenant_pause(ud);

    (void)req;
    if (out)
        bc_http_json(resp, 200, out);
}

void bc_surface_fail(bc_surface_req *s, const char *what, const bc_err *err)
{
    char event[48];

    snprintf(event, sizeof event, "%s.failed", s->gate->name);
    bc_log(s->api->ctx->log, BC_ERROR, event, "{s:s,s:s,s:s}", "what", what, "tenant_id",
           s->g.who.tenant_id, "error", err ? err->msg : "");
    s->gate->error(s->resp, 500, "internal_error", s->gate->failed);
}

int bc_surface_audit_write(bc_surface_req *s, const char *action, const char *target,
                     json_t *detail, bc_err *err)
{
    bc_audit_actor a = { s->g.who.tenant_id, s->g.who.key_id, NULL, s->g.who.ip };

    return bc_audit_write(s->g.pg, &a, action, target, detail, err);
}

/* Opens the transaction of the route's audited write; 0, or -1 after a
 * 500. */
static int audit_begin(bc_surface_req *s)
{
    bc_err err = { "" };

    if (!s->route->arg)
        return 0;
    if (bc_pg_begin(s->g.pg, &err) < 0) {
        bc_surface_fail(s, ((const bc_surface_audit *)s->route->arg)->action, &err);
        return -1;
    }
    s->audit = s->route->arg;
    return 0;
}

/* Ends the write audit_begin opened, as bc_surface_audit says. */
static void audit_end(bc_surface_req *s)
{
    bc_err err = { "" };
    json_t *ans, *detail, *id;
    char fields[128];
    int ok;

    if (!s->audit)
        return;
    if (s->resp->status < 200 || s->resp->status > 299) {
        bc_pg_rollback(s->g.pg);
        return;
    }
    ans = s->resp->body ? json_loadb(s->resp->body, s->resp->len, 0, NULL) : NULL;
    detail = json_object();
    snprintf(fields, sizeof fields, "%s", s->audit->fields ? s->audit->fields : "");
    for (char *save = NULL, *f = strtok_r(fields, ",", &save); f; f = strtok_r(NULL, ",", &save))
        if (json_object_get(ans, f))
            json_object_set(detail, f, json_object_get(ans, f));
    id = json_object_get(ans, "id") ? json_object_get(ans, "id") : json_object_get(ans, "number");
    /* A handler that ended the transaction itself has committed its write:
     * its row still goes in, on its own. */
    ok = bc_surface_audit_write(s, s->audit->action, json_string_value(id), detail, &err) == 0 &&
         (!bc_pg_in_txn(s->g.pg) || bc_pg_commit(s->g.pg, &err) == 0);
    json_decref(ans);
    if (!ok) {
        bc_pg_rollback(s->g.pg);
        bc_surface_fail(s, s->audit->action, &err);
    }
}

/* The route, between the credit check and idempotency it asks for. */
static void run(bc_surface_req *s)
{
    const bc_surface_gate *gate = s->gate;
    int flags = s->route->flags;

    if ((flags & BC_SURFACE_CREDITS) &&
        bc_gate_credits(&s->g, s->resp, gate->credit_error ? gate->credit_error : gate->error,
                        gate->no_credit) < 0)
        return;
    if ((flags & BC_SURFACE_IDEM) &&
        bc_gate_idem_begin(s->api, &s->g, s->req, s->resp, bc_http_path(s->req),
                           gate->idem_conflict, gate->error))
        return;
    if (audit_begin(s) < 0)
        return;
    s->route->fn(s, s->req, s->resp);
    audit_end(s);
    if (flags & BC_SURFACE_IDEM)
        bc_gate_idem_done(s->api, &s->g, s->resp);
}

void bc_surface_serve(void *ud, const void *arg, const bc_http_route *route,
                      const bc_http_req *req, bc_http_resp *resp)
{
    bc_api *api = ud;
    const bc_surface_gate *gate = arg;
    bc_surface_req s = { .api = api, .gate = gate, .route = route, .req = req, .resp = resp };
    int publishable = route && (route->flags & BC_SURFACE_PUBLISHABLE);

    bc_pgpool *pool = route && (route->flags & BC_HTTP_WAITS) ? api->wait_pool : api->pool;

    s.g.pg = bc_pgpool_get(pool);
    if (bc_gate_enter(api, &s.g, req, resp, publishable, gate->error) == 0 &&
        (!gate->check || gate->check(&s) == 0)) {
        if (route)
            run(&s);
        else
            bc_http_miss(req, resp, gate->error, gate->not_found);
    }
    bc_pgpool_put(pool, s.g.pg);
}
