#include "bc_rymi.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_agent.h"
#include "bc_apikey.h"
#include "bc_audit.h"
#include "bc_batches.h"
#include "bc_crypto.h"
#include "bc_dnc.h"
#include "bc_e164.h"
#include "bc_gate.h"
#include "bc_policy.h"
#include "bc_retry.h"
#include "bc_json.h"
#include "bc_url.h"

#define MAX_BATCH 500        /* recipients per POST /v1/calls/batch */
/* Numbers per POST /v1/dnc/batch (and /check): an import of a few hundred
 * thousand fits in one request (the body limit, 8 MiB, holds ~500,000). */
#define MAX_DNC_BATCH 500000

typedef struct rq {
    bc_api *api;
    const bc_http_req *req;
    bc_http_resp *resp;
    bc_gate g;
    const char *method;
    char seg[6][128];        /* path segments after /v1 */
    int nseg;
    /* The write audit_begin opened: its action, and the fields of the
     * answer kept as the row's detail ("name,region"). */
    const char *audit_action;
    const char *audit_fields;
} rq;

static void error(bc_http_resp *resp, int status, const char *code, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:s,s:s}", "error", msg, "code", code));
}

/* Rymi's documented 402 body: {error, code, detail}. */
static void credit_error(bc_http_resp *resp, int status, const char *code, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:s,s:s,s:s}", "error", msg, "code", code,
                                         "detail", "tenant_balance_exhausted"));
}

static void fail(rq *r, const char *what, const bc_err *err)
{
    bc_log(r->api->ctx->log, BC_ERROR, "rymi.failed", "{s:s,s:s,s:s}", "what", what,
           "tenant_id", r->g.who.tenant_id, "error", err ? err->msg : "");
    error(r->resp, 500, "internal_error", "Internal server error");
}

static PGresult *q(rq *r, const char *stmt, int n, const char *const *p, bc_err *err)
{
    return bc_pg_exec(r->g.pg, stmt, n, p, err);
}

static int is(const rq *r, const char *method, int nseg, ...)
{
    va_list ap;
    int ok = !strcmp(r->method, method) && r->nseg == nseg;

    va_start(ap, nseg);
    for (int i = 0; ok && i < nseg; i++) {
        const char *want = va_arg(ap, const char *);
        ok = !want || !strcmp(want, r->seg[i]);
    }
    va_end(ap);
    return ok;
}

static json_t *body(rq *r)
{
    char why[300];
    size_t len;
    const char *raw = bc_http_body(r->req, &len);
    json_t *j = bc_json_object(raw, len, why, sizeof why);

    if (!j)
        error(r->resp, 400, "invalid_request", why);
    return j;
}

/* limit (default 50, max 200) and offset (default 0); -1 after a 400. */
static int paging(rq *r, int *limit, int *offset)
{
    long l, o;

    if (bc_http_query_long(r->req, "limit", 1, 200, 50, &l) < 0) {
        error(r->resp, 400, "invalid_request", "limit must be an integer between 1 and 200");
        return -1;
    }
    if (bc_http_query_long(r->req, "offset", 0, 1000000000, 0, &o) < 0) {
        error(r->resp, 400, "invalid_request", "offset must be an integer between 0 and 1000000000");
        return -1;
    }
    *limit = (int)l;
    *offset = (int)o;
    return 0;
}

static json_t *json_or_null(const PGresult *res, int row, const char *col)
{
    const char *v = bc_pg_val(res, row, col);
    json_t *j = v ? json_loads(v, 0, NULL) : NULL;

    return j ? j : json_null();
}

/* ---- audit log ----------------------------------------------------------- */

/* The audit row of a write by the caller, in the write's transaction.
 * Takes ownership of detail. */
static int audit(rq *r, const char *action, const char *target, json_t *detail, bc_err *err)
{
    bc_audit_actor a = { r->g.who.tenant_id, r->g.who.key_id, NULL, r->g.who.ip };

    return bc_audit_write(r->g.pg, &a, action, target, detail, err);
}

/* Opens the transaction of a write to a resource only this surface has
 * (agents, numbers, DNC, webhooks, keys); audit_end closes it with its
 * audit row. Batches are audited by the core (bc_batches), in theirs.
 * 0, or -1 after a 500. */
static int audit_begin(rq *r, const char *action, const char *fields)
{
    bc_err err = { "" };

    if (bc_pg_begin(r->g.pg, &err) < 0) {
        fail(r, action, &err);
        return -1;
    }
    r->audit_action = action;
    r->audit_fields = fields;
    return 0;
}

/* A 2xx answer commits the write with its audit row, whose target is the
 * answer's id (else its number) and whose detail is the answer's
 * audit_fields; any other answer rolls the write back, so a refused request
 * leaves neither. If the row or the commit fails, nothing is kept and the
 * answer becomes a 500. */
static void audit_end(rq *r)
{
    bc_err err = { "" };
    json_t *ans, *detail, *id;
    char fields[128];
    int ok;

    if (!r->audit_action)
        return;
    if (r->resp->status < 200 || r->resp->status > 299) {
        bc_pg_rollback(r->g.pg);
        return;
    }
    ans = r->resp->body ? json_loadb(r->resp->body, r->resp->len, 0, NULL) : NULL;
    detail = json_object();
    snprintf(fields, sizeof fields, "%s", r->audit_fields ? r->audit_fields : "");
    for (char *save = NULL, *f = strtok_r(fields, ",", &save); f; f = strtok_r(NULL, ",", &save))
        if (json_object_get(ans, f))
            json_object_set(detail, f, json_object_get(ans, f));
    id = json_object_get(ans, "id") ? json_object_get(ans, "id") : json_object_get(ans, "number");
    /* A handler that ended the transaction itself has committed its write:
     * its row still goes in, on its own. */
    ok = audit(r, r->audit_action, json_string_value(id), detail, &err) == 0 &&
         (!bc_pg_in_txn(r->g.pg) || bc_pg_commit(r->g.pg, &err) == 0);
    json_decref(ans);
    if (!ok) {
        bc_pg_rollback(r->g.pg);
        fail(r, r->audit_action, &err);
    }
}

/* GET /v1/audit-logs: the tenant's audit log, newest first; limit/offset
 * and an optional action. Admin rows do not name the operator. */
