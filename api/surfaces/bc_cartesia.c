#include "bc_cartesia.h"

#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "bc_batches.h"
#include "bc_caller_pool.h"
#include "bc_calling_hours.h"
#include "bc_validate.h"
#include "bc_e164.h"
#include "bc_json.h"
#include "bc_outcomes.h"
#include "bc_retry.h"
#include "bc_surface.h"

#define PREFIX "/agents/calls/batches"
#define API_VERSION "2026-03-01"
#define MAX_RECIPIENTS 5000

/* Our region names are lowercase; Cartesia's are upper. */
static json_t *upper(const char *s)
{
    char buf[16];
    size_t i;

    for (i = 0; s && s[i] && i + 1 < sizeof buf; i++)
        buf[i] = (char)toupper((unsigned char)s[i]);
    buf[i] = '\0';
    return json_string(buf);
}

static const char *derived_status(json_t *b)
{
    json_int_t total = json_integer_value(json_object_get(b, "total"));
    json_int_t dispatched = json_integer_value(json_object_get(b, "dispatched"));
    json_int_t predial = json_integer_value(json_object_get(b, "failed_predial"));
    json_int_t expired = json_integer_value(json_object_get(b, "expired"));

    if (!strcmp(json_string_value(json_object_get(b, "state")), "cancelled"))
        return "cancelled";
    if (bc_batch_paused(b))
        return "paused";   /* extension: held, with recipients waiting */
    /* An expired recipient ended before dialing, as a pre-dial failure
     * did; the batch is complete once every other one was dispatched. */
    if (total > 0 && predial + expired == total)
        return "failed";
    if (dispatched == 0)
        return "pending";
    return dispatched < total - expired ? "in_progress" : "completed";
}

static void copy(json_t *out, const char *to, json_t *b, const char *from)
{
    json_object_set(out, to, json_object_get(b, from));
}

static json_t *render(json_t *b)
{
    json_t *o = json_object(), *rs, *r;
    size_t i;

    copy(o, "id", b, "id");
    copy(o, "name", b, "name");
    copy(o, "agent_id", b, "agent_id");
    copy(o, "from_number_id", b, "from_number_id");
    json_object_set_new(o, "region", upper(json_string_value(json_object_get(b, "region"))));
    copy(o, "target_concurrency_limit", b, "target_concurrency_limit");
    json_object_set_new(o, "status", json_string(derived_status(b)));
    copy(o, "total_calls_scheduled", b, "total");
    copy(o, "total_calls_dispatched", b, "dispatched");
    copy(o, "total_calls_finished", b, "finished");
    copy(o, "retry_count", b, "retry_count");
    /* Extension: recipients deferred until their own calling hours open. */
    copy(o, "total_calls_waiting_for_window", b, "waiting_for_window");
    /* Extension: why it is not dialing, "concurrency" or "region". */
    if (!json_is_null(json_object_get(b, "waiting_for")))
        copy(o, "waiting_for", b, "waiting_for");
    bc_batch_retry_fields(o, b, 1);
    copy(o, "created_at", b, "created_at");
    copy(o, "last_updated_at", b, "updated_at");
    if (!json_is_null(json_object_get(b, "scheduled_at")))
        copy(o, "scheduled_at", b, "scheduled_at");
    if (!json_is_null(json_object_get(b, "admitted_at")))
        copy(o, "admitted_at", b, "admitted_at");
    /* Extensions: its expiry and the recipients it ended, when it has one. */
    if (!json_is_null(json_object_get(b, "latest_at"))) {
        copy(o, "latest_at", b, "latest_at");
        copy(o, "total_calls_expired", b, "expired");
    }
    /* Extension: recipients the tenant's policy stopped undialed (each
     * shows why in its end_reason and error_message). */
    copy(o, "total_calls_blocked", b, "blocked");
    /* Extensions: when the batch, or its whole tenant, was paused. */
    if (!json_is_null(json_object_get(b, "paused_at")))
        copy(o, "paused_at", b, "paused_at");
    if (!json_is_null(json_object_get(b, "tenant_paused_at")))
        copy(o, "tenant_paused_at", b, "tenant_paused_at");
    /* Extension: why it paused itself ("insufficient_credits"). */
    if (!json_is_null(json_object_get(b, "pause_reason")))
        copy(o, "pause_reason", b, "pause_reason");
    if (!(rs = json_object_get(b, "recipients")))
        return o;
    json_t *out = json_array();
    json_array_foreach(rs, i, r) {
        json_t *x = json_object();
        copy(x, "id", r, "id");
        copy(x, "to_number", r, "to_number");
        copy(x, "status", r, "status");
        if (!json_is_null(json_object_get(r, "from_number")))
            copy(x, "from_number", r, "from_number");
        if (!json_is_null(json_object_get(r, "call_id")))
            copy(x, "agent_call_id", r, "call_id");
        if (!json_is_null(json_object_get(r, "end_reason")))
            copy(x, "end_reason", r, "end_reason");
        if (!json_is_null(json_object_get(r, "error_message")))
            copy(x, "error_message", r, "error_message");
        copy(x, "metadata", r, "metadata");
        copy(x, "created_at", r, "created_at");
        /* Extension: attempts so far, and this recipient's retry overrides. */
        copy(x, "attempts", r, "attempts");
        bc_batch_retry_fields(x, r, 0);
        json_array_append_new(out, x);
    }
    json_object_set_new(o, "recipients", out);
    return o;
}

