#include "bc_rymi_sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_batches.h"
#include "bc_caller_pool.h"
#include "bc_calling_hours.h"
#include "bc_validate.h"
#include "bc_e164.h"
#include "bc_json.h"
#include "bc_outcomes.h"
#include "bc_policy.h"
#include "bc_retry.h"
#include "bc_rymi_agents.h"

#define MAX_BATCH 500        /* recipients per POST /v1/calls/batch */

#define SESSION_COUNTS \
    "(SELECT count(*) FILTER (WHERE status IN ('dispatched', 'started')) AS live," \
    "        count(*) FILTER (WHERE status = 'dispatched') AS dialing," \
    "        count(*) FILTER (WHERE status = 'queued') AS queued," \
    "        count(*) FILTER (WHERE status = 'completed') AS completed," \
    "        count(*) FILTER (WHERE status IN ('failed', 'cancelled', 'expired')) AS failed" \
    "   FROM recipients r WHERE r.batch_id = b.id) c"

/* A session's status in Rymi's words, from its participants. */
#define SESSION_STATUS \
    "CASE WHEN c.queued > 0 AND b.state <> 'cancelled' AND (b.paused_at IS NOT NULL" \
    "          OR EXISTS (SELECT 1 FROM tenants tp WHERE tp.id = b.tenant_id" \
    "                     AND tp.paused_at IS NOT NULL)) THEN 'paused'" \
    "     WHEN c.live > 0 OR (c.queued > 0 AND c.completed + c.failed > 0" \
    "                         AND b.state <> 'cancelled') THEN 'in_progress'" \
    "     WHEN c.queued > 0 AND b.state <> 'cancelled' THEN 'queued'" \
    "     WHEN c.completed > 0 OR b.state = 'cancelled' THEN 'completed'" \
    "     ELSE 'failed' END"

const bc_pg_stmt bc_rymi_sessions_stmts[] = {
    { "rymi_sessions",
      "SELECT b.id, " SESSION_STATUS " AS status, count(*) OVER () AS total"
      "  FROM batches b, LATERAL " SESSION_COUNTS
      " WHERE b.tenant_id = $1 AND ($2::text IS NULL OR b.agent_id = $2)"
      "   AND ($3::text IS NULL OR (b.created_at, b.id) <"
      "        (SELECT created_at, id FROM batches WHERE id = $3 AND tenant_id = $1))"
      "   AND ($4::text IS NULL OR " SESSION_STATUS " = $4"
      "        OR ($4 = 'ringing' AND c.dialing > 0))"
      "   AND (NOT $7::bool OR c.live > 0)"
      " ORDER BY b.created_at DESC, b.id DESC LIMIT $5::int OFFSET $6::int" },
    { "rymi_events",
      "SELECT c.recipient_id, c.id, h.e->>'status' AS status, h.e->>'at' AS at"
      "  FROM calls c, jsonb_array_elements(c.history) WITH ORDINALITY AS h(e, n)"
      " WHERE c.batch_id = $1 AND c.tenant_id = $2"
      " ORDER BY h.e->>'at', c.id, h.n" },
    { "rymi_stats",
      "SELECT count(*) FILTER (WHERE status = 'queued') AS waiting,"
      "       count(*) FILTER (WHERE status IN ('dispatched', 'started')) AS active,"
      "       count(*) FILTER (WHERE status = 'completed') AS completed,"
      "       count(*) FILTER (WHERE status = 'failed') AS failed,"
      "       count(*) FILTER (WHERE status = 'expired') AS expired,"
      "       (SELECT rfc3339(paused_at) FROM tenants WHERE id = $1) AS paused_at"
      "  FROM recipients WHERE tenant_id = $1" },
    { 0, 0 },
};

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

    /* Keep in step with SESSION_STATUS, which filters lists. */
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