static void audit_list(rq *r)
{
    const char *action = bc_http_query(r->req, "action");
    int limit, offset;
    long long total = 0;
    bc_err err = { "" };
    json_t *arr;

    if (paging(r, &limit, &offset) < 0)
        return;
    if (action && (!*action || strlen(action) > 64 ||
                   strspn(action, "abcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(action))) {
        error(r->resp, 400, "invalid_request",
              "action must be 1 to 64 lowercase letters, digits, '.', '_' or '-'");
        return;
    }
    if (!(arr = bc_audit_list(r->g.pg, r->g.who.tenant_id, action, limit, offset, 0, &total,
                              &err))) {
        fail(r, "audit.list", &err);
        return;
    }
    bc_http_json(r->resp, 200, json_pack("{s:o,s:I,s:i,s:i}", "audit_logs", arr, "total",
                                         (json_int_t)total, "limit", limit, "offset", offset));
}

/* ---- sessions (batches) ------------------------------------------------- */

static const char *participant_status(const char *s)
{
    if (!strcmp(s, "dispatched"))
        return "dialing";
    if (!strcmp(s, "started"))
        return "in_progress";
    if (!strcmp(s, "cancelled"))
        return "failed";
    return s;   /* queued, completed, failed */
}

/* An end reason in Rymi's words: a policy stop as Rymi names it
 * (bc_policy_word: a listed number is "dnc_listed"); new reference. */
static json_t *rymi_reason(json_t *reason)
{
    const char *s = json_string_value(reason);

    return s ? json_string(bc_policy_word("rymi", s)) : json_null();
}

static const char *session_status(json_t *b)
{
    json_int_t live = json_integer_value(json_object_get(b, "live"));
    json_int_t queued = json_integer_value(json_object_get(b, "queued"));
    json_int_t done = json_integer_value(json_object_get(b, "finished")) +
                      json_integer_value(json_object_get(b, "cancelled"));
    json_int_t completed = json_integer_value(json_object_get(b, "completed"));
    int cancelled = !strcmp(json_string_value(json_object_get(b, "state")), "cancelled");

    /* Keep in step with BC_RYMI_SESSION_STATUS, which filters lists. */
    if (bc_batch_paused(b))
        return "paused";   /* extension: held, with participants waiting */
    if (live > 0 || (queued > 0 && done > 0 && !cancelled))
        return "in_progress";
    if (queued > 0 && !cancelled)
        return "queued";
    if (completed > 0 || cancelled)
        return "completed";
    return "failed";
}

static json_t *suffix_id(const char *prefix, const char *id)
{
    const char *u = strchr(id, '_');

    return json_sprintf("%s_%s", prefix, u ? u + 1 : id);
}

static json_t *render_session(json_t *b)
{
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *ext = json_string_value(json_object_get(b, "external_id"));
    json_t *o = json_pack("{s:s,s:o,s:s,s:s,s:O,s:O,s:O,s:O,s:O,s:O,s:O}",
                          "id", id, "room_name", json_sprintf("call_%s", id),
                          "status", session_status(b), "batch_id", ext ? ext : id,
                          "agent_id", json_object_get(b, "agent_id"),
                          "from_number", json_object_get(b, "from_number"),
                          "metadata", json_object_get(b, "metadata"),
                          "variables", json_object_get(b, "variables"),
                          "post_call", json_object_get(b, "post_call"),
                          "created_at", json_object_get(b, "created_at"),
                          "updated_at", json_object_get(b, "updated_at"));
    json_t *rs = json_object_get(b, "recipients"), *x;
    size_t i;

    json_object_set_new(o, "queued", json_integer(json_integer_value(json_object_get(b, "queued"))));
    /* Extension: of those, deferred until their own calling hours open. */
    json_object_set(o, "waiting_for_window", json_object_get(b, "waiting_for_window"));
    /* Extension: why it is not dialing, "concurrency" or "region". */
    if (!json_is_null(json_object_get(b, "waiting_for")))
        json_object_set(o, "waiting_for", json_object_get(b, "waiting_for"));
    json_object_set_new(o, "total", json_integer(json_integer_value(json_object_get(b, "total"))));
    /* Extension: the batch's retry policy. */
    bc_batch_retry_fields(o, b, 1);
    /* Extensions: its expiry and the participants it ended, when it has one. */
    if (!json_is_null(json_object_get(b, "latest_at"))) {
        json_object_set(o, "latest_at", json_object_get(b, "latest_at"));
        json_object_set(o, "expired", json_object_get(b, "expired"));
    }
    /* Extension: participants the tenant's policy stopped undialed, by
     * reason (a number listed after the session was queued). */
    json_object_set_new(o, "blocked", bc_batch_blocked(b, "rymi"));
    /* Extensions: when the session, or the whole account, was paused. */
    if (!json_is_null(json_object_get(b, "paused_at")))
        json_object_set(o, "paused_at", json_object_get(b, "paused_at"));
    if (!json_is_null(json_object_get(b, "tenant_paused_at")))
        json_object_set(o, "tenant_paused_at", json_object_get(b, "tenant_paused_at"));
    /* Extension: why it paused itself ("insufficient_credits"). */
    if (!json_is_null(json_object_get(b, "pause_reason")))
        json_object_set(o, "pause_reason", json_object_get(b, "pause_reason"));
    if (!rs)
        return o;
    json_t *parts = json_array();
    json_array_foreach(rs, i, x) {
        const char *rid = json_string_value(json_object_get(x, "id"));
        json_t *p = json_pack("{s:s,s:s,s:O,s:s,s:o,s:o,s:O,s:o,s:O}",
                              "id", rid, "transport", "pstn",
                              "identity", json_object_get(x, "to_number"),
                              "status", participant_status(json_string_value(
                                            json_object_get(x, "status"))),
                              "telephony_leg_id", suffix_id("leg", rid),
                              "job_id", suffix_id("job", rid),
                              "call_id", json_object_get(x, "call_id"),
                              "end_reason", rymi_reason(json_object_get(x, "end_reason")),
                              "metadata", json_object_get(x, "metadata"));
        json_object_set(p, "from_number", json_is_null(json_object_get(x, "from_number"))
                                              ? json_object_get(b, "from_number")
                                              : json_object_get(x, "from_number"));
        /* Extension: attempts so far and this recipient's retry overrides. */
        json_object_set(p, "attempts", json_object_get(x, "attempts"));
        bc_batch_retry_fields(p, x, 0);
        json_array_append_new(parts, p);
    }
    json_object_set_new(o, "participants", parts);
    return o;
}

static void send_session(rq *r, const char *id, int status)
{
    bc_err err = { "" };
    json_t *b = bc_batch_load(r->g.pg, r->g.who.tenant_id, id, 1, &err);

    if (!b) {
        if (err.msg[0])
            fail(r, "session.read", &err);
        else
            error(r->resp, 404, "not_found", "Call not found");
        return;
    }
    bc_http_json(r->resp, status, render_session(b));
    json_decref(b);
}

/* Cuts s back to its last whole UTF-8 character. snprintf may have cut one
 * in half where a message quotes the caller's text, and jansson packs no
 * such string: the 400 would go out with an empty body. */
static void utf8_clip(char *s)
{
    size_t n = strlen(s), i = n, need;
    unsigned char lead;

    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    lead = (unsigned char)s[i - 1];
    need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (i - 1) < need)
        s[i - 1] = '\0';
}

/* Collects recipients from "to" strings or "recipients"/"participants"
 * objects into a normalised array; NULL with why_out set. */
static json_t *recipients_of(json_t *in, const char *field, int participants, char *why_out,
                             size_t cap)
{
    json_t *to = json_object_get(in, "to"), *objs = json_object_get(in, field), *out, *x;
    char why[200];
    size_t i;

    if (!participants && to && objs) {
        snprintf(why_out, cap, "send either to or recipients, not both");
        return NULL;
    }
    if (!participants && to) {
        if (!json_is_array(to)) {
            snprintf(why_out, cap, "to must be an array of E.164 numbers");
            return NULL;
        }
        objs = to;
    }
    if (!json_is_array(objs) || json_array_size(objs) == 0) {
        snprintf(why, sizeof why, participants ? "participants must be a non-empty array"
                                               : "to or recipients is required and must not be empty");
        snprintf(why_out, cap, "%s", why);
        return NULL;
    }
    if (json_array_size(objs) > MAX_BATCH) {
        snprintf(why, sizeof why, "at most %d recipients per request (got %zu)", MAX_BATCH,
                 json_array_size(objs));
        snprintf(why_out, cap, "%s", why);
        return NULL;
    }
    out = json_array();
    json_array_foreach(objs, i, x) {
        json_t *num = json_is_string(x) ? x : NULL, *from = NULL, *meta = NULL;

        if (json_is_object(x)) {
            const char *tr = json_string_value(json_object_get(x, "transport"));
            if (participants && tr && strcmp(tr, "pstn")) {
                snprintf(why, sizeof why, "%s[%zu].transport '%s' is not supported here; "
                         "only pstn participants are dialed", field, i, tr);
                goto bad;
            }
            num = json_object_get(x, participants ? "identity" : "to");
            if (!num && !participants)
                num = json_object_get(x, "identity");
            from = json_object_get(x, "from_number");
            meta = json_object_get(x, "metadata");
        }
        if (!json_is_string(num) || !bc_e164_valid(json_string_value(num))) {
            snprintf(why, sizeof why, "%s[%zu]: invalid E.164 number", to && !participants
                     ? "to" : field, i);
            goto bad;
        }
        if (from && !json_is_null(from) &&
            (!json_is_string(from) || !bc_e164_valid(json_string_value(from)))) {
            snprintf(why, sizeof why, "%s[%zu].from_number: invalid E.164 number", field, i);
            goto bad;
        }
        if (meta && !json_is_null(meta) && !json_is_object(meta)) {
            snprintf(why, sizeof why, "%s[%zu].metadata must be an object", field, i);
            goto bad;
        }
        json_t *y = json_pack("{s:O}", "to_number", num);
        if (from && !json_is_null(from))
            json_object_set(y, "from_number", from);
        json_object_set_new(y, "metadata",
                            meta && !json_is_null(meta) ? json_incref(meta) : json_object());
        json_array_append_new(out, y);
        if (json_is_object(x) && (bc_recipient_timezone(x, y, field, i, why, sizeof why) < 0 ||
                                  bc_recipient_retry(x, y, field, i, why, sizeof why) < 0))
            goto bad;
    }
    return out;
bad:
    snprintf(why_out, cap, "%s", why);
    utf8_clip(why_out);
    json_decref(out);
    return NULL;
}

int bc_rymi_parse(json_t *in, int participants, bc_batch_spec *spec, json_t **recips,
                  char *why, size_t cap)
{
    static const char *objs[] = { "metadata", "variables", "post_call" };
    const char *agent = NULL, *from = NULL, *ext = NULL;
    json_t *v;
    int retries;
    long lim;

    *recips = NULL;
    spec->retry_policy = NULL;
    /* Extension: the batch's concurrency, named as Cartesia names it; 0
     * (omitted) is the core's default (docs/api.md). */
    if (bc_json_str(in, "agent_id", 1, 64, &agent, why, cap) < 0 ||
        bc_json_str(in, "from_number", 0, 16, &from, why, cap) < 0 ||
        bc_json_str(in, "batch_id", 0, 128, &ext, why, cap) < 0 ||
        bc_json_int(in, "target_concurrency_limit", 1, 100000, 0, &lim, why, cap) < 0)
        return -1;
    spec->limit = (int)lim;
    if (from && !bc_e164_valid(from)) {
        snprintf(why, cap, "from_number must be an E.164 number");
        return -1;
    }
    if (bc_json_str(in, "timezone", 0, 64, &spec->timezone, why, cap) < 0 ||
        bc_calling_hours_check(json_object_get(in, "calling_hours"), why, cap) < 0 ||
        bc_caller_pool_check(json_object_get(in, "caller_id_pool"), why, cap) < 0 ||
        bc_expiry_parse(in, 0, spec, why, cap) < 0 ||
        bc_agent_leg_parse(in, spec, why, cap) < 0)
        return -1;
    spec->calling_hours = json_object_get(in, "calling_hours");
    spec->caller_pool = json_object_get(in, "caller_id_pool");
    for (int i = 0; i < 3; i++) {
        v = json_object_get(in, objs[i]);
        if (v && !json_is_null(v) && !json_is_object(v)) {
            snprintf(why, cap, "%s must be an object", objs[i]);
            return -1;
        }
    }
    /* Extension: a retry policy for the batch, overridden per recipient. */
    if (bc_retry_parse(in, "", &retries, &spec->retry_policy, why, cap) < 0)
        return -1;
    if (!(*recips = recipients_of(in, participants ? "participants" : "recipients",
                                  participants, why, cap))) {
        json_decref(spec->retry_policy);
        spec->retry_policy = NULL;
        return -1;
    }
    spec->max_retries = retries < 0 ? 0 : retries;
    spec->name = ext ? ext : participants ? "call" : "batch";
    spec->agent_id = agent;
    spec->from_number = from;
    spec->external_id = ext;
    spec->ringing_timeout_s = 60;
    spec->max_call_duration_min = 480;
    spec->variables = json_object_get(in, "variables");
    spec->metadata = json_object_get(in, "metadata");
    spec->post_call = json_object_get(in, "post_call");
    spec->recipients = *recips;
    return 0;
}

static void create_session(rq *r, int participants)
{
    json_t *in = body(r), *recips = NULL;
    bc_batch_spec spec = { .surface = "rymi" };
    char why[300], id[48];
    bc_err err = { "" };

    if (!in)
        return;
    if (bc_rymi_parse(in, participants, &spec, &recips, why, sizeof why) < 0) {
        error(r->resp, 400, "invalid_request", why);
        goto out;
    }
    /* Rymi refuses a batch with a listed number (409, "rejected before
     * queueing"); the core's policy finds them. */
    spec.refuse_blocked = 1;
    spec.blocked = json_array();
    switch (bc_batch_create(r->api, r->g.pg, &r->g.who, &spec, id, &err)) {
    case BC_BATCH_OK:
        bc_log(r->api->ctx->log, BC_INFO, "batch.created", "{s:s,s:s,s:s,s:I}", "surface",
               "rymi", "tenant_id", r->g.who.tenant_id, "batch_id", id, "recipients",
               (json_int_t)json_array_size(recips));
        send_session(r, id, participants ? 201 : 202);
        break;
    case BC_BATCH_BLOCKED:
        bc_http_json(r->resp, 409, json_pack("{s:s,s:s,s:s,s:O}", "error",
                     "One or more recipients are on the DNC list", "code", "dnc_listed",
                     "detail", "rejected_before_queueing", "numbers", spec.blocked));
        break;
    case BC_BATCH_NO_AGENT:
        error(r->resp, 404, "agent_not_found", "Agent not found for this tenant");
        break;
    case BC_BATCH_NO_NUMBER:
        error(r->resp, 400, "invalid_request",
              "no from_number given and the tenant has no default number");
        break;
    case BC_BATCH_NO_ENDPOINT:
    case BC_BATCH_BAD_VOICEMAIL:
        error(r->resp, 400, "invalid_request", err.msg);
        break;
    case BC_BATCH_OVER_LIMIT:
    case BC_BATCH_BAD_TIME:
        error(r->resp, 400, "invalid_request", err.msg);
        break;
    case BC_BATCH_NO_CREDIT:
        credit_error(r->resp, 402, "insufficient_credits", "Insufficient credits to start this call");
        break;
    default:
        fail(r, "session.create", &err);
    }
out:
    json_decref(spec.blocked);
    json_decref(spec.retry_policy);
    json_decref(recips);
    json_decref(in);
}

static void list_sessions(rq *r, const char *agent, int active)
{
    const char *cursor = bc_http_query(r->req, "cursor"), *status = bc_http_query(r->req, "status");
    char lim[16], off[16];
    int limit, offset;
    bc_err err = { "" };
    PGresult *res;
    json_t *calls = json_array();
    long long total = 0;

    if (paging(r, &limit, &offset) < 0)
        goto out;
    if (status && strcmp(status, "queued") && strcmp(status, "ringing") &&
        strcmp(status, "in_progress") && strcmp(status, "completed") && strcmp(status, "failed") &&
        strcmp(status, "paused")) {
        error(r->resp, 400, "invalid_request",
              "status must be one of queued, ringing, in_progress, completed, failed, paused");
        goto out;
    }
    if (active)
        limit = 200;
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[] = { r->g.who.tenant_id, agent, cursor, status, lim, off,
                        active ? "t" : "f" };
    if (!(res = q(r, "rymi_sessions", 7, p, &err))) {
        fail(r, "sessions.list", &err);
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *b = bc_batch_load(r->g.pg, r->g.who.tenant_id, bc_pg_val(res, i, "id"), 0, &err);
        total = bc_pg_int(res, i, "total", 0);
        if (b) {
            json_array_append_new(calls, render_session(b));
            json_decref(b);
        }
    }
    PQclear(res);
    if (active) {
        bc_http_json(r->resp, 200, json_pack("{s:O,s:I}", "calls", calls, "total",
                                             (json_int_t)json_array_size(calls)));
        goto out;
    }
    json_t *last = json_array_get(calls, json_array_size(calls) - 1);
    bc_http_json(r->resp, 200, json_pack("{s:O,s:I,s:i,s:i,s:O}", "calls", calls, "total",
                                         (json_int_t)total, "limit", limit, "offset", offset,
                                         "next_cursor",
                                         last && (int)json_array_size(calls) == limit
                                             ? json_object_get(last, "id") : json_null()));
out:
    json_decref(calls);
}

static void events(rq *r, const char *id)
{
    bc_err err = { "" };
    json_t *b = bc_batch_load(r->g.pg, r->g.who.tenant_id, id, 0, &err), *ev;
    PGresult *res;

    if (!b) {
        if (err.msg[0])
            fail(r, "events", &err);
        else
            error(r->resp, 404, "not_found", "Call not found");
        return;
    }
    json_decref(b);
    const char *p[] = { id, r->g.who.tenant_id };
    if (!(res = q(r, "rymi_events", 2, p, &err))) {
        fail(r, "events", &err);
        return;
    }
    ev = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *st = bc_pg_val(res, i, "status");
        /* Rymi's words: claimed (handed to a dialer, not yet sent) is
         * still queued from the caller's point of view. */
        if (!strcmp(st, "claimed"))
            st = "queued";
        json_array_append_new(ev, json_pack("{s:s,s:s,s:s,s:s}", "participant_id",
                                            bc_pg_val(res, i, "recipient_id"), "leg_id",
                                            bc_pg_val(res, i, "id"), "status",
                                            !strcmp(st, "in-progress") ? "in_progress" : st,
                                            "at", bc_pg_val(res, i, "at")));
    }
    PQclear(res);
    bc_http_json(r->resp, 200, json_pack("{s:s,s:o}", "call_id", id, "events", ev));
}