/* Recipient i as the core stores it (a new reference), or NULL with why. */
static json_t *recipient(json_t *r, size_t i, char *why, size_t cap)
{
    json_t *to = json_object_get(r, "to_number"), *meta = json_object_get(r, "metadata");
    json_t *from = json_object_get(r, "from_number");
    json_t *vars = json_object_get(r, "dynamic_variables"), *x;

    if (!json_is_object(r)) {
        snprintf(why, cap, "recipients[%zu] must be an object", i);
        return NULL;
    }
    /* metadata and dynamic_variables may be null (the OpenAPI document's
     * nullable); the other fields may not. */
    if (bc_json_no_null_at(r, "recipients", i, "to_number,from_number", why, cap) < 0)
        return NULL;
    if (!json_is_string(to) || !bc_e164_valid(json_string_value(to))) {
        snprintf(why, cap, "recipients[%zu].to_number must be an E.164 phone "
                           "number such as +14155559876", i);
        return NULL;
    }
    /* Extensions (docs/api.md): a per-recipient caller ID and variables
     * for the agent, as batch-call's tasks and Rymi's recipients have. */
    if (from && (!json_is_string(from) || !bc_e164_valid(json_string_value(from)))) {
        snprintf(why, cap, "recipients[%zu].from_number must be an E.164 phone "
                           "number such as +14155550100", i);
        return NULL;
    }
    if (vars && !json_is_null(vars) && !json_is_object(vars)) {
        snprintf(why, cap, "recipients[%zu].dynamic_variables must be an object", i);
        return NULL;
    }
    if (meta && !json_is_null(meta) && !json_is_object(meta)) {
        snprintf(why, cap, "recipients[%zu].metadata must be an object", i);
        return NULL;
    }
    /* Their size and depth: the core's caps (bc_batch_create). */
    x = json_pack("{s:O}", "to_number", to);
    json_object_set(x, "metadata", meta ? meta : json_null());
    if (json_is_string(from))
        json_object_set(x, "from_number", from);
    if (json_is_object(vars))
        json_object_set(x, "variables", vars);
    if (bc_recipient_timezone(r, x, "recipients", i, why, cap) < 0 ||
        bc_recipient_retry(r, x, "recipients", i, why, cap) < 0) {
        json_decref(x);
        return NULL;
    }
    return x;
}

