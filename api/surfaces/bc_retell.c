#include "bc_retell.h"

#include <math.h>
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
#include "bc_surface.h"

#define MAX_TRIGGER_MS 253402300799999.0   /* 9999-12-31T23:59:59.999Z */
#define DEFAULT_WINDOW_TZ "America/Los_Angeles"

const bc_pg_stmt bc_retell_stmts[] = {
    { "retell_number",
      "SELECT id, agent_id FROM phone_numbers WHERE tenant_id = $1 AND number = $2" },
    { "retell_sole_agent",
      "SELECT min(id) AS id, count(*) AS n FROM agents"
      " WHERE tenant_id = $1 AND deleted_at IS NULL" },
    { 0, 0 },
};

static const char *const day_names[] = { "Monday", "Tuesday", "Wednesday", "Thursday",
                                         "Friday", "Saturday", "Sunday" };

static void error(bc_http_resp *resp, int status, const char *code, const char *msg)
{
    (void)code;   /* Retell's errors carry no code */
    bc_http_json(resp, status, json_pack("{s:s,s:s}", "status", "error", "message", msg));
}

/* A whole number of minutes in [0, 1440], sent as any JSON number (read as "F"). */
static int minutes_of(double d, long *out)
{
    if (!(d >= 0 && d <= 1440) || d != floor(d))
        return -1;
    *out = (long)d;
    return 0;
}

/* call_time_window into the core's calling_hours (*hours, NULL for any
 * time) and the batch's time zone (*tz, borrowed from w). */
