#include "bc_batchcall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_batches.h"
#include "bc_caller_pool.h"
#include "bc_calling_hours.h"
#include "bc_validate.h"
#include "bc_e164.h"
#include "bc_json.h"
#include "bc_retry.h"
#include "bc_surface.h"

#define PREFIX "/batch-call"
#define MAX_TASKS 1000

static void error(bc_http_resp *resp, int status, const char *code, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:s,s:s,s:{s:s,s:s},s:n}", "message", msg,
                                         "status", "error", "error", "code", code,
                                         "details", msg, "data"));
}

static void success(bc_http_resp *resp, int status, const char *msg, json_t *data)
{
    bc_http_json(resp, status, json_pack("{s:s,s:s,s:n,s:o}", "message", msg,
                                         "status", "success", "error", "data", data));
}

static const char *status_word(const char *state)
{
    if (!strcmp(state, "draft") || !strcmp(state, "scheduled") || !strcmp(state, "cancelled"))
        return state;
    return "sent";   /* pending or admitted: handed to the dispatcher */
}

/* RFC 3339 (from PostgreSQL) to Unix milliseconds. */
static json_t *ms_of(json_t *ts)
{
    long long ms = bc_rfc3339_ms(json_string_value(ts));

    return ms < 0 ? json_null() : json_integer((json_int_t)ms);
}

static json_t *render(bc_api *api, bc_pg *pg, const bc_principal *who, json_t *b)
{
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *p[] = { id };
    PGresult *res = bc_pg_exec(pg, "batch_last_sent", 1, p, NULL);
    json_t *last = json_null(), *d;
    json_int_t picked = 0;

    if (res) {
        if (bc_pg_val(res, 0, "ms"))
            last = json_integer(bc_pg_int(res, 0, "ms", 0));
        picked = bc_pg_int(res, 0, "picked_up", 0);
        PQclear(res);
    }
    /* waiting_for_window (extension): recipients deferred until their own
     * calling hours open. */
    d = json_pack("{s:O,s:O,s:O,s:o,s:O,s:O,s:O,s:I,s:O,s:O,s:O,s:s,s:O,s:o,s:o,s:o,s:{s:s,s:n}}",
                     "batch_call_id", json_object_get(b, "id"),
                     "name", json_object_get(b, "name"),
                     "from_number", json_object_get(b, "from_number"),
                     "scheduled_timestamp", ms_of(json_object_get(b, "scheduled_at")),
                     "total_task_count", json_object_get(b, "total"),
                     "total", json_object_get(b, "total"),
                     "sent", json_object_get(b, "dispatched"),
                     "picked_up", picked,
                     "completed", json_object_get(b, "completed"),
                     "waiting_for_window", json_object_get(b, "waiting_for_window"),
                     "agent_id", json_object_get(b, "agent_id"),
                     "organization_id", who->tenant_id,
                     "timezone", json_object_get(b, "timezone"),
                     "status", json_string(status_word(json_string_value(json_object_get(b, "state")))),
                     "last_sent_timestamp", last,
                     "tasks_url", json_sprintf("%s%s/%s/tasks", api->public_url, PREFIX, id),
                     "access_info", "user_id", who->key_id, "session_id");
    /* Extension: the batch's retry policy (tasks may override it). */
    bc_batch_retry_fields(d, b, 1);
    /* Extension: why it is not dialing, "concurrency" or "region". */
    if (d && !json_is_null(json_object_get(b, "waiting_for")))
        json_object_set(d, "waiting_for", json_object_get(b, "waiting_for"));
    /* Extensions: its expiry, in milliseconds, and the tasks it ended. */
    if (d && !json_is_null(json_object_get(b, "latest_at"))) {
        json_object_set_new(d, "latest_timestamp", ms_of(json_object_get(b, "latest_at")));
        json_object_set(d, "expired", json_object_get(b, "expired"));
    }
    /* Extension: tasks the tenant's policy stopped undialed, by reason. */
    if (d)
        json_object_set_new(d, "blocked", bc_batch_blocked(b, "batch-call"));
    /* Extensions: paused (status), and when the batch or its whole account
     * was paused, in milliseconds like the other times here. */
    if (d && bc_batch_paused(b))
        json_object_set_new(d, "status", json_string("paused"));
    if (d && !json_is_null(json_object_get(b, "paused_at")))
        json_object_set_new(d, "paused_timestamp", ms_of(json_object_get(b, "paused_at")));
    if (d && !json_is_null(json_object_get(b, "tenant_paused_at")))
        json_object_set_new(d, "tenant_paused_timestamp",
                            ms_of(json_object_get(b, "tenant_paused_at")));
    /* Extension: why it paused itself ("insufficient_credits"). */
    if (d && !json_is_null(json_object_get(b, "pause_reason")))
        json_object_set(d, "pause_reason", json_object_get(b, "pause_reason"));
    return d;
}