static const bc_batch_errors session_errors = { error, "Call not found",
                                                "Internal server error" };

static void end_session(rq *r, const char *id)
{
    /* Ending a call ends it: live participants are hung up too. */
    if (bc_batch_action(r->api, r->g.pg, &r->g.who, id, "end", &session_errors, r->resp))
        send_session(r, id, 200);
}

/* Extension: POST /v1/calls/:id/pause and /resume. */
static void pause_session(rq *r, const char *id, int pause)
{
    if (bc_batch_action(r->api, r->g.pg, &r->g.who, id, pause ? "pause" : "resume",
                        &session_errors, r->resp))
        send_session(r, id, 200);
}

/* Extension: POST /v1/calls/queue/pause and /resume, for every session. */
static void pause_queue(rq *r, int pause)
{
    bc_err err = { "" };
    json_t *out = bc_tenant_pause(r->api, r->g.pg, &r->g.who, pause, &err);

    if (!out) {
        error(r->resp, 500, "internal_error", "Internal server error");
        return;
    }
    bc_http_json(r->resp, 200, out);
}

static void queue_stats(rq *r)
{
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id };
    PGresult *res = q(r, "rymi_stats", 1, p, &err);
    const char *paused;
    json_t *out;

    if (!res) {
        fail(r, "stats", &err);
        return;
    }
    paused = bc_pg_val(res, 0, "paused_at");
    out = json_pack("{s:I,s:I,s:I,s:I}",
                    "waiting", (json_int_t)bc_pg_int(res, 0, "waiting", 0),
                    "active", (json_int_t)bc_pg_int(res, 0, "active", 0),
                    "completed", (json_int_t)bc_pg_int(res, 0, "completed", 0),
                    "failed", (json_int_t)bc_pg_int(res, 0, "failed", 0));
    /* Extensions: participants that expired undialed (when any), and
     * whether the whole queue is paused. */
    if (bc_pg_int(res, 0, "expired", 0) > 0)
        json_object_set_new(out, "expired", json_integer((json_int_t)bc_pg_int(res, 0, "expired", 0)));
    if (paused) {
        json_object_set_new(out, "paused", json_true());
        json_object_set_new(out, "paused_at", json_string(paused));
    }
    PQclear(res);
    bc_http_json(r->resp, 200, out);
}