static int parse_window(json_t *w, json_t **hours, const char **tz, char *why, size_t cap)
{
    json_t *wins = json_object_get(w, "windows"), *days = json_object_get(w, "day"), *x;
    json_t *dl;
    double ds, de;
    long start, end;
    int mask = 0;
    size_t i;
    char s[8], e[8];

    *hours = NULL;
    if (!json_is_object(w)) {
        snprintf(why, cap, "call_time_window must be an object");
        return -1;
    }
    if (bc_json_no_null(w, "call_time_window.", "windows,timezone,day", why, cap) < 0)
        return -1;
    if (!json_is_array(wins) || json_array_size(wins) == 0) {
        snprintf(why, cap, "call_time_window.windows must be a non-empty array");
        return -1;
    }
    if (json_array_size(wins) > 1) {
        snprintf(why, cap, "call_time_window.windows: batchcall takes one window per batch "
                           "(got %zu)", json_array_size(wins));
        return -1;
    }
    if (json_unpack(json_array_get(wins, 0), "{s:F, s:F}", "start", &ds, "end", &de) < 0 ||
        minutes_of(ds, &start) < 0 || minutes_of(de, &end) < 0 || start >= end) {
        snprintf(why, cap, "call_time_window.windows[0] must be {\"start\", \"end\"} in whole "
                           "minutes since local midnight, 0 <= start < end <= 1440");
        return -1;
    }
    x = json_object_get(w, "timezone");
    if (x) {
        size_t n = json_is_string(x) ? json_string_length(x) : 0;
        if (n == 0 || n > 64 ||
            strspn(json_string_value(x), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789/_+-") != n) {
            snprintf(why, cap, "call_time_window.timezone must be an IANA time zone name "
                               "such as America/Los_Angeles");
            return -1;
        }
        *tz = json_string_value(x);
    } else {
        *tz = DEFAULT_WINDOW_TZ;
    }
    if (days) {
        if (!json_is_array(days)) {
            snprintf(why, cap, "call_time_window.day must be an array of day names");
            return -1;
        }
        json_array_foreach(days, i, x) {
            int k = 0;
            while (k < 7 && !(json_is_string(x) && !strcmp(json_string_value(x), day_names[k])))
                k++;
            if (k == 7) {
                snprintf(why, cap, "call_time_window.day[%zu] must be one of Monday, Tuesday, "
                                   "Wednesday, Thursday, Friday, Saturday, Sunday", i);
                return -1;
            }
            mask |= 1 << k;
        }
    }
    if (start == 0 && end == 1440) {
        if (!mask || mask == 0x7f)
            return 0;   /* all day, every day: any time */
        end = 1439;     /* the core's hours cannot end at the start: 23:59 */
    }
    snprintf(s, sizeof s, "%02ld:%02ld", start / 60, start % 60);
    /* 24:00 is midnight: an end before the start reads as crossing into
     * the next day, which ends exactly there. */
    snprintf(e, sizeof e, "%02ld:%02ld", (end % 1440) / 60, end % 60);
    *hours = json_pack("{s:s,s:s}", "start", s, "end", e);
    if (mask && mask != 0x7f) {
        dl = json_array();
        for (int k = 0; k < 7; k++)
            if (mask & (1 << k))
                json_array_append_new(dl, json_integer(k + 1));
        json_object_set_new(*hours, "days", dl);
    }
    return 0;
}

/* Every value of an object is a string (Retell's dynamic variables). */
static int all_strings(json_t *o)
{
    const char *k;
    json_t *v;

    json_object_foreach(o, k, v)
        if (!json_is_string(v))
            return 0;
    return 1;
}

static int parse_tasks(json_t *tasks, json_t **out, const char **agent, char *why, size_t cap)
{
    size_t i, with_agent = 0;
    json_t *t;

    *out = NULL;
    if (!json_is_array(tasks)) {
        snprintf(why, cap, tasks ? "tasks must be an array" : "tasks is required");
        return -1;
    }
    if (json_array_size(tasks) < 1 || json_array_size(tasks) > BC_RETELL_MAX_TASKS) {
        snprintf(why, cap, "tasks must have between 1 and %d elements (got %zu)",
                 BC_RETELL_MAX_TASKS, json_array_size(tasks));
        return -1;
    }
    *out = json_array();
    json_array_foreach(tasks, i, t) {
        json_t *to = json_object_get(t, "to_number"), *x;
        json_t *vars = json_object_get(t, "retell_llm_dynamic_variables");
        json_t *meta = json_object_get(t, "metadata"), *ov = json_object_get(t, "override_agent_id");
        json_t *ign = json_object_get(t, "ignore_e164_validation");
        json_t *ver = json_object_get(t, "override_agent_version");
        json_t *ao = json_object_get(t, "agent_override"), *sip = json_object_get(t, "custom_sip_headers");

        if (!json_is_object(t)) {
            snprintf(why, cap, "tasks[%zu] must be an object", i);
            return -1;
        }
        if (bc_json_no_null_at(t, "tasks", i, "to_number,ignore_e164_validation,"
                               "override_agent_id,override_agent_version,agent_override,"
                               "retell_llm_dynamic_variables,metadata,custom_sip_headers",
                               why, cap) < 0)
            return -1;
        if (ign && !json_is_boolean(ign)) {
            snprintf(why, cap, "tasks[%zu].ignore_e164_validation must be a boolean", i);
            return -1;
        }
        /* ignore_e164_validation applies to custom telephony only; the
         * carriers batchcall dials through take E.164 and nothing else. */
        if (!json_is_string(to) || !bc_e164_valid(json_string_value(to))) {
            snprintf(why, cap, "tasks[%zu].to_number must be in E.164 format, such as "
                               "+12137774445", i);
            return -1;
        }
        if (vars && (!json_is_object(vars) || !all_strings(vars))) {
            snprintf(why, cap, "tasks[%zu].retell_llm_dynamic_variables must be an object of "
                               "strings", i);
            return -1;
        }
        /* Their size and depth: the core's caps (bc_batch_create). */
        if (meta && !json_is_object(meta)) {
            snprintf(why, cap, "tasks[%zu].metadata must be an object", i);
            return -1;
        }
        if (ov) {
            if (!json_is_string(ov) || json_string_length(ov) == 0 ||
                json_string_length(ov) > 64) {
                snprintf(why, cap, "tasks[%zu].override_agent_id must be a string of 1 to 64 "
                                   "characters", i);
                return -1;
            }
            if (*agent && strcmp(*agent, json_string_value(ov))) {
                snprintf(why, cap, "tasks[%zu].override_agent_id: every task of a batch must "
                                   "name the same agent (batchcall dials a batch with one)", i);
                return -1;
            }
            *agent = json_string_value(ov);
            with_agent++;
        }
        if (ver && !json_is_string(ver) && !json_is_integer(ver)) {
            snprintf(why, cap, "tasks[%zu].override_agent_version must be a string or an "
                               "integer", i);
            return -1;
        }
        if ((ao && !json_is_object(ao)) || (sip && (!json_is_object(sip) || !all_strings(sip)))) {
            snprintf(why, cap, "tasks[%zu]: agent_override must be an object and "
                               "custom_sip_headers an object of strings", i);
            return -1;
        }
        x = json_pack("{s:O}", "to_number", to);
        if (json_is_object(vars))
            json_object_set(x, "variables", vars);
        if (json_is_object(meta))
            json_object_set(x, "metadata", meta);
        json_array_append_new(*out, x);
    }
    if (with_agent && with_agent != json_array_size(tasks)) {
        snprintf(why, cap, "override_agent_id must be given on every task or on none "
                           "(batchcall dials a batch with one agent)");
        return -1;
    }
    return 0;
}

void bc_retell_req_clear(bc_retell_req *out)
{
    json_decref(out->tasks);
    json_decref(out->hours);
    out->tasks = out->hours = NULL;
}

int bc_retell_parse(json_t *in, bc_batch_spec *spec, bc_retell_req *out, char *why, size_t cap)
{
    json_t *ts = json_object_get(in, "trigger_timestamp"), *rc = json_object_get(in, "reserved_concurrency");
    json_t *w = json_object_get(in, "call_time_window");
    const char *from = NULL, *name = NULL, *agent = NULL, *task_agent = NULL, *tz = NULL;

    memset(out, 0, sizeof *out);
    out->reserved = -1;
    if (bc_json_no_null(in, "", "from_number,name,tasks,trigger_timestamp,reserved_concurrency,"
                        "call_time_window,agent_id", why, cap) < 0 ||
        bc_json_str(in, "from_number", 1, 16, &from, why, cap) < 0 ||
        bc_json_str(in, "name", 0, 255, &name, why, cap) < 0 ||
        bc_json_str(in, "agent_id", 0, 64, &agent, why, cap) < 0)
        goto fail;
    if (!bc_e164_valid(from)) {
        snprintf(why, cap, "from_number must be in E.164 format, such as +14157774444");
        goto fail;
    }
    if (ts) {
        double ms = json_is_integer(ts) ? (double)json_integer_value(ts)
                  : json_is_real(ts) ? json_real_value(ts) : -1;
        if (!(ms >= 0 && ms <= MAX_TRIGGER_MS)) {
            snprintf(why, cap, "trigger_timestamp must be a Unix timestamp in milliseconds");
            goto fail;
        }
        time_t t = (time_t)(ms / 1000.0);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out->sched, sizeof out->sched, "%Y-%m-%dT%H:%M:%SZ", &tm);
        spec->scheduled_at = out->sched;
    }
    if (rc) {
        if (!json_is_integer(rc) || json_integer_value(rc) < 0 ||
            json_integer_value(rc) > 100000) {
            snprintf(why, cap, "reserved_concurrency must be an integer >= 0");
            goto fail;
        }
        out->reserved = (long)json_integer_value(rc);
    }
    if (bc_expiry_parse(in, 1, spec, why, cap) < 0 || bc_agent_leg_parse(in, spec, why, cap) < 0)
        goto fail;
    if (w && parse_window(w, &out->hours, &tz, why, cap) < 0)
        goto fail;
    if (parse_tasks(json_object_get(in, "tasks"), &out->tasks, &task_agent, why, cap) < 0)
        goto fail;
    if (agent && task_agent && strcmp(agent, task_agent)) {
        snprintf(why, cap, "agent_id and the tasks' override_agent_id name different agents");
        goto fail;
    }
    spec->name = name ? name : "batch call";
    spec->agent_id = agent ? agent : task_agent;
    spec->from_number = from;
    spec->timezone = tz ? tz : "UTC";
    spec->ringing_timeout_s = 60;
    spec->max_call_duration_min = 480;
    spec->calling_hours = out->hours;
    spec->recipients = out->tasks;
    return 0;
fail:
    bc_retell_req_clear(out);
    return -1;
}