/* flags: bc_batch_load's besides its recipients. */
static void send_session(bc_surface_req *r, const char *id, int flags, int status)
{
    bc_err err = { "" };
    json_t *b = bc_batch_load(r->g.pg, r->g.who.tenant_id, id, BC_LOAD_RECIPIENTS | flags, &err);

    if (!b) {
        if (err.msg[0])
            bc_surface_fail(r, "session.read", &err);
        else
            bc_http_error(r->resp, 404, "not_found", "Call not found");
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

            if (bc_json_no_null_at(x, field, i, "to,identity,transport,from_number,metadata",
                                   why, sizeof why) < 0)
                goto bad;
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
        if (from && (!json_is_string(from) || !bc_e164_valid(json_string_value(from)))) {
            snprintf(why, sizeof why, "%s[%zu].from_number: invalid E.164 number", field, i);
            goto bad;
        }
        if (meta && !json_is_object(meta)) {
            snprintf(why, sizeof why, "%s[%zu].metadata must be an object", field, i);
            goto bad;
        }
        json_t *y = json_pack("{s:O}", "to_number", num);
        if (from)
            json_object_set(y, "from_number", from);
        json_object_set_new(y, "metadata", meta ? json_incref(meta) : json_object());
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
    if (bc_json_no_null(in, "", "agent_id,to,recipients,participants,from_number,batch_id,"
                        "metadata,variables,post_call,timezone,calling_hours,caller_id_pool,"
                        "target_concurrency_limit", why, cap) < 0 ||
        bc_json_str(in, "agent_id", 1, 64, &agent, why, cap) < 0 ||
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
        if (v && !json_is_object(v)) {
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

static void create_session(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    int participants = strcmp(bc_surface_verb(r), "batch") != 0;   /* POST /v1/calls */
    json_t *in = bc_surface_body(r), *recips = NULL;
    bc_batch_spec spec = { .surface = "rymi" };
    char why[300], id[48];
    bc_err err = { "" };

    if (!in)
        return;
    if (bc_rymi_parse(in, participants, &spec, &recips, why, sizeof why) < 0) {
        bc_http_error(resp, 400, "invalid_request", why);
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
        send_session(r, id, bc_batch_created_flags(&spec), participants ? 201 : 202);
        break;
    case BC_BATCH_BLOCKED:
        bc_http_json(resp, 409, json_pack("{s:s,s:s,s:s,s:O}", "error",
                     "One or more recipients are on the DNC list", "code", "dnc_listed",
                     "detail", "rejected_before_queueing", "numbers", spec.blocked));
        break;
    case BC_BATCH_NO_AGENT:
        bc_http_error(resp, 404, "agent_not_found", "Agent not found for this tenant");
        break;
    case BC_BATCH_NO_NUMBER:
        bc_http_error(resp, 400, "invalid_request",
              "no from_number given and the tenant has no default number");
        break;
    case BC_BATCH_NO_ENDPOINT:
    case BC_BATCH_BAD_VOICEMAIL:
    case BC_BATCH_TOO_BIG:
        bc_http_error(resp, 400, "invalid_request", err.msg);
        break;
    case BC_BATCH_OVER_LIMIT:
    case BC_BATCH_BAD_TIME:
        bc_http_error(resp, 400, "invalid_request", err.msg);
        break;
    case BC_BATCH_NO_CREDIT:
        bc_rymi_credit_error(resp, 402, "insufficient_credits", "Insufficient credits to start this call");
        break;
    default:
        bc_surface_fail(r, "session.create", &err);
    }
out:
    json_decref(spec.blocked);
    json_decref(spec.retry_policy);
    bc_http_drop_later(req, recips);
    bc_http_drop_later(req, in);
}

static void list_sessions(bc_surface_req *r, const char *agent, int active)
{
    const char *cursor = bc_http_query(r->req, "cursor"), *status = bc_http_query(r->req, "status");
    char lim[16], off[16];
    int limit, offset;
    bc_err err = { "" };
    PGresult *res;
    json_t *calls = json_array();
    long long total = 0;

    if (bc_rymi_paging(r, &limit, &offset) < 0)
        goto out;
    if (status && strcmp(status, "queued") && strcmp(status, "ringing") &&
        strcmp(status, "in_progress") && strcmp(status, "completed") && strcmp(status, "failed") &&
        strcmp(status, "paused")) {
        bc_http_error(r->resp, 400, "invalid_request",
              "status must be one of queued, ringing, in_progress, completed, failed, paused");
        goto out;
    }
    if (active)
        limit = 200;
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[] = { r->g.who.tenant_id, agent, cursor, status, lim, off,
                        active ? "t" : "f" };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_sessions", 7, p, &err))) {
        bc_surface_fail(r, "sessions.list", &err);
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

static void events(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *id = bc_http_param(req, "id");
    bc_err err = { "" };
    json_t *b = bc_batch_load(r->g.pg, r->g.who.tenant_id, id, 0, &err), *ev;
    PGresult *res;

    if (!b) {
        if (err.msg[0])
            bc_surface_fail(r, "events", &err);
        else
            bc_http_error(resp, 404, "not_found", "Call not found");
        return;
    }
    json_decref(b);
    const char *p[] = { id, r->g.who.tenant_id };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_events", 2, p, &err))) {
        bc_surface_fail(r, "events", &err);
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
    bc_http_json(resp, 200, json_pack("{s:s,s:o}", "call_id", id, "events", ev));
}

static const bc_batch_errors session_errors = { bc_http_error, "Call not found",
                                                "Internal server error" };

static void end_session(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *id = bc_http_param(req, "id");
    /* Ending a call ends it: live participants are hung up too. */
    if (bc_batch_action(r->api, r->g.pg, &r->g.who, id, "end", &session_errors, resp))
        send_session(r, id, 0, 200);
}

/* Extension: POST /v1/calls/:id/pause and /resume. */
static void pause_session(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *id = bc_http_param(req, "id");
    int pause = !strcmp(bc_surface_verb(r), "pause");
    if (bc_batch_action(r->api, r->g.pg, &r->g.who, id, pause ? "pause" : "resume",
                        &session_errors, resp))
        send_session(r, id, 0, 200);
}

/* Extension: POST /v1/calls/queue/pause and /resume, for every session. */
static void queue_stats(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id };
    PGresult *res = bc_pg_exec(r->g.pg, "rymi_stats", 1, p, &err);
    const char *paused;
    json_t *out;

    (void)req;
    if (!res) {
        bc_surface_fail(r, "stats", &err);
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
    bc_http_json(resp, 200, out);
}

/* GET /v1/calls, /v1/calls/active and /v1/agents/{id}/calls. */
static void sessions_list(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *agent = bc_http_param(req, "id");

    if (agent && !bc_rymi_agent_exists(r, agent))
        bc_http_error(resp, 404, "not_found", "Agent not found");
    else
        list_sessions(r, agent, !strcmp(bc_surface_verb(r), "active"));
}

static void session_get(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    (void)resp;
    send_session(ud, bc_http_param(req, "id"), 0, 200);
}

/* GET /v1/calls/{id}/summary, /transcript and /recording (bc_outcomes). */
static void outcome(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;

    bc_outcomes_rymi(r->api, r->g.pg, r->g.who.tenant_id, bc_http_param(req, "id"),
                     bc_surface_verb(r), resp);
}

#define IDEM BC_SURFACE_IDEM
#define CREATE (BC_SURFACE_CREDITS | IDEM | BC_SURFACE_PUBLISHABLE)

/* Literal routes before the patterns they would match ("/v1/calls/active"
 * before "/v1/calls/{id}"). */
const bc_http_route bc_rymi_sessions_routes[] = {
    { "POST", "/v1/calls/batch", create_session, NULL, CREATE | BC_RYMI_NO_PK, NULL },
    { "POST", "/v1/calls", create_session, NULL, CREATE, NULL },
    { "GET", "/v1/calls", sessions_list, NULL, 0, NULL },
    { "GET", "/v1/calls/active", sessions_list, NULL, 0, NULL },
    { "GET", "/v1/calls/queue/stats", queue_stats, NULL, 0, NULL },
    { "POST", "/v1/calls/queue/pause", bc_surface_pause_all, NULL, IDEM, NULL },
    { "POST", "/v1/calls/queue/resume", bc_surface_pause_all, NULL, IDEM, NULL },
    { "GET", "/v1/calls/{id}", session_get, NULL, 0, NULL },
    { "GET", "/v1/calls/{id}/events", events, NULL, 0, NULL },
    { "POST", "/v1/calls/{id}/end", end_session, NULL, IDEM | BC_HTTP_WAITS, NULL },
    { "POST", "/v1/calls/{id}/pause", pause_session, NULL, IDEM, NULL },
    { "POST", "/v1/calls/{id}/resume", pause_session, NULL, IDEM, NULL },
    { "GET", "/v1/calls/{id}/summary", outcome, NULL, 0, NULL },
    { "GET", "/v1/calls/{id}/transcript", outcome, NULL, 0, NULL },
    { "GET", "/v1/calls/{id}/recording", outcome, NULL, 0, NULL },
    { "GET", "/v1/agents/{id}/calls", sessions_list, NULL, 0, NULL },
    { 0 },
};