/* The body's fields but its recipients, into spec. 0, or -1 with why. */
static int parse_fields(json_t *body, bc_batch_spec *spec, char *why, size_t cap)
{
    const char *region = NULL;
    long lim, ring, dur;

    if (bc_json_no_null(body, "", "name,agent_id,from_number_id,recipients,"
                        "target_concurrency_limit,ringing_timeout_seconds,"
                        "max_call_duration_minutes,scheduled_at,region,timezone,calling_hours,"
                        "caller_id_pool", why, cap) < 0 ||
        bc_json_str(body, "name", 1, 255, &spec->name, why, cap) < 0 ||
        bc_json_str(body, "agent_id", 1, 64, &spec->agent_id, why, cap) < 0 ||
        bc_json_str(body, "from_number_id", 1, 64, &spec->from_number_id, why, cap) < 0 ||
        bc_json_int(body, "target_concurrency_limit", 1, 100000, 0, &lim, why, cap) < 0 ||
        bc_json_int(body, "ringing_timeout_seconds", 5, 80, 60, &ring, why, cap) < 0 ||
        bc_json_int(body, "max_call_duration_minutes", 1, 480, 480, &dur, why, cap) < 0 ||
        bc_json_str(body, "scheduled_at", 0, 64, &spec->scheduled_at, why, cap) < 0 ||
        bc_json_str(body, "region", 0, 8, &region, why, cap) < 0 ||
        bc_json_str(body, "timezone", 0, 64, &spec->timezone, why, cap) < 0 ||
        bc_calling_hours_check(json_object_get(body, "calling_hours"), why, cap) < 0 ||
        bc_caller_pool_check(json_object_get(body, "caller_id_pool"), why, cap) < 0 ||
        bc_expiry_parse(body, 0, spec, why, cap) < 0 ||
        bc_agent_leg_parse(body, spec, why, cap) < 0)
        return -1;
    spec->calling_hours = json_object_get(body, "calling_hours");
    spec->caller_pool = json_object_get(body, "caller_id_pool");
    if (spec->scheduled_at && !bc_rfc3339_valid(spec->scheduled_at)) {
        snprintf(why, cap, "scheduled_at must be an RFC3339 timestamp with a "
                           "timezone offset, e.g. 2026-06-15T16:00:00Z");
        return -1;
    }
    if (region) {
        if (!strcasecmp(region, "us") || !strcasecmp(region, "eu") ||
            !strcasecmp(region, "apac"))
            spec->region = !strcasecmp(region, "us") ? "us"
                         : !strcasecmp(region, "eu") ? "eu" : "apac";
        else {
            snprintf(why, cap, "region must be one of US, EU, APAC");
            return -1;
        }
    }
    spec->limit = (int)lim;
    spec->ringing_timeout_s = (int)ring;
    spec->max_call_duration_min = (int)dur;
    return 0;
}

/* Extension: a retry policy for the batch, overridden per recipient. */
static int parse_retry(json_t *body, bc_batch_spec *spec, char *why, size_t cap)
{
    int retries;

    if (bc_retry_parse(body, "", &retries, &spec->retry_policy, why, cap) < 0)
        return -1;
    spec->max_retries = retries < 0 ? 0 : retries;
    return 0;
}

int bc_cartesia_parse(json_t *body, bc_batch_spec *spec, json_t **recips, char *why,
                      size_t cap)
{
    json_t *rs = json_object_get(body, "recipients"), *r, *x;
    size_t i;

    *recips = NULL;
    spec->retry_policy = NULL;
    if (parse_fields(body, spec, why, cap) < 0)
        return -1;
    if (!json_is_array(rs)) {
        snprintf(why, cap, rs ? "recipients must be an array" : "recipients is required");
        return -1;
    }
    if (json_array_size(rs) < 1 || json_array_size(rs) > MAX_RECIPIENTS) {
        snprintf(why, cap, "recipients must have between 1 and %d items (got %zu)",
                 MAX_RECIPIENTS, json_array_size(rs));
        return -1;
    }
    *recips = json_array();
    json_array_foreach(rs, i, r) {
        if (!(x = recipient(r, i, why, cap)))
            goto fail;
        json_array_append_new(*recips, x);
    }
    if (parse_retry(body, spec, why, cap) < 0)
        goto fail;
    spec->recipients = *recips;
    return 0;
fail:
    json_decref(*recips);
    *recips = NULL;
    json_decref(spec->retry_policy);
    spec->retry_policy = NULL;
    return -1;
}

/* The body's fields but its recipients (bc_batch_stream's fields). */
static int stream_fields(json_t *rest, bc_batch_spec *spec, void *ud)
{
    char why[300];

    (void)ud;
    return parse_fields(rest, spec, why, sizeof why) < 0 ||
           parse_retry(rest, spec, why, sizeof why) < 0 ? -1 : 0;
}

static const bc_batch_stream STREAM = {
    .key = "recipients", .max = MAX_RECIPIENTS, .fields = stream_fields, .convert = recipient,
};