/* flags: bc_batch_load's. */
static void send_batch(bc_api *api, bc_pg *pg, const bc_principal *who, const char *id,
                       int flags, int status, const char *msg, bc_http_resp *resp)
{
    bc_err err = { "" };
    json_t *b = bc_batch_load(pg, who->tenant_id, id, flags, &err);

    if (!b) {
        error(resp, err.msg[0] ? 500 : 404, err.msg[0] ? "internal_error" : "not_found",
              err.msg[0] ? "The batch call could not be read" : "Batch call not found");
        return;
    }
    json_t *d = render(api, pg, who, b);
    json_object_set_new(d, "created_timestamp", ms_of(json_object_get(b, "created_at")));
    success(resp, status, msg, d);
    json_decref(b);
}

/* Task i as the core stores it (a new reference), or NULL with why. */
static json_t *task(json_t *t, size_t i, char *why, size_t cap)
{
    json_t *to = json_object_get(t, "to_number"), *dv = json_object_get(t, "dynamic_variables");
    json_t *x;

    if (!json_is_object(t)) {
        snprintf(why, cap, "tasks[%zu] must be an object", i);
        return NULL;
    }
    if (bc_json_no_null_at(t, "tasks", i, "to_number,dynamic_variables", why, cap) < 0)
        return NULL;
    if (!json_is_string(to) || !bc_e164_valid(json_string_value(to))) {
        snprintf(why, cap, "tasks[%zu].to_number must be in E.164 format", i);
        return NULL;
    }
    if (dv && !json_is_object(dv)) {
        snprintf(why, cap, "tasks[%zu].dynamic_variables must be an object", i);
        return NULL;
    }
    x = json_pack("{s:O}", "to_number", to);
    if (dv && json_is_object(dv))
        json_object_set(x, "variables", dv);
    /* max_retries as documented, and the other retry fields as an
     * extension (docs/api.md). */
    if (bc_recipient_timezone(t, x, "tasks", i, why, cap) < 0 ||
        bc_recipient_retry(t, x, "tasks", i, why, cap) < 0) {
        json_decref(x);
        return NULL;
    }
    return x;
}

static int parse_tasks(json_t *tasks, json_t **out, char *why, size_t cap)
{
    size_t i;
    json_t *t, *x;

    if (!json_is_array(tasks)) {
        snprintf(why, cap, tasks ? "tasks must be an array" : "tasks is required");
        return -1;
    }
    if (json_array_size(tasks) < 1 || json_array_size(tasks) > MAX_TASKS) {
        snprintf(why, cap, "tasks must have between 1 and %d elements (got %zu)", MAX_TASKS,
                 json_array_size(tasks));
        return -1;
    }
    *out = json_array();
    json_array_foreach(tasks, i, t) {
        if (!(x = task(t, i, why, cap)))
            return -1;
        json_array_append_new(*out, x);
    }
    return 0;
}