/* ---- agents --------------------------------------------------------------- */

static json_t *agent_json(const PGresult *res, int i)
{
    const char *kind = bc_agent_kind_name(bc_agent_kind_of(bc_pg_val(res, i, "endpoint")));

    return json_pack("{s:o,s:o,s:o,s:o,s:b,s:o,s:o,s:o,s:o}", "id", bc_json_pg_str(res, i, "id"),
                     "name", bc_json_pg_str(res, i, "name"), "region", bc_json_pg_str(res, i, "region"),
                     "endpoint", bc_json_pg_str(res, i, "endpoint"),
                     "record", !strcmp(bc_pg_val(res, i, "record") ? bc_pg_val(res, i, "record")
                                                                  : "", "t"),
                     "endpoint_kind", kind ? json_string(kind) : json_null(),
                     "config", json_or_null(res, i, "config"),
                     "created_at", bc_json_pg_str(res, i, "created_at"),
                     "updated_at", bc_json_pg_str(res, i, "updated_at"));
}

static void agents_list(rq *r, const char *only)
{
    char lim[16], off[16];
    int limit, offset;
    bc_err err = { "" };
    PGresult *res;
    json_t *arr;

    if (paging(r, &limit, &offset) < 0)
        return;
    snprintf(lim, sizeof lim, "%d", only ? 1 : limit);
    snprintf(off, sizeof off, "%d", only ? 0 : offset);
    const char *p[] = { r->g.who.tenant_id, only, lim, off };
    if (!(res = q(r, "rymi_agents", 4, p, &err))) {
        fail(r, "agents.list", &err);
        return;
    }
    if (only) {
        if (PQntuples(res) == 1)
            bc_http_json(r->resp, 200, agent_json(res, 0));
        else
            error(r->resp, 404, "not_found", "Agent not found");
        PQclear(res);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, agent_json(res, i));
    bc_http_json(r->resp, 200, json_pack("{s:o,s:I,s:i,s:i}", "agents", arr, "total",
                                         (json_int_t)(PQntuples(res) ? bc_pg_int(res, 0, "total", 0) : 0),
                                         "limit", limit, "offset", offset));
    PQclear(res);
}

/* Everything but name, region, endpoint and record is the agent's config,
 * kept as given. The endpoint is how its calls reach it, record whether
 * they are recorded (docs/agents.md); *record is NULL, "t" or "f". */
static int agent_fields(rq *r, json_t *in, int create, const char **name, const char **region,
                        const char **endpoint, const char **record, char **config)
{
    char why[200];
    json_t *cfg = json_deep_copy(in), *rec = json_object_get(in, "record");

    if (rec && !json_is_null(rec) && !json_is_boolean(rec)) {
        error(r->resp, 400, "invalid_request", "record must be a boolean");
        json_decref(cfg);
        return -1;
    }
    *record = json_is_boolean(rec) ? (json_is_true(rec) ? "t" : "f") : NULL;

    if (bc_json_str(in, "name", create, 255, name, why, sizeof why) < 0 ||
        bc_json_str(in, "region", 0, 8, region, why, sizeof why) < 0 ||
        bc_json_str(in, "endpoint", 0, BC_AGENT_ENDPOINT_MAX, endpoint, why, sizeof why) < 0 ||
        (*endpoint && bc_agent_endpoint_check(*endpoint, why, sizeof why) < 0)) {
        error(r->resp, 400, "invalid_request", why);
        json_decref(cfg);
        return -1;
    }
    if (*region && strcmp(*region, "us") && strcmp(*region, "eu") && strcmp(*region, "apac")) {
        error(r->resp, 400, "invalid_request", "region must be one of us, eu, apac");
        json_decref(cfg);
        return -1;
    }
    json_object_del(cfg, "name");
    json_object_del(cfg, "region");
    json_object_del(cfg, "endpoint");
    json_object_del(cfg, "endpoint_kind");
    json_object_del(cfg, "record");
    json_object_del(cfg, "id");
    *config = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    return 0;
}

static void agent_create(rq *r)
{
    json_t *in = body(r);
    const char *name = NULL, *region = NULL, *endpoint = NULL, *record = NULL;
    char *config = NULL, id[48];
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    if (agent_fields(r, in, 1, &name, &region, &endpoint, &record, &config) == 0) {
        bc_id_new(id, sizeof id, "agent");
        const char *p[] = { id, r->g.who.tenant_id, name, region, config, endpoint, record };
        if (!(res = q(r, "rymi_agent_insert", 7, p, &err))) {
            fail(r, "agent.create", &err);
        } else {
            PQclear(res);
            agents_list(r, id);
            r->resp->status = 201;
        }
    }
    free(config);
    json_decref(in);
}