static long hm(const char *s)
{
    return s && strlen(s) == 5 ? atol(s) * 60 + atol(s + 3) : -1;
}

json_t *bc_retell_window(json_t *hours, const char *timezone)
{
    const char *hs, *he;
    long s, e;
    json_t *wins, *o, *days = NULL, *d;
    size_t i;

    if (json_unpack(hours, "{s:s, s:s, s?o}", "start", &hs, "end", &he, "days", &days) < 0 ||
        (s = hm(hs)) < 0 || (e = hm(he)) < 0)
        return NULL;
    wins = json_array();
    if (e == 0)
        e = 1440;
    if (e > s) {
        json_array_append_new(wins, json_pack("{s:i,s:i}", "start", (int)s, "end", (int)e));
    } else {
        /* Across midnight, which Retell's windows cannot be: the same hours
         * as two windows of each day. */
        json_array_append_new(wins, json_pack("{s:i,s:i}", "start", 0, "end", (int)e));
        json_array_append_new(wins, json_pack("{s:i,s:i}", "start", (int)s, "end", 1440));
    }
    o = json_pack("{s:o,s:s}", "windows", wins, "timezone", timezone ? timezone : "UTC");
    if (days) {
        json_t *names = json_array();
        json_array_foreach(days, i, d)
            if (json_integer_value(d) >= 1 && json_integer_value(d) <= 7)
                json_array_append_new(names, json_string(day_names[json_integer_value(d) - 1]));
        json_object_set_new(o, "day", names);
    }
    return o;
}