static void create_batch(bc_api *api, bc_pg *pg, const bc_principal *who,
                         const bc_http_req *req, bc_http_resp *resp)
{
    bc_batch_spec spec = { .surface = "cartesia" };
    json_t *rest = NULL, *body = NULL, *recips = NULL, *b;
    char why[300], id[48];
    bc_err err = { "" };
    bc_batch_rc rc;
    size_t len;
    const char *raw = bc_http_body(req, &len);
    long long t0 = bc_now_us(), t_parse = t0, t_store;
    const char *read = "streamed";

    rc = bc_batch_create_streamed(api, pg, who, raw, len, &STREAM, &spec, &rest, id, &err);
    if (rc == BC_BATCH_EAGER) {
        read = "whole";
        /* The whole parse: every refusal's words, in the document's order. */
        if (!(body = bc_json_object(raw, len, why, sizeof why))) {
            bc_http_error(resp, 400, "invalid_request", why);
            goto out;
        }
        if (bc_cartesia_parse(body, &spec, &recips, why, sizeof why) < 0) {
            bc_http_error(resp, 400, "invalid_request", why);
            goto out;
        }
        t_parse = bc_now_us();
        rc = bc_batch_create(api, pg, who, &spec, id, &err);
    }
    t_store = bc_now_us();
    switch (rc) {
    case BC_BATCH_OK:
        break;
    case BC_BATCH_NO_AGENT:
    case BC_BATCH_NO_NUMBER:
        bc_http_error(resp, 404, "not_found", err.msg);
        goto out;
    case BC_BATCH_NO_ENDPOINT:
    case BC_BATCH_BAD_VOICEMAIL:
    case BC_BATCH_TOO_BIG:
        bc_http_error(resp, 400, "invalid_request", err.msg);
        goto out;
    case BC_BATCH_OVER_LIMIT:
    case BC_BATCH_BAD_TIME:
        bc_http_error(resp, 400, "invalid_request", err.msg[0] ? err.msg : "invalid scheduled_at");
        goto out;
    case BC_BATCH_NO_CREDIT:
        bc_http_error(resp, 402, "insufficient_credits", "The organization has reached its "
                      "agents usage limit. Upgrade the subscription or enable overages.");
        goto out;
    default:
        bc_log(api->ctx->log, BC_ERROR, "batch.create_failed", "{s:s,s:s}",
               "tenant_id", who->tenant_id, "error", err.msg);
        bc_http_error(resp, 500, "internal_error", "The batch could not be created.");
        goto out;
    }
    if (!(b = bc_batch_load(pg, who->tenant_id, id, bc_batch_created_flags(&spec),
                            &err))) {
        bc_http_error(resp, 500, "internal_error", "The batch was created but could not be read.");
        goto out;
    }
    bc_http_json(resp, 201, render(b));
    json_decref(b);
    /* Where a create's time goes, for the B1 benchmark and for operators:
     * streamed, the parse runs inside the store (parse_us 0). */
    bc_log(api->ctx->log, BC_INFO, "batch.created", "{s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:I}",
           "surface", "cartesia", "tenant_id", who->tenant_id, "batch_id", id, "recipients",
           (json_int_t)spec.count, "read", read, "parse_us", (json_int_t)(t_parse - t0),
           "store_us", (json_int_t)(t_store - t_parse),
           "respond_us", (json_int_t)(bc_now_us() - t_store));
out:
    json_decref(spec.retry_policy);
    json_decref(rest);
    bc_http_drop_later(req, recips);
    bc_http_drop_later(req, body);
}

/* Idempotent as every creating POST, under the name the create has always
 * had (BC_SURFACE_IDEM would name it by its path). */
static void create(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;

    if (bc_gate_idem_begin(s->api, &s->g, req, resp, "cartesia.create", 400, bc_http_error))
        return;
    create_batch(s->api, s->g.pg, &s->g.who, req, resp);
    bc_gate_idem_done(s->api, &s->g, resp);
}

static void get(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;
    bc_err err = { "" };
    json_t *b = bc_batch_load(s->g.pg, s->g.who.tenant_id, bc_http_param(req, "id"),
                              BC_LOAD_RECIPIENTS, &err);
    bc_api *api = s->api;

    if (!b) {
        if (err.msg[0]) {
            bc_log(api->ctx->log, BC_ERROR, "batch.read_failed", "{s:s}", "error", err.msg);
            bc_http_error(resp, 500, "internal_error", "The batch could not be read.");
        } else {
            bc_http_error(resp, 404, "not_found", "batch not found");
        }
        return;
    }
    bc_http_json(resp, 200, render(b));
    json_decref(b);
}

static void respond_batch(bc_api *api, bc_pg *pg, const bc_principal *who,
                          const char *id, int status, bc_http_resp *resp)
{
    bc_err err = { "" };
    json_t *b = bc_batch_load(pg, who->tenant_id, id, 0, &err);

    if (!b) {
        bc_http_error(resp, err.msg[0] ? 500 : 404,
                      err.msg[0] ? "internal_error" : "not_found",
                      err.msg[0] ? "The batch could not be read." : "batch not found");
        if (err.msg[0])
            bc_log(api->ctx->log, BC_ERROR, "batch.read_failed", "{s:s}", "error", err.msg);
        return;
    }
    bc_http_json(resp, status, render(b));
    json_decref(b);
}