/* bc_batchcall_parse; with tasks NULL, all but the tasks (read streamed). */
static int parse(json_t *in, bc_batch_spec *spec, json_t **tasks, char sched[40], char *why,
                 size_t cap)
{
    json_t *ts = json_object_get(in, "trigger_timestamp"), *sn = json_object_get(in, "send_now");
    const char *from = NULL, *name = NULL, *agent = NULL, *tz = NULL, *status = NULL;
    int send_now, retries;
    long lim;

    if (tasks)
        *tasks = NULL;
    spec->retry_policy = NULL;
    /* Extension: the batch's concurrency, named as Cartesia names it; 0
     * (omitted) is the core's default (docs/api.md). */
    if (bc_json_no_null(in, "", "from_number,tasks,name,trigger_timestamp,agent_id,timezone,"
                        "status,send_now,calling_hours,caller_id_pool,target_concurrency_limit",
                        why, cap) < 0 ||
        bc_json_int(in, "target_concurrency_limit", 1, 100000, 0, &lim, why, cap) < 0)
        goto fail;
    spec->limit = (int)lim;
    if (bc_json_str(in, "from_number", 1, 16, &from, why, cap) < 0 ||
        bc_json_str(in, "name", 0, 255, &name, why, cap) < 0 ||
        bc_json_str(in, "agent_id", 1, 64, &agent, why, cap) < 0 ||
        bc_json_str(in, "timezone", 0, 64, &tz, why, cap) < 0 ||
        bc_json_str(in, "status", 0, 16, &status, why, cap) < 0 ||
        (tasks && parse_tasks(json_object_get(in, "tasks"), tasks, why, cap) < 0))
        goto fail;
    if (!bc_e164_valid(from)) {
        snprintf(why, cap, "from_number must be in E.164 format");
        goto fail;
    }
    if (bc_calling_hours_check(json_object_get(in, "calling_hours"), why, cap) < 0 ||
        bc_caller_pool_check(json_object_get(in, "caller_id_pool"), why, cap) < 0 ||
        bc_expiry_parse(in, 1, spec, why, cap) < 0 ||
        bc_agent_leg_parse(in, spec, why, cap) < 0)
        goto fail;
    spec->caller_pool = json_object_get(in, "caller_id_pool");
    /* Extension: a retry policy for the batch; tasks override it. */
    if (bc_retry_parse(in, "", &retries, &spec->retry_policy, why, cap) < 0)
        goto fail;
    spec->max_retries = retries < 0 ? 0 : retries;
    if (status && strcmp(status, "draft") && strcmp(status, "scheduled") && strcmp(status, "sent")) {
        snprintf(why, cap, "status must be one of draft, scheduled, sent");
        goto fail;
    }
    if (ts && (!json_is_integer(ts) || json_integer_value(ts) < 0)) {
        snprintf(why, cap, "trigger_timestamp must be a Unix timestamp in milliseconds");
        goto fail;
    }
    if (sn && !json_is_boolean(sn)) {
        snprintf(why, cap, "send_now must be a boolean");
        goto fail;
    }
    send_now = sn && json_is_true(sn);
    spec->calling_hours = json_object_get(in, "calling_hours");
    spec->name = name ? name : "batch call";
    spec->agent_id = agent;
    spec->from_number = from;
    spec->timezone = tz ? tz : "UTC";
    spec->ringing_timeout_s = 60;
    spec->max_call_duration_min = 480;
    spec->recipients = tasks ? *tasks : NULL;
    spec->draft = !send_now && status && !strcmp(status, "draft");
    if (ts && json_is_integer(ts) && !send_now) {
        time_t t = (time_t)(json_integer_value(ts) / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(sched, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
        spec->scheduled_at = sched;
    }
    return 0;
fail:
    if (tasks) {
        json_decref(*tasks);
        *tasks = NULL;
    }
    json_decref(spec->retry_policy);
    spec->retry_policy = NULL;
    return -1;
}

int bc_batchcall_parse(json_t *in, bc_batch_spec *spec, json_t **tasks, char sched[40],
                       char *why, size_t cap)
{
    return parse(in, spec, tasks, sched, why, cap);
}

/* The body's fields but its tasks (bc_batch_stream's fields); ud is the
 * scheduled time's buffer. */
static int stream_fields(json_t *rest, bc_batch_spec *spec, void *ud)
{
    char why[300];

    return parse(rest, spec, NULL, ud, why, sizeof why);
}

static void create(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;
    bc_api *api = s->api;
    bc_pg *pg = s->g.pg;
    const bc_principal *who = &s->g.who;
    char why[300], id[48], sched[40];
    json_t *in = NULL, *tasks = NULL, *rest = NULL;
    bc_batch_spec spec = { .surface = "batch-call" };
    bc_batch_stream how = { .key = "tasks", .max = MAX_TASKS, .fields = stream_fields,
                            .convert = task, .ud = sched };
    bc_err err = { "" };
    bc_batch_rc rc;
    size_t len;
    const char *raw = bc_http_body(req, &len);

    rc = bc_batch_create_streamed(api, pg, who, raw, len, &how, &spec, &rest, id, &err);
    if (rc == BC_BATCH_EAGER) {
        /* The whole parse: every refusal's words, in the document's order. */
        if (!(in = bc_surface_body(s)))
            goto out;
        if (bc_batchcall_parse(in, &spec, &tasks, sched, why, sizeof why) < 0) {
            error(resp, 400, "invalid_request", why);
            goto out;
        }
        /* A named time zone is checked against PostgreSQL's list. */
        if (json_is_string(json_object_get(in, "timezone"))) {
            const char *p[] = { spec.timezone };
            PGresult *res = bc_pg_exec(pg, "tz_check", 1, p, NULL);
            if (!res) {
                error(resp, 400, "invalid_request", "timezone must be a valid IANA time zone");
                goto out;
            }
            PQclear(res);
        }
        rc = bc_batch_create(api, pg, who, &spec, id, &err);
    }
    switch (rc) {
    case BC_BATCH_OK:
        bc_log(api->ctx->log, BC_INFO, "batch.created", "{s:s,s:s,s:s,s:I}", "surface",
               "batch-call", "tenant_id", who->tenant_id, "batch_id", id, "recipients",
               (json_int_t)spec.count);
        send_batch(api, pg, who, id, bc_batch_created_flags(&spec), 201,
                   "Batch call created successfully", resp);
        break;
    case BC_BATCH_NO_AGENT:
        error(resp, 404, "agent_not_found", "Agent not found");
        break;
    case BC_BATCH_NO_NUMBER:
        error(resp, 404, "number_not_found", "from_number is not a number of this organization");
        break;
    case BC_BATCH_NO_ENDPOINT:
        error(resp, 400, "agent_without_endpoint", err.msg);
        break;
    case BC_BATCH_BAD_VOICEMAIL:
    case BC_BATCH_TOO_BIG:
        error(resp, 400, "invalid_request", err.msg);
        break;
    case BC_BATCH_BAD_TIME:
        error(resp, 400, "invalid_request", err.msg[0] ? err.msg
              : "trigger_timestamp must be in the future and within 30 days");
        break;
    case BC_BATCH_OVER_LIMIT:
        error(resp, 400, "invalid_request", err.msg);
        break;
    case BC_BATCH_NO_CREDIT:
        error(resp, 402, "insufficient_credits", "Insufficient credits");
        break;
    default:
        bc_log(api->ctx->log, BC_ERROR, "batch.create_failed", "{s:s}", "error", err.msg);
        error(resp, 500, "internal_error", "The batch call could not be created");
    }
out:
    json_decref(spec.retry_policy);
    json_decref(rest);
    bc_http_drop_later(req, tasks);
    bc_http_drop_later(req, in);
}

/* GET /batch-call: the tenant's batch calls of this surface, by page. */
static void list(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;
    bc_api *api = s->api;
    bc_pg *pg = s->g.pg;
    const bc_principal *who = &s->g.who;
    long limit, offset;
    long long total = 0;
    bc_err err = { "" };
    json_t *arr, *out, *b;
    size_t i;

    if (bc_http_query_long(req, "limit", 1, 200, 50, &limit) < 0 ||
        bc_http_query_long(req, "offset", 0, 1000000000, 0, &offset) < 0) {
        error(resp, 400, "invalid_request", "limit must be 1-200 and offset 0-1000000000");
        return;
    }
    if (!(arr = bc_batch_page(pg, who->tenant_id, NULL, (int)limit, (int)offset, &total, &err))) {
        error(resp, 500, "internal_error", "The batch calls could not be listed");
        return;
    }
    out = json_array();
    json_array_foreach(arr, i, b) {
        json_t *d = render(api, pg, who, b);
        json_object_set_new(d, "created_timestamp", ms_of(json_object_get(b, "created_at")));
        json_array_append_new(out, d);
    }
    json_decref(arr);
    success(resp, 200, "Batch calls retrieved successfully",
            json_pack("{s:o,s:I,s:i,s:i}", "batch_calls", out, "total", (json_int_t)total,
                      "limit", (int)limit, "offset", (int)offset));
}

static void tasks(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;
    bc_pg *pg = s->g.pg;
    const bc_principal *who = &s->g.who;
    const char *id = bc_http_param(req, "id");
    char lim[16], off[16];
    long limit, offset;
    bc_err err = { "" };
    PGresult *res;
    json_t *arr;

    if (bc_http_query_long(req, "limit", 1, 1000, 1000, &limit) < 0 ||
        bc_http_query_long(req, "offset", 0, 1000000000, 0, &offset) < 0) {
        error(resp, 400, "invalid_request", "limit must be 1-1000 and offset 0-1000000000");
        return;
    }
    json_t *b = bc_batch_load(pg, who->tenant_id, id, 0, &err);
    if (!b) {
        error(resp, 404, "not_found", "Batch call not found");
        return;
    }
    json_decref(b);
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    const char *p[] = { id, who->tenant_id, lim, off };
    if (!(res = bc_pg_exec(pg, "batch_tasks", 4, p, &err))) {
        error(resp, 500, "internal_error", "The tasks could not be read");
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *v = bc_pg_val(res, i, "variables"), *rp = bc_pg_val(res, i, "retry_policy");
        json_t *dv = v ? json_loads(v, 0, NULL) : NULL, *t;
        json_t *pol = json_pack("{s:o?}", "retry_policy",
                                rp ? json_loads(rp, 0, NULL) : NULL);

        json_array_append_new(arr, t = json_pack(
            "{s:s,s:s,s:s,s:o,s:I,s:I,s:s*,s:s*,s:s*}", "task_id", bc_pg_val(res, i, "id"),
            "to_number", bc_pg_val(res, i, "to_number"), "status", bc_pg_val(res, i, "status"),
            "dynamic_variables", dv ? dv : json_object(),
            "max_retries", (json_int_t)bc_pg_int(res, i, "max_retries", 0),
            "attempts", (json_int_t)bc_pg_int(res, i, "attempts", 0),
            "call_id", bc_pg_val(res, i, "last_call_id"),
            "end_reason", bc_pg_val(res, i, "end_reason"),
            "error_message", bc_pg_val(res, i, "error_message")));
        /* Extension: the task's own retry_on and schedule, if it has them. */
        bc_batch_retry_fields(t, pol, 0);
        json_decref(pol);
    }
    PQclear(res);
    success(resp, 200, "Tasks retrieved successfully",
            json_pack("{s:s,s:o}", "batch_call_id", id, "tasks", arr));
}

static void act(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    static const bc_batch_errors errors = { error, "Batch call not found",
                                            "The batch call could not be updated" };
    bc_surface_req *s = ud;
    bc_api *api = s->api;
    bc_pg *pg = s->g.pg;
    const bc_principal *who = &s->g.who;
    const char *id = bc_http_param(req, "id"), *verb = bc_surface_verb(s);

    if (bc_batch_action(api, pg, who, id, verb, &errors, resp))
        send_batch(api, pg, who, id, 0, 200, !strcmp(verb, "cancel")
                   ? "Batch call cancelled successfully"
                   : !strcmp(verb, "pause") ? "Batch call paused successfully"
                   : !strcmp(verb, "resume") ? "Batch call resumed successfully"
                   : "Batch call sent successfully", resp);
}

/* Extension: POST /batch-call/pause and /resume, for every batch call. */
static void act_all(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    json_t *out = bc_surface_tenant_pause(ud);

    (void)req;
    if (out)
        success(resp, 200, json_is_true(json_object_get(out, "paused"))
                               ? "Batch calls paused successfully"
                               : "Batch calls resumed successfully", out);
}

static void get(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;

    send_batch(s->api, s->g.pg, &s->g.who, bc_http_param(req, "id"), 0, 200,
               "Batch call retrieved successfully", resp);
}

#define IDEM BC_SURFACE_IDEM

static const bc_http_route routes[] = {
    { "POST", PREFIX, create, NULL, BC_SURFACE_CREDITS | IDEM, NULL },
    { "GET", PREFIX, list, NULL, 0, NULL },
    { "POST", PREFIX "/pause", act_all, NULL, IDEM, NULL },
    { "POST", PREFIX "/resume", act_all, NULL, IDEM, NULL },
    { "GET", PREFIX "/{id}", get, NULL, 0, NULL },
    { "GET", PREFIX "/{id}/tasks", tasks, NULL, 0, NULL },
    { "POST", PREFIX "/{id}/cancel", act, NULL, IDEM | BC_HTTP_WAITS, NULL },
    { "POST", PREFIX "/{id}/send", act, NULL, IDEM, NULL },
    { "POST", PREFIX "/{id}/pause", act, NULL, IDEM, NULL },
    { "POST", PREFIX "/{id}/resume", act, NULL, IDEM, NULL },
    { 0 },
};

static const bc_surface_gate gate = {
    .name = "batchcall", .error = error, .not_found = "No such route",
    .failed = "The batch calls could not be updated",
    .no_credit = "Insufficient credits", .idem_conflict = 409,
};

bc_http_surface bc_batchcall_surface(bc_api *api)
{
    return (bc_http_surface){ PREFIX, routes, bc_surface_serve, api, &gate };
}