static void agent_update(rq *r, const char *id)
{
    json_t *in = body(r);
    const char *name = NULL, *region = NULL, *endpoint = NULL, *record = NULL;
    char *config = NULL;
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    if (agent_fields(r, in, 0, &name, &region, &endpoint, &record, &config) == 0) {
        const char *p[] = { id, r->g.who.tenant_id, name, region, config, endpoint, record };
        if (!(res = q(r, "rymi_agent_update", 7, p, &err))) {
            fail(r, "agent.update", &err);
        } else {
            int n = atoi(PQcmdTuples(res));
            PQclear(res);
            if (n)
                agents_list(r, id);
            else
                error(r->resp, 404, "not_found", "Agent not found");
        }
    }
    free(config);
    json_decref(in);
}

static void agent_delete(rq *r, const char *id)
{
    bc_err err = { "" };
    const char *p[] = { id, r->g.who.tenant_id };
    PGresult *res = q(r, "rymi_agent_delete", 2, p, &err);

    if (!res) {
        fail(r, "agent.delete", &err);
        return;
    }
    if (atoi(PQcmdTuples(res)))
        bc_http_json(r->resp, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
    else
        error(r->resp, 404, "not_found", "Agent not found");
    PQclear(res);
}

/* ---- numbers ----------------------------------------------------------- */

static json_t *number_json(const PGresult *res, int i)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:b,s:o}", "id", bc_json_pg_str(res, i, "id"),
                     "number", bc_json_pg_str(res, i, "number"),
                     "provider", bc_json_pg_str(res, i, "provider"),
                     "agent_id", bc_json_pg_str(res, i, "agent_id"),
                     "is_default", !strcmp(bc_pg_val(res, i, "is_default"), "t"),
                     "created_at", bc_json_pg_str(res, i, "created_at"));
}

static void numbers_list(rq *r, const char *only, int status)
{
    char lim[16], off[16];
    int limit = 50, offset = 0;
    bc_err err = { "" };
    PGresult *res;
    json_t *arr;

    if (!only && paging(r, &limit, &offset) < 0)
        return;
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[] = { r->g.who.tenant_id, only, lim, off };
    if (!(res = q(r, "rymi_numbers", 4, p, &err))) {
        fail(r, "numbers.list", &err);
        return;
    }
    if (only) {
        if (PQntuples(res) == 1)
            bc_http_json(r->resp, status, number_json(res, 0));
        else
            error(r->resp, 404, "not_found", "Number not found");
        PQclear(res);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, number_json(res, i));
    bc_http_json(r->resp, 200, json_pack("{s:o,s:I,s:i,s:i}", "numbers", arr, "total",
                                         (json_int_t)(PQntuples(res) ? bc_pg_int(res, 0, "total", 0) : 0),
                                         "limit", limit, "offset", offset));
    PQclear(res);
}

static int agent_exists(rq *r, const char *agent)
{
    const char *p[] = { agent, r->g.who.tenant_id };
    PGresult *res = q(r, "agent_get", 2, p, NULL);
    int ok = res && PQntuples(res) == 1;

    PQclear(res);
    return ok;
}

static void number_create(rq *r)
{
    json_t *in = body(r);
    const char *number = NULL, *provider = NULL, *agent = NULL;
    char why[200], id[48];
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    if (bc_json_str(in, "number", 1, 16, &number, why, sizeof why) < 0 ||
        bc_json_str(in, "provider", 0, 16, &provider, why, sizeof why) < 0 ||
        bc_json_str(in, "agent_id", 0, 64, &agent, why, sizeof why) < 0) {
        error(r->resp, 400, "invalid_request", why);
    } else if (!bc_e164_valid(number)) {
        error(r->resp, 400, "invalid_request", "number must be an E.164 phone number");
    } else if (provider && strcmp(provider, "twilio") && strcmp(provider, "plivo") &&
               strcmp(provider, "vonage")) {
        error(r->resp, 400, "invalid_request", "provider must be one of twilio, plivo, vonage");
    } else if (agent && !agent_exists(r, agent)) {
        error(r->resp, 404, "agent_not_found", "Agent not found for this tenant");
    } else {
        bc_id_new(id, sizeof id, "ap");
        const char *p[] = { id, r->g.who.tenant_id, number, provider ? provider : "twilio", agent };
        if (!(res = q(r, "rymi_number_insert", 5, p, &err))) {
            fail(r, "number.create", &err);
        } else {
            int n = atoi(PQcmdTuples(res));
            PQclear(res);
            if (n)
                numbers_list(r, number, 201);
            else
                error(r->resp, 409, "conflict", "This number is already registered");
        }
    }
    json_decref(in);
}

static void number_attach(rq *r, const char *number)
{
    json_t *in = body(r);
    const char *agent = NULL;
    char why[200];
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    if (bc_json_str(in, "agent_id", 1, 64, &agent, why, sizeof why) < 0) {
        error(r->resp, 400, "invalid_request", why);
    } else if (!agent_exists(r, agent)) {
        error(r->resp, 404, "agent_not_found", "Agent not found for this tenant");
    } else {
        const char *p[] = { r->g.who.tenant_id, number, agent };
        if (!(res = q(r, "rymi_number_attach", 3, p, &err))) {
            fail(r, "number.attach", &err);
        } else {
            int n = atoi(PQcmdTuples(res));
            PQclear(res);
            if (n)
                numbers_list(r, number, 200);
            else
                error(r->resp, 404, "not_found", "Number not found");
        }
    }
    json_decref(in);
}

static void number_delete(rq *r, const char *number)
{
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id, number };
    PGresult *res = q(r, "rymi_number_delete", 2, p, &err), *ex;

    if (!res) {
        fail(r, "number.delete", &err);
        return;
    }
    if (PQntuples(res) == 1) {
        bc_http_json(r->resp, 200, json_pack("{s:s,s:b}", "number", number, "deleted", 1));
    } else {
        const char *x[] = { r->g.who.tenant_id, number, "1", "0" };
        ex = q(r, "rymi_numbers", 4, x, NULL);
        if (ex && PQntuples(ex) == 1)
            error(r->resp, 409, "conflict", "This number is used by existing calls");
        else
            error(r->resp, 404, "not_found", "Number not found");
        PQclear(ex);
    }
    PQclear(res);
}

/* ---- DNC ----------------------------------------------------------------- */

/* A text[] literal of strings that need no quoting (checked names). */
static char *pg_array(json_t *names)
{
    return bc_dnc_array(names, NULL);
}

/* Validates a list of E.164 numbers (all of them, or a 400). */
static int numbers_ok(rq *r, json_t *arr, const char *field, size_t max)
{
    char why[200];
    size_t i;
    json_t *x;

    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > max) {
        snprintf(why, sizeof why, "%s must be an array of 1 to %zu E.164 numbers", field, max);
        error(r->resp, 400, "invalid_request", why);
        return -1;
    }
    json_array_foreach(arr, i, x)
        if (!json_is_string(x) || !bc_e164_valid(json_string_value(x))) {
            snprintf(why, sizeof why, "%s[%zu]: invalid E.164 number", field, i);
            error(r->resp, 400, "invalid_request", why);
            return -1;
        }
    return 0;
}