/* POST /agents/calls/batches/{id}/<verb>: verb is the path's last segment. */
static void action(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    static const bc_batch_errors errors = { bc_http_error, "batch not found",
                                            "The batch could not be updated." };
    bc_surface_req *s = ud;
    const char *id = bc_http_param(req, "id"), *verb = bc_surface_verb(s);
    const char *h = bc_http_query(req, "hangup");

    /* Extension: ?hangup=true ends the live calls too (docs/api.md); false
     * is the plain cancel, anything else a 400. */
    if (!strcmp(verb, "cancel") && h && strcmp(h, "true") && strcmp(h, "false")) {
        bc_http_error(resp, 400, "invalid_request", "hangup must be true or false");
        return;
    }
    if (!strcmp(verb, "cancel") && h && !strcmp(h, "true"))
        verb = "end";
    if (bc_batch_action(s->api, s->g.pg, &s->g.who, id, verb, &errors, resp))
        respond_batch(s->api, s->g.pg, &s->g.who, id, 200, resp);
}

static void list(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;
    bc_api *api = s->api;
    bc_pg *pg = s->g.pg;
    const bc_principal *who = &s->g.who;
    const char *agent = bc_http_query(req, "agent_id");
    const char *after = bc_http_query(req, "starting_after");
    long n;
    int more = 0;
    bc_err err = { "" };
    json_t *arr, *out, *b;
    size_t i;

    if (bc_http_query_long(req, "limit", 1, 100, 10, &n) < 0) {
        bc_http_error(resp, 400, "invalid_request", "limit must be an integer between 1 and 100");
        return;
    }
    if (!(arr = bc_batch_list(pg, who->tenant_id, agent, after, (int)n, &more, &err))) {
        bc_log(api->ctx->log, BC_ERROR, "batch.list_failed", "{s:s}", "error", err.msg);
        bc_http_error(resp, 500, "internal_error", "The batches could not be listed.");
        return;
    }
    out = json_array();
    json_array_foreach(arr, i, b)
        json_array_append_new(out, render(b));
    json_decref(arr);
    bc_http_json(resp, 200, json_pack("{s:o,s:b}", "data", out, "has_more", more));
}

static void get_call(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;

    bc_outcomes_cartesia_call(s->api, s->g.pg, s->g.who.tenant_id, bc_http_param(req, "id"),
                              resp);
}

#define IDEM BC_SURFACE_IDEM

static const bc_http_route routes[] = {
    { "POST", PREFIX, create, NULL, BC_SURFACE_CREDITS, NULL },
    { "GET", PREFIX, list, NULL, 0, NULL },
    { "POST", PREFIX "/pause", bc_surface_pause_all, NULL, IDEM, NULL },
    { "POST", PREFIX "/resume", bc_surface_pause_all, NULL, IDEM, NULL },
    { "GET", PREFIX "/{id}", get, NULL, 0, NULL },
    { "POST", PREFIX "/{id}/cancel", action, NULL, IDEM | BC_HTTP_WAITS, NULL },
    { "POST", PREFIX "/{id}/retry", action, NULL, IDEM, NULL },
    { "POST", PREFIX "/{id}/pause", action, NULL, IDEM, NULL },
    { "POST", PREFIX "/{id}/resume", action, NULL, IDEM, NULL },
    /* Get Call (bc_outcomes): one attempt, by a recipient's agent_call_id. */
    { "GET", "/agents/calls/{id}", get_call, NULL, 0, NULL },
    { 0 },
};

/* After the key, so an unauthenticated caller learns nothing else. */
static int version_ok(bc_surface_req *s)
{
    const char *ver = bc_http_header(s->req, "Cartesia-Version");

    if (ver && !strcmp(ver, API_VERSION))
        return 0;
    bc_http_error(s->resp, 400, "invalid_request",
                  ver ? "unsupported Cartesia-Version; use 2026-03-01"
                      : "Cartesia-Version header is required (2026-03-01)");
    return -1;
}

static const bc_surface_gate gate = {
    .name = "cartesia",
    .error = bc_http_error,
    .not_found = "no such route",
    .failed = "The batches could not be updated.",
    .no_credit = "The organization has reached its agents usage limit. Upgrade the "
                 "subscription or enable overages.",
    .idem_conflict = 400,
    .check = version_ok,
};

bc_http_surface bc_cartesia_surface(bc_api *api)
{
    return (bc_http_surface){ PREFIX, routes, bc_surface_serve, api, &gate };
}