/* ---- routes ---------------------------------------------------------------- */

static const char *status_word(json_t *b)
{
    const char *state = json_string_value(json_object_get(b, "state"));
    json_int_t left = json_integer_value(json_object_get(b, "queued")) +
                      json_integer_value(json_object_get(b, "live"));

    if (!strcmp(state, "cancelled"))
        return state;
    if (bc_batch_paused(b))
        return "paused";
    if (!strcmp(state, "draft") || !strcmp(state, "scheduled") || !strcmp(state, "pending"))
        return state;
    return left ? "in_progress" : "completed";
}

static json_int_t ms_or_zero(json_t *ts)
{
    long long ms = bc_rfc3339_ms(json_string_value(ts));

    return ms < 0 ? 0 : (json_int_t)ms;
}

static json_t *render(json_t *b)
{
    json_t *sched = json_object_get(b, "scheduled_at"), *w;
    json_t *o = json_pack("{s:O,s:O,s:O,s:I,s:O}",
                          "batch_call_id", json_object_get(b, "id"),
                          "name", json_object_get(b, "name"),
                          "from_number", json_object_get(b, "from_number"),
                          /* Milliseconds, as trigger_timestamp; an immediate
                           * batch is scheduled when it was created. */
                          "scheduled_timestamp",
                          ms_or_zero(json_is_null(sched) ? json_object_get(b, "created_at") : sched),
                          "total_task_count", json_object_get(b, "total"));

    if ((w = bc_retell_window(json_object_get(b, "calling_hours"),
                              json_string_value(json_object_get(b, "timezone")))))
        json_object_set_new(o, "call_time_window", w);
    /* Extensions (docs/retell.md): where the batch stands. */
    json_object_set_new(o, "status", json_string(status_word(b)));
    json_object_set_new(o, "created_timestamp", json_integer(ms_or_zero(json_object_get(b, "created_at"))));
    json_object_set(o, "sent", json_object_get(b, "dispatched"));
    json_object_set(o, "completed", json_object_get(b, "completed"));
    json_object_set(o, "failed", json_object_get(b, "failed"));
    json_object_set(o, "cancelled", json_object_get(b, "cancelled"));
    json_object_set(o, "queued", json_object_get(b, "queued"));
    json_object_set(o, "live", json_object_get(b, "live"));
    json_object_set(o, "waiting_for_window", json_object_get(b, "waiting_for_window"));
    /* Tasks the tenant's policy stopped undialed, by reason. */
    json_object_set_new(o, "blocked", bc_batch_blocked(b, "retell"));
    if (!json_is_null(json_object_get(b, "waiting_for")))
        json_object_set(o, "waiting_for", json_object_get(b, "waiting_for"));
    if (!json_is_null(json_object_get(b, "latest_at"))) {
        json_object_set_new(o, "latest_timestamp",
                            json_integer(ms_or_zero(json_object_get(b, "latest_at"))));
        json_object_set(o, "expired", json_object_get(b, "expired"));
    }
    if (!json_is_null(json_object_get(b, "paused_at")))
        json_object_set_new(o, "paused_timestamp",
                            json_integer(ms_or_zero(json_object_get(b, "paused_at"))));
    if (!json_is_null(json_object_get(b, "tenant_paused_at")))
        json_object_set_new(o, "tenant_paused_timestamp",
                            json_integer(ms_or_zero(json_object_get(b, "tenant_paused_at"))));
    /* Extension: why it paused itself ("insufficient_credits"). */
    if (!json_is_null(json_object_get(b, "pause_reason")))
        json_object_set(o, "pause_reason", json_object_get(b, "pause_reason"));
    return o;
}