static void dnc_add(rq *r, int batch)
{
    json_t *in = body(r), *nums;
    const char *reason = NULL;
    char why[200], *arr;
    bc_err err = { "" };
    long long added = 0;

    if (!in)
        return;
    if (bc_json_str(in, "reason", 0, 255, &reason, why, sizeof why) < 0) {
        error(r->resp, 400, "invalid_request", why);
        goto out;
    }
    if (batch) {
        nums = json_incref(json_object_get(in, "numbers"));
    } else {
        json_t *n = json_object_get(in, "number");
        nums = json_array();
        if (n)
            json_array_append(nums, n);
    }
    if (numbers_ok(r, nums, batch ? "numbers" : "number", batch ? MAX_DNC_BATCH : 1) < 0) {
        json_decref(nums);
        goto out;
    }
    /* One statement however many: an import of hundreds of thousands of
     * numbers is one round trip. */
    arr = pg_array(nums);
    if (!arr || bc_dnc_add(r->g.pg, r->g.who.tenant_id, arr, reason, &added, &err) < 0) {
        fail(r, "dnc.add", &err);
    } else if (batch) {
        bc_log(r->api->ctx->log, BC_INFO, "dnc.added", "{s:s,s:I,s:I}", "tenant_id",
               r->g.who.tenant_id, "received", (json_int_t)json_array_size(nums), "added",
               (json_int_t)added);
        bc_http_json(r->resp, 201, json_pack("{s:I,s:I}", "added", (json_int_t)added,
                                             "received", (json_int_t)json_array_size(nums)));
    } else {
        bc_http_json(r->resp, added ? 201 : 200,
                     json_pack("{s:O,s:s*,s:b}", "number", json_array_get(nums, 0),
                               "reason", reason, "blocked", 1));
    }
    free(arr);
    json_decref(nums);
out:
    json_decref(in);
}

static void dnc_check(rq *r)
{
    json_t *in = body(r), *nums, *hits, *out;
    char *arr;
    bc_err err = { "" };
    PGresult *res;
    size_t i;
    json_t *x;
    int single;

    if (!in)
        return;
    single = json_object_get(in, "number") != NULL;
    if (single) {
        nums = json_array();
        json_array_append(nums, json_object_get(in, "number"));
    } else {
        nums = json_incref(json_object_get(in, "numbers"));
    }
    if (numbers_ok(r, nums, single ? "number" : "numbers", MAX_DNC_BATCH) < 0)
        goto out;
    arr = pg_array(nums);
    const char *p[] = { r->g.who.tenant_id, arr };
    res = q(r, "dnc_hits", 2, p, &err);
    free(arr);
    if (!res) {
        fail(r, "dnc.check", &err);
        goto out;
    }
    hits = json_object();
    for (int k = 0; k < PQntuples(res); k++)
        json_object_set_new(hits, bc_pg_val(res, k, "number"), json_true());
    PQclear(res);
    if (single) {
        bc_http_json(r->resp, 200, json_pack("{s:O,s:b}", "number", json_array_get(nums, 0),
                                             "blocked", json_object_size(hits) > 0));
    } else {
        out = json_array();
        json_array_foreach(nums, i, x)
            json_array_append_new(out, json_pack("{s:O,s:b}", "number", x, "blocked",
                                                 json_object_get(hits, json_string_value(x)) != NULL));
        bc_http_json(r->resp, 200, json_pack("{s:o}", "results", out));
    }
    json_decref(hits);
out:
    json_decref(nums);
    json_decref(in);
}

static void dnc_list(rq *r)
{
    char lim[16], off[16];
    int limit, offset;
    bc_err err = { "" };
    PGresult *res;
    json_t *arr;

    if (paging(r, &limit, &offset) < 0)
        return;
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[] = { r->g.who.tenant_id, lim, off };
    if (!(res = q(r, "rymi_dnc_list", 3, p, &err))) {
        fail(r, "dnc.list", &err);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, json_pack("{s:o,s:o,s:o}", "number",
                                             bc_json_pg_str(res, i, "number"), "reason",
                                             bc_json_pg_str(res, i, "reason"), "created_at",
                                             bc_json_pg_str(res, i, "created_at")));
    bc_http_json(r->resp, 200, json_pack("{s:o,s:I,s:i,s:i}", "dnc", arr, "total",
                                         (json_int_t)(PQntuples(res) ? bc_pg_int(res, 0, "total", 0) : 0),
                                         "limit", limit, "offset", offset));
    PQclear(res);
}

static void dnc_delete(rq *r, const char *number)
{
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id, number };
    PGresult *res = q(r, "rymi_dnc_delete", 2, p, &err);

    if (!res) {
        fail(r, "dnc.delete", &err);
        return;
    }
    if (PQntuples(res))
        bc_http_json(r->resp, 200, json_pack("{s:s,s:b}", "number", number, "deleted", 1));
    else
        error(r->resp, 404, "not_found", "Number is not on the DNC list");
    PQclear(res);
}

/* ---- webhooks ------------------------------------------------------------ */

/* What the webhook sender delivers (docs/webhooks.md); each comes from the
 * call-results topic. */
static const char *webhook_events[] = { "call.completed", "call.failed", "batch.completed",
                                        "call.report", "call.recording", "batch.paused", NULL };

/* A 400 whose detail names the field at fault. */
static void bad_field(rq *r, const char *msg, const char *field)
{
    bc_http_json(r->resp, 400, json_pack("{s:s,s:s,s:s}", "error", msg, "code",
                                         "invalid_request", "detail", field));
}

static char *events_array(rq *r, json_t *ev)
{
    char why[200];
    size_t i;
    json_t *x;

    if (!json_is_array(ev) || json_array_size(ev) == 0 || json_array_size(ev) > 16) {
        bad_field(r, "events must be a non-empty array of event names", "events");
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
            bad_field(r, why, "events");
            return NULL;
        }
    }
    return pg_array(ev);
}

/* Reads "url" (required or not); 0 with *url set (NULL if absent and
 * optional), or -1 after a 400. */