/* flags: bc_batch_load's. */
static void respond(bc_api *api, bc_pg *pg, const bc_principal *who, const char *id, int flags,
                    int status, bc_http_resp *resp)
{
    bc_err err = { "" };
    json_t *b = bc_batch_load(pg, who->tenant_id, id, flags, &err);

    if (!b) {
        if (err.msg[0]) {
            bc_log(api->ctx->log, BC_ERROR, "batch.read_failed", "{s:s}", "error", err.msg);
            error(resp, 500, "internal_error", "An unexpected server error occurred.");
        } else {
            error(resp, 404, "not_found", "Batch call not found.");
        }
        return;
    }
    bc_http_json(resp, status, render(b));
    json_decref(b);
}

/* The batch's agent when the request names none: the number's own agent,
 * else the account's only agent. 0, or -1 with resp filled. */
static int number_and_agent(bc_pg *pg, const bc_principal *who, bc_batch_spec *spec,
                            char num_id[48], char agent[48], bc_http_resp *resp)
{
    const char *p[] = { who->tenant_id, spec->from_number }, *t[] = { who->tenant_id };
    PGresult *res = bc_pg_exec(pg, "retell_number", 2, p, NULL);
    char msg[160];

    if (!res) {
        error(resp, 500, "internal_error", "An unexpected server error occurred.");
        return -1;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        snprintf(msg, sizeof msg, "from_number %s is not a number of this account.",
                 spec->from_number);
        error(resp, 422, "not_found", msg);
        return -1;
    }
    snprintf(num_id, 48, "%s", bc_pg_val(res, 0, "id"));
    spec->from_number_id = num_id;
    if (!spec->agent_id && bc_pg_val(res, 0, "agent_id")) {
        snprintf(agent, 48, "%s", bc_pg_val(res, 0, "agent_id"));
        spec->agent_id = agent;
    }
    PQclear(res);
    if (spec->agent_id)
        return 0;
    if (!(res = bc_pg_exec(pg, "retell_sole_agent", 1, t, NULL))) {
        error(resp, 500, "internal_error", "An unexpected server error occurred.");
        return -1;
    }
    if (bc_pg_int(res, 0, "n", 0) == 1) {
        snprintf(agent, 48, "%s", bc_pg_val(res, 0, "id"));
        spec->agent_id = agent;
    }
    PQclear(res);
    if (spec->agent_id)
        return 0;
    error(resp, 422, "not_found", "from_number is not bound to an agent: attach one "
                                  "(POST /v1/numbers/{number}/attach) or name agent_id.");
    return -1;
}