static int webhook_url(rq *r, json_t *in, int required, const char **url)
{
    char why[200];

    if (bc_json_str(in, "url", required, BC_URL_MAX, url, why, sizeof why) < 0 ||
        (*url && bc_url_check(*url, r->api->webhook_https_only, r->api->webhook_allow_private,
                                  why, sizeof why) < 0)) {
        bad_field(r, why, "url");
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

static void webhooks_list(rq *r, const char *only, int status, const char *secret)
{
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id, only };
    PGresult *res = q(r, "rymi_webhooks", 2, p, &err);
    json_t *arr;

    if (!res) {
        fail(r, "webhooks.list", &err);
        return;
    }
    if (only) {
        if (PQntuples(res) == 1) {
            json_t *w = webhook_json(res, 0);
            if (secret)   /* shown once, when created */
                json_object_set_new(w, "secret", json_string(secret));
            bc_http_json(r->resp, status, w);
        } else {
            error(r->resp, 404, "not_found", "Webhook not found");
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

static void webhook_create(rq *r)
{
    json_t *in = body(r), *en;
    const char *url = NULL;
    char id[48], secret[48], *ev = NULL;
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    /* Present, it is a boolean, and a webhook created disabled stays so. */
    en = json_object_get(in, "enabled");
    if (en && !json_is_boolean(en)) {
        bad_field(r, "enabled must be a boolean", "enabled");
        json_decref(in);
        return;
    }
    if (webhook_url(r, in, 1, &url) == 0 && (ev = events_array(r, json_object_get(in, "events")))) {
        bc_id_new(id, sizeof id, "wh");
        bc_random_token(secret, sizeof secret, "whsec_", 32);
        const char *p[] = { id, r->g.who.tenant_id, url, ev, secret,
                            json_is_false(en) ? "f" : "t" };
        if (!(res = q(r, "rymi_webhook_insert", 6, p, &err)))
            fail(r, "webhook.create", &err);
        else {
            PQclear(res);
            webhooks_list(r, id, 201, secret);
        }
    }
    free(ev);
    json_decref(in);
}

static void webhook_update(rq *r, const char *id)
{
    json_t *in = body(r), *en;
    const char *url = NULL;
    char *ev = NULL;
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    en = json_object_get(in, "enabled");
    if (webhook_url(r, in, 0, &url) < 0)
        goto out;
    if (en && !json_is_boolean(en)) {
        bad_field(r, "enabled must be a boolean", "enabled");
        goto out;
    }
    if (json_object_get(in, "events") && !(ev = events_array(r, json_object_get(in, "events"))))
        goto out;
    const char *p[] = { id, r->g.who.tenant_id, url, ev,
                        en ? (json_is_true(en) ? "t" : "f") : NULL };
    if (!(res = q(r, "rymi_webhook_update", 5, p, &err))) {
        fail(r, "webhook.update", &err);
        goto out;
    }
    if (atoi(PQcmdTuples(res)))
        webhooks_list(r, id, 200, NULL);
    else
        error(r->resp, 404, "not_found", "Webhook not found");
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
                     "payload", json_or_null(res, i, "payload"));
}

/* GET /v1/webhooks/:id/deliveries: newest first, optionally one status. */
static void deliveries_list(rq *r, const char *id)
{
    bc_err err = { "" };
    const char *status = bc_http_query(r->req, "status");
    char lim[16], off[16];
    int limit, offset;
    PGresult *res;
    json_t *arr;

    if (paging(r, &limit, &offset) < 0)
        return;
    if (status && strcmp(status, "pending") && strcmp(status, "delivered") &&
        strcmp(status, "dead")) {
        error(r->resp, 400, "invalid_request", "status must be pending, delivered or dead");
        return;
    }
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *own[] = { id, r->g.who.tenant_id };
    if (!(res = q(r, "rymi_webhook_owned", 2, own, &err))) {
        fail(r, "webhook.deliveries", &err);
        return;
    }
    if (PQntuples(res) == 0) {
        error(r->resp, 404, "not_found", "Webhook not found");
        PQclear(res);
        return;
    }
    PQclear(res);
    const char *p[] = { id, status, lim, off };
    if (!(res = q(r, "rymi_webhook_deliveries", 4, p, &err))) {
        fail(r, "webhook.deliveries", &err);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, delivery_json(res, i));
    bc_http_json(r->resp, 200, json_pack("{s:o,s:I,s:i,s:i}", "deliveries", arr, "total",
                                         (json_int_t)(PQntuples(res) ? bc_pg_int(res, 0, "total", 0) : 0),
                                         "limit", limit, "offset", offset));
    PQclear(res);
}

/* POST /v1/webhooks/:id/deliveries/:delivery_id/retry: a dead-lettered (or
 * delivered) delivery is sent again from a first try; a pending one is 409. */
static void delivery_retry(rq *r, const char *id, const char *did)
{
    bc_err err = { "" };
    const char *num = strncmp(did, "whd_", 4) ? NULL : did + 4;
    PGresult *res;

    if (!num || !*num || strspn(num, "0123456789") != strlen(num) || strlen(num) > 18) {
        error(r->resp, 404, "not_found", "Delivery not found");
        return;
    }
    const char *p[] = { id, r->g.who.tenant_id, num };
    if (!(res = q(r, "rymi_webhook_redeliver", 3, p, &err))) {
        fail(r, "webhook.redeliver", &err);
        return;
    }
    if (PQntuples(res) == 0)
        error(r->resp, 404, "not_found", "Delivery not found");
    else if (!bc_pg_val(res, 0, "id"))   /* it was pending: nothing changed */
        bc_http_json(r->resp, 409, json_pack("{s:s,s:s,s:s}", "error",
                                             "Delivery is already waiting to be sent",
                                             "code", "conflict", "detail", "pending"));
    else
        bc_http_json(r->resp, 202, delivery_json(res, 0));
    PQclear(res);
}

static void simple_delete(rq *r, const char *stmt, const char *id, const char *what)
{
    bc_err err = { "" };
    const char *p[] = { id, r->g.who.tenant_id, "publishable" };
    PGresult *res = q(r, stmt, !strcmp(stmt, "rymi_key_revoke") ? 3 : 2, p, &err);
    char msg[64];

    if (!res) {
        fail(r, stmt, &err);
        return;
    }
    snprintf(msg, sizeof msg, "%s not found", what);
    if (atoi(PQcmdTuples(res)))
        bc_http_json(r->resp, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
    else
        error(r->resp, 404, "not_found", msg);
    PQclear(res);
}

/* ---- keys and account ------------------------------------------------------ */

static void key_issue(rq *r, int publishable, const char *revoke_id)
{
    char token[BC_APIKEY_MAX], lookup[BC_APIKEY_LOOKUP], hash[BC_SHA256_HEX], id[48];
    bc_err err = { "" };
    PGresult *res;

    if (bc_apikey_new(publishable, token, lookup, hash) < 0 || bc_id_new(id, sizeof id, "key") < 0) {
        fail(r, "key.random", NULL);
        return;
    }
    if (bc_pg_begin(r->g.pg, &err) < 0) {
        fail(r, "key.issue", &err);
        return;
    }
    const char *p[] = { id, r->g.who.tenant_id, publishable ? "publishable" : "secret", lookup, hash };
    if (!(res = q(r, "rymi_key_insert", 5, p, &err)))
        goto fail;
    PQclear(res);
    if (revoke_id) {
        /* Rotation: the key that asked stops working in the same commit. */
        const char *v[] = { revoke_id, r->g.who.tenant_id, "secret" };
        if (!(res = q(r, "rymi_key_revoke", 3, v, &err)))
            goto fail;
        PQclear(res);
    }
    if (audit(r, revoke_id ? "key.regenerate" : "key.issue", id,
              json_pack("{s:s,s:s*}", "type", publishable ? "publishable" : "secret",
                        "revoked_key_id", revoke_id), &err) < 0 ||
        bc_pg_commit(r->g.pg, &err) < 0)
        goto fail;
    bc_log(r->api->ctx->log, BC_INFO, publishable ? "key.publishable_created" : "key.rotated",
           "{s:s,s:s}", "tenant_id", r->g.who.tenant_id, "key_id", id);
    bc_http_json(r->resp, 201, json_pack("{s:s,s:s,s:s,s:s}", "id", id, "type",
                                         publishable ? "publishable" : "secret",
                                         publishable ? "key" : "api_key", token,
                                         "note", "store this key now: it is not shown again"));
    return;
fail:
    bc_pg_rollback(r->g.pg);
    fail(r, "key.issue", &err);
}

static void keys_list(rq *r)
{
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id };
    PGresult *res = q(r, "rymi_pk_list", 1, p, &err);
    json_t *arr;

    if (!res) {
        fail(r, "keys.list", &err);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, json_pack("{s:o,s:o,s:o}", "id", bc_json_pg_str(res, i, "id"),
                                             "prefix", json_sprintf("bc_pk_%s", bc_pg_val(res, i, "lookup")),
                                             "created_at", bc_json_pg_str(res, i, "created_at")));
    PQclear(res);
    bc_http_json(r->resp, 200, json_pack("{s:o}", "keys", arr));
}

static void me(rq *r)
{
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id };
    PGresult *res = q(r, "rymi_me", 1, p, &err);

    if (!res) {
        fail(r, "me", &err);
        return;
    }
    bc_http_json(r->resp, 200, json_pack(
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

static void spend(rq *r)
{
    const char *from = bc_http_query(r->req, "from"), *to = bc_http_query(r->req, "to");
    bc_err err = { "" };
    PGresult *res;
    json_t *days;
    long long calls = 0, minutes = 0, cents = 0;

    if ((from && !date_ok(from)) || (to && !date_ok(to))) {
        error(r->resp, 400, "invalid_request", "from and to must be dates (YYYY-MM-DD)");
        return;
    }
    const char *p[] = { r->g.who.tenant_id, from ? from : "1970-01-01", to ? to : "9999-12-30" };
    if (!(res = q(r, "rymi_spend", 3, p, &err))) {
        if (!strncmp(bc_pg_sqlstate(r->g.pg), "22", 2))
            error(r->resp, 400, "invalid_request", "from and to must be valid dates");
        else
            fail(r, "spend", &err);
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
    bc_http_json(r->resp, 200, json_pack("{s:s,s:I,s:I,s:I,s:o}", "currency", "usd",
                                         "calls", (json_int_t)calls, "minutes", (json_int_t)minutes,
                                         "total_cents", (json_int_t)cents, "days", days));
}

/* ---- routing -------------------------------------------------------------- */

static void route(rq *r)
{
    bc_http_resp *resp = r->resp;
    const char *s1 = r->seg[1];

    /* Creating POSTs take Idempotency-Key. */
    if (!strcmp(r->method, "POST") &&
        bc_gate_idem_begin(r->api, &r->g, r->req, resp, bc_http_path(r->req), 409, error))
        return;
    if (is(r, "POST", 2, "calls", "batch")) {
        if (bc_gate_credits(&r->g, resp, credit_error, "Insufficient credits to start this call") == 0)
            create_session(r, 0);
    } else if (is(r, "POST", 1, "calls")) {
        if (bc_gate_credits(&r->g, resp, credit_error, "Insufficient credits to start this call") == 0)
            create_session(r, 1);
    } else if (is(r, "GET", 1, "calls")) {
        list_sessions(r, NULL, 0);
    } else if (is(r, "GET", 2, "calls", "active")) {
        list_sessions(r, NULL, 1);
    } else if (is(r, "GET", 3, "calls", "queue", "stats")) {
        queue_stats(r);
    } else if (is(r, "POST", 3, "calls", "queue", "pause") ||
               is(r, "POST", 3, "calls", "queue", "resume")) {
        pause_queue(r, !strcmp(r->seg[2], "pause"));
    } else if (is(r, "POST", 3, "calls", NULL, "pause") ||
               is(r, "POST", 3, "calls", NULL, "resume")) {
        pause_session(r, s1, !strcmp(r->seg[2], "pause"));
    } else if (is(r, "GET", 2, "calls", NULL)) {
        send_session(r, s1, 200);
    } else if (is(r, "GET", 3, "calls", NULL, "events")) {
        events(r, s1);
    } else if (is(r, "POST", 3, "calls", NULL, "end")) {
        end_session(r, s1);
    } else if (is(r, "GET", 1, "agents")) {
        agents_list(r, NULL);
    } else if (is(r, "POST", 1, "agents")) {
        if (audit_begin(r, "agent.create", "name,region,endpoint_kind") == 0)
            agent_create(r);
    } else if (is(r, "GET", 2, "agents", NULL)) {
        agents_list(r, s1);
    } else if (is(r, "PUT", 2, "agents", NULL)) {
        if (audit_begin(r, "agent.update", "name,region,endpoint_kind,record") == 0)
            agent_update(r, s1);
    } else if (is(r, "DELETE", 2, "agents", NULL)) {
        if (audit_begin(r, "agent.delete", NULL) == 0)
            agent_delete(r, s1);
    } else if (is(r, "GET", 3, "agents", NULL, "calls")) {
        if (agent_exists(r, s1))
            list_sessions(r, s1, 0);
        else
            error(resp, 404, "not_found", "Agent not found");
    } else if (is(r, "GET", 1, "numbers")) {
        numbers_list(r, NULL, 200);
    } else if (is(r, "POST", 1, "numbers")) {
        if (audit_begin(r, "number.create", "number,provider,agent_id") == 0)
            number_create(r);
    } else if (is(r, "POST", 3, "numbers", NULL, "attach")) {
        if (audit_begin(r, "number.attach", "number,agent_id") == 0)
            number_attach(r, s1);
    } else if (is(r, "DELETE", 2, "numbers", NULL)) {
        if (audit_begin(r, "number.delete", NULL) == 0)
            number_delete(r, s1);
    } else if (is(r, "GET", 1, "dnc")) {
        dnc_list(r);
    } else if (is(r, "POST", 1, "dnc")) {
        if (audit_begin(r, "dnc.add", "reason") == 0)
            dnc_add(r, 0);
    } else if (is(r, "POST", 2, "dnc", "batch")) {
        if (audit_begin(r, "dnc.add_bulk", "added,received") == 0)
            dnc_add(r, 1);
    } else if (is(r, "POST", 2, "dnc", "check")) {
        dnc_check(r);
    } else if (is(r, "DELETE", 2, "dnc", NULL)) {
        if (audit_begin(r, "dnc.remove", NULL) == 0)
            dnc_delete(r, s1);
    } else if (is(r, "GET", 1, "webhooks")) {
        webhooks_list(r, NULL, 200, NULL);
    } else if (is(r, "POST", 1, "webhooks")) {
        if (audit_begin(r, "webhook.create", "url,events,enabled") == 0)   /* not its secret */
            webhook_create(r);
    } else if (is(r, "GET", 2, "webhooks", NULL)) {
        webhooks_list(r, s1, 200, NULL);
    } else if (is(r, "PATCH", 2, "webhooks", NULL)) {
        if (audit_begin(r, "webhook.update", "url,events,enabled") == 0)
            webhook_update(r, s1);
    } else if (is(r, "DELETE", 2, "webhooks", NULL)) {
        if (audit_begin(r, "webhook.delete", NULL) == 0)
            simple_delete(r, "rymi_webhook_delete", s1, "Webhook");
    } else if (is(r, "GET", 3, "webhooks", NULL, "deliveries")) {
        deliveries_list(r, s1);
    } else if (is(r, "POST", 5, "webhooks", NULL, "deliveries", NULL, "retry")) {
        if (audit_begin(r, "webhook.redeliver", "event_id,event_type") == 0)
            delivery_retry(r, s1, r->seg[3]);
    } else if (is(r, "GET", 2, "keys", "publishable")) {
        keys_list(r);
    } else if (is(r, "POST", 2, "keys", "publishable")) {
        key_issue(r, 1, NULL);
    } else if (is(r, "DELETE", 3, "keys", "publishable", NULL)) {
        if (audit_begin(r, "key.revoke", NULL) == 0)
            simple_delete(r, "rymi_key_revoke", r->seg[2], "Key");
    } else if (is(r, "GET", 2, "auth", "me")) {
        me(r);
    } else if (is(r, "POST", 2, "auth", "regenerate-key")) {
        key_issue(r, 0, r->g.who.key_id);
    } else if (is(r, "GET", 2, "analytics", "spend")) {
        spend(r);
    } else if (is(r, "GET", 1, "audit-logs")) {
        audit_list(r);
    } else {
        error(resp, 404, "not_found", "No such route");
    }
    audit_end(r);
    if (!strcmp(r->method, "POST"))
        bc_gate_idem_done(r->api, &r->g, resp);
}

/* A bounded label for metrics: ids replaced by ":id". */
static void route_label(rq *r, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "/v1");

    for (int i = 0; i < r->nseg && n < cap; i++) {
        const char *s = r->seg[i];
        int id = i > 0 && (strchr(s, '_') || s[0] == '+' || (s[0] >= '0' && s[0] <= '9'));
        n += (size_t)snprintf(out + n, cap - n, "/%s", id ? ":id" : s);
    }
}

int bc_rymi_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp)
{
    const char *path = bc_http_path(req);
    rq r = { .api = api, .req = req, .resp = resp, .method = bc_http_method(req) };
    char label[128];
    int publishable_ok;

    if (strncmp(path, "/v1/", 4))
        return 0;
    for (const char *p = path + 4; *p && r.nseg < 6;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len >= sizeof r.seg[0]) {
            bc_http_set_route(req, "/v1/other");
            error(resp, 404, "not_found", "No such route");
            return 1;
        }
        memcpy(r.seg[r.nseg], p, len);
        r.seg[r.nseg++][len] = '\0';
        p = e ? e + 1 : p + len;
        if (!e)
            break;
    }
    route_label(&r, label, sizeof label);
    bc_http_set_route(req, label);
    /* Publishable keys are for call creation flows only. */
    publishable_ok = is(&r, "POST", 1, "calls") || is(&r, "POST", 2, "calls", "batch");
    r.g.pg = bc_pgpool_get(api->pool);
    if (bc_gate_enter(api, &r.g, req, resp, publishable_ok, error) == 0) {
        if (r.g.who.publishable && is(&r, "POST", 2, "calls", "batch"))
            error(resp, 403, "forbidden", "Publishable keys cannot use batch API");
        else
            route(&r);
    }
    bc_pgpool_put(api->pool, r.g.pg);
    return 1;
}