static void create(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;
    bc_api *api = s->api;
    bc_pg *pg = s->g.pg;
    const bc_principal *who = &s->g.who;
    char why[300], id[48], num_id[48], agent[48];
    json_t *in = bc_surface_body(s);
    bc_batch_spec spec = { .surface = "retell" };
    bc_retell_req rr = { 0 };
    bc_err err = { "" };

    if (!in)
        return;
    if (bc_retell_parse(in, &spec, &rr, why, sizeof why) < 0) {
        error(resp, 400, "invalid_request", why);
        goto out;
    }
    if (number_and_agent(pg, who, &spec, num_id, agent, resp) < 0)
        goto out;
    if (rr.reserved >= 0) {
        /* What the batch may use is what the account keeps for other calls
         * taken from its limit. */
        if (rr.reserved >= who->concurrency) {
            snprintf(why, sizeof why, "reserved_concurrency %ld leaves no concurrency for the "
                     "batch (the account's limit is %d)", rr.reserved, who->concurrency);
            error(resp, 400, "invalid_request", why);
            goto out;
        }
        spec.limit = who->concurrency - (int)rr.reserved;
    }
    switch (bc_batch_create(api, pg, who, &spec, id, &err)) {
    case BC_BATCH_OK:
        bc_log(api->ctx->log, BC_INFO, "batch.created", "{s:s,s:s,s:s,s:I}", "surface", "retell",
               "tenant_id", who->tenant_id, "batch_id", id, "recipients",
               (json_int_t)json_array_size(rr.tasks));
        respond(api, pg, who, id, bc_batch_created_flags(&spec), 201, resp);
        break;
    case BC_BATCH_NO_AGENT:
    case BC_BATCH_NO_NUMBER:
        error(resp, 422, "not_found", "Cannot find requested asset under given api key.");
        break;
    case BC_BATCH_NO_ENDPOINT:
        error(resp, 422, "unprocessable_entity", err.msg);
        break;
    case BC_BATCH_BAD_VOICEMAIL:
    case BC_BATCH_TOO_BIG:
        error(resp, 400, "invalid_request", err.msg);
        break;
    case BC_BATCH_OVER_LIMIT:
    case BC_BATCH_BAD_TIME:
        /* The core names its own field; here it is trigger_timestamp. */
        error(resp, 400, "invalid_request", err.msg[0] && !strstr(err.msg, "scheduled_at")
              ? err.msg : "trigger_timestamp must be in the future and within 30 days");
        break;
    case BC_BATCH_NO_CREDIT:
        error(resp, 402, "insufficient_credits", "Insufficient credits to start calls.");
        break;
    default:
        bc_log(api->ctx->log, BC_ERROR, "batch.create_failed", "{s:s,s:s}", "tenant_id",
               who->tenant_id, "error", err.msg);
        error(resp, 500, "internal_error", "An unexpected server error occurred.");
    }
out:
    bc_retell_req_clear(&rr);
    bc_http_drop_later(req, in);
}

/* The verb a route's path starts with: "/cancel-batch-call/{id}" is cancel. */
static void verb_of(const bc_surface_req *s, char *verb, size_t cap)
{
    const char *p = s->route->pattern + 1;

    snprintf(verb, cap, "%.*s", (int)strcspn(p, "-"), p);
}

/* cancel, pause or resume one batch (extensions). */
static void act(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    static const bc_batch_errors errors = { error, "Batch call not found.",
                                            "An unexpected server error occurred." };
    bc_surface_req *s = ud;
    const char *id = bc_http_param(req, "id");
    char verb[16];

    verb_of(s, verb, sizeof verb);
    if (bc_batch_action(s->api, s->g.pg, &s->g.who, id, verb, &errors, resp))
        respond(s->api, s->g.pg, &s->g.who, id, 0, 200, resp);
}

static void get(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *s = ud;

    respond(s->api, s->g.pg, &s->g.who, bc_http_param(req, "id"), 0, 200, resp);
}

#define IDEM BC_SURFACE_IDEM

/* Retell's route and the extensions in its verb-noun style; no prefix: a
 * path that is none of them is the server's 404. */
static const bc_http_route routes[] = {
    { "POST", "/create-batch-call", create, NULL, BC_SURFACE_CREDITS | IDEM, NULL },
    { "GET", "/get-batch-call/{id}", get, NULL, 0, NULL },
    { "POST", "/cancel-batch-call/{id}", act, NULL, IDEM | BC_HTTP_WAITS, NULL },
    { "POST", "/pause-batch-call/{id}", act, NULL, IDEM, NULL },
    { "POST", "/resume-batch-call/{id}", act, NULL, IDEM, NULL },
    { "POST", "/pause-all-batch-calls", bc_surface_pause_all, NULL, IDEM, NULL },
    { "POST", "/resume-all-batch-calls", bc_surface_pause_all, NULL, IDEM, NULL },
    { 0 },
};

static const bc_surface_gate gate = {
    .name = "retell", .error = error, .not_found = "Not found.",
    .failed = "An unexpected server error occurred.",
    .no_credit = "Insufficient credits to start calls.", .idem_conflict = 400,
};

bc_http_surface bc_retell_surface(bc_api *api)
{
    return (bc_http_surface){ NULL, routes, bc_surface_serve, api, &gate };
}
