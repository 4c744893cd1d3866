#include "bc_outcomes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_callback.h"
#include "bc_json.h"
#include "bc_kafka.h"
#include "bc_twilio.h"

#define URL_MAX 1024

const bc_pg_stmt bc_outcomes_stmts[] = {
    /* Stores a completed recording once; a repeat (the same RecordingSid)
     * changes nothing. The call-result v3 event of the call goes to the outbox
     * in the same statement. $1 call $2 tenant $3 batch $4 RecordingSid
     * $5 RecordingUrl $6 duration (s, may be NULL) $7 results topic */
    { "recording_store",
      "WITH c AS (UPDATE calls SET recording_sid = $4, recording_url = $5,"
      "                 recording_duration_s = $6::int"
      "            WHERE id = $1 AND tenant_id = $2 AND batch_id = $3"
      "              AND recording_sid IS DISTINCT FROM $4"
      "           RETURNING to_jsonb(calls) AS cj, id, recipient_id, batch_id),"
      " r AS (SELECT c.*, rr.status AS rstatus, rr.next_attempt_at FROM c"
      "         LEFT JOIN recipients rr ON rr.id = c.recipient_id"
      "          AND rr.last_call_id = c.id)"
      " INSERT INTO outbox (topic, key, payload)"
      " SELECT $7, batch_id, call_result_v3('call.recording', cj, rstatus,"
      "        CASE WHEN rstatus = 'queued' THEN false"
      "             WHEN rstatus IN ('completed', 'failed', 'cancelled') THEN true END,"
      "        CASE WHEN rstatus = 'queued' THEN next_attempt_at END, NULL, now(), NULL)"
      "   FROM r RETURNING id, topic, key, payload" },
    { "recording_call",
      "SELECT recording_sid FROM calls WHERE id = $1 AND tenant_id = $2 AND batch_id = $3" },
    { "outcomes_session",
      "SELECT 1 FROM batches WHERE id = $1 AND tenant_id = $2" },
    /* A session's legs (attempts) that have a report or a recording, in
     * the order of its participants. $1 batch $2 tenant */
    { "outcomes_legs",
      "SELECT c.recipient_id, c.id, c.attempt, c.report::text AS report,"
      "       c.disposition, rfc3339_ms(c.reported_at) AS reported_at,"
      "       c.recording_sid, c.recording_url, c.recording_duration_s"
      "  FROM calls c JOIN recipients r ON r.id = c.recipient_id"
      " WHERE c.batch_id = $1 AND c.tenant_id = $2"
      "   AND (c.report IS NOT NULL OR c.recording_url IS NOT NULL)"
      " ORDER BY c.reported_at NULLS FIRST, r.seq, c.attempt" },
    /* Cartesia's Get Call. $1 call $2 tenant */
    { "outcomes_call",
      "SELECT c.id, coalesce(c.agent_id, b.agent_id) AS agent_id, c.batch_id,"
      "       c.recipient_id, c.attempt, c.status, c.end_reason, c.answered_by,"
      "       c.duration_s, c.to_number, c.from_number,"
      "       rfc3339(c.created_at) AS start_time, rfc3339(c.answered_at) AS answered_at,"
      "       rfc3339(c.ended_at) AS end_time, c.report::text AS report, c.disposition,"
      "       rfc3339_ms(c.reported_at) AS reported_at, c.recording_url,"
      "       c.recording_duration_s"
      "  FROM calls c JOIN batches b ON b.id = c.batch_id"
      " WHERE c.id = $1 AND c.tenant_id = $2" },
    { 0, 0 },
};

static void reply(bc_http_resp *resp, int status, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:s}", status < 300 ? "status" : "error", msg));
}

/* ---- the recording callback ------------------------------------------------ */

/* RecordingSid is "RE" and 32 hex digits at Twilio; we take any short word. */
static int sid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    return n >= 2 && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

static int url_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > URL_MAX || strncmp(s, "https://", 8))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return 0;
    return 1;
}

/* A recording for a call we do not have (deleted, or never ours) is a 200
 * with nothing stored: the carrier retries any other answer for hours, and
 * the URL's signature already says we issued it, so there is nothing the
 * carrier could do better. Recordings that are absent or failed are
 * answered the same way and not stored: there is no URL to keep. */
void bc_callback_recording(bc_api *api, const bc_callback_ids *ids, const bc_form *form,
                           bc_http_resp *resp)
{
    const char *sid = bc_form_get(form, "RecordingSid");
    const char *url = bc_form_get(form, "RecordingUrl");
    const char *st = bc_form_get(form, "RecordingStatus");
    const char *dur = bc_form_get(form, "RecordingDuration");
    char topic[160], dbuf[16];
    bc_err err = { "" };
    PGresult *res = NULL;
    bc_pg *pg;
    long d = -1;

    if (!sid_ok(sid)) {
        reply(resp, 400, "RecordingSid is required");
        return;
    }
    if (st && strcmp(st, "completed")) {
        bc_log(api->ctx->log, BC_INFO, "callback.recording_not_completed", "{s:s,s:s,s:s}",
               "call_id", ids->call_id, "recording_sid", sid, "status", st);
        reply(resp, 200, "ok");
        return;
    }
    if (!url_ok(url)) {
        reply(resp, 400, "RecordingUrl must be an https URL");
        return;
    }
    if (dur && *dur) {
        char *end;
        d = strtol(dur, &end, 10);
        if (*end || d < 0 || d > 86400) {
            reply(resp, 400, "RecordingDuration must be whole seconds");
            return;
        }
        snprintf(dbuf, sizeof dbuf, "%ld", d);
    }
    bc_kafka_topic(topic, sizeof topic, api->topic_prefix, "call-results", NULL);
    const char *p[] = { ids->call_id, ids->tenant_id, ids->batch_id, sid, url,
                        d >= 0 ? dbuf : NULL, topic };
    pg = bc_pgpool_get(api->pool);
    res = bc_pg_exec(pg, "recording_store", 7, p, &err);
    if (res && PQntuples(res) == 0) {
        PGresult *known = bc_pg_exec(pg, "recording_call", 3, p, &err);
        if (known && PQntuples(known) == 0)
            bc_log(api->ctx->log, BC_WARN, "callback.recording_unknown_call", "{s:s,s:s}",
                   "call_id", ids->call_id, "recording_sid", sid);
        PQclear(known);
    }
    bc_pgpool_put(api->pool, pg);
    if (!res) {
        bc_log(api->ctx->log, BC_ERROR, "callback.recording_failed", "{s:s,s:s}", "call_id",
               ids->call_id, "error", err.msg);
        reply(resp, 500, "try again");
        return;
    }
    if (PQntuples(res) > 0) {
        bc_log(api->ctx->log, BC_INFO, "callback.recording_stored", "{s:s,s:s,s:s,s:i}",
               "tenant_id", ids->tenant_id, "batch_id", ids->batch_id, "call_id", ids->call_id,
               "duration_s", (int)d);
        /* Committed: a failed publish leaves the row to the relay. */
        bc_publisher_outbox_rows(api->pub, res, NULL);
    }
    PQclear(res);
    reply(resp, 200, "ok");
}

/* ---- reads ------------------------------------------------------------------- */

static json_t *loads(const char *s)
{
    json_t *j = s && *s ? json_loads(s, 0, NULL) : NULL;

    return j ? j : json_null();
}

static json_t *int_or_null(const PGresult *res, int row, const char *col)
{
    int c = PQfnumber(res, col);

    return c < 0 || PQgetisnull(res, row, c) ? json_null()
                                              : json_integer(atoll(PQgetvalue(res, row, c)));
}

/* A field of a stored report, or null. */
static json_t *report_field(json_t *report, const char *key)
{
    json_t *v = json_object_get(report, key);

    return v ? json_incref(v) : json_null();
}

/* GET /v1/calls/:id/{summary,transcript,recording}: the session's legs
 * that reported (or were recorded), each under its participant; the
 * top-level fields are the most recent report's (or recording's), which for
 * a one-person session is that person's call. */
void bc_outcomes_rymi(bc_api *api, bc_pg *pg, const char *tenant, const char *id,
                      const char *what, bc_http_resp *resp)
{
    bc_err err = { "" };
    const char *p[] = { id, tenant };
    PGresult *res = bc_pg_exec(pg, "outcomes_session", 2, p, &err);
    json_t *legs, *out, *latest = NULL;
    int rec = !strcmp(what, "recording");

    if (res && PQntuples(res) == 0) {
        PQclear(res);
        bc_http_error(resp, 404, "not_found", "Call not found");
        return;
    }
    PQclear(res);
    if (!res || !(res = bc_pg_exec(pg, "outcomes_legs", 2, p, &err))) {
        bc_log(api->ctx->log, BC_ERROR, "rymi.failed", "{s:s,s:s,s:s}", "what", what,
               "tenant_id", tenant, "error", err.msg);
        bc_http_error(resp, 500, "internal_error", "Internal server error");
        return;
    }
    legs = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *leg, *report;

        if (rec ? PQgetisnull(res, i, PQfnumber(res, "recording_url"))
                : PQgetisnull(res, i, PQfnumber(res, "report")))
            continue;
        report = loads(bc_pg_val(res, i, "report"));
        leg = json_pack("{s:s,s:s,s:o}", "participant_id", bc_pg_val(res, i, "recipient_id"),
                        "leg_id", bc_pg_val(res, i, "id"), "attempt",
                        int_or_null(res, i, "attempt"));
        if (rec) {
            json_object_set_new(leg, "recording_sid", bc_json_pg_str(res, i, "recording_sid"));
            json_object_set_new(leg, "recording_url", bc_json_pg_str(res, i, "recording_url"));
            json_object_set_new(leg, "duration_s", int_or_null(res, i, "recording_duration_s"));
        } else if (!strcmp(what, "summary")) {
            json_object_set_new(leg, "summary", report_field(report, "summary"));
            json_object_set_new(leg, "disposition", bc_json_pg_str(res, i, "disposition"));
            json_object_set_new(leg, "data", report_field(report, "data"));
            json_object_set_new(leg, "reported_at", bc_json_pg_str(res, i, "reported_at"));
        } else {
            json_object_set_new(leg, "transcript", report_field(report, "transcript"));
            json_object_set_new(leg, "reported_at", bc_json_pg_str(res, i, "reported_at"));
        }
        json_decref(report);
        json_array_append_new(legs, leg);
        latest = leg;
    }
    PQclear(res);
    out = json_pack("{s:s}", "call_id", id);
    if (rec) {
        json_object_set(out, "recording_url",
                        latest ? json_object_get(latest, "recording_url") : json_null());
        json_object_set(out, "duration_s",
                        latest ? json_object_get(latest, "duration_s") : json_null());
        json_object_set_new(out, "recordings", legs);
    } else if (!strcmp(what, "summary")) {
        json_object_set(out, "summary", latest ? json_object_get(latest, "summary") : json_null());
        json_object_set(out, "disposition",
                        latest ? json_object_get(latest, "disposition") : json_null());
        json_object_set(out, "data", latest ? json_object_get(latest, "data") : json_null());
        json_object_set_new(out, "participants", legs);
    } else {
        json_object_set(out, "transcript",
                        latest ? json_object_get(latest, "transcript") : json_null());
        json_object_set_new(out, "participants", legs);
    }
    bc_http_json(resp, 200, out);
}

/* Cartesia's words for a call's state. */
static const char *cartesia_status(const char *st)
{
    if (!strcmp(st, "ringing"))
        return "ringing";
    if (!strcmp(st, "in-progress"))
        return "in_progress";
    if (!strcmp(st, "completed"))
        return "completed";
    if (!strcmp(st, "canceled"))
        return "cancelled";
    if (!strcmp(st, "busy") || !strcmp(st, "no-answer") || !strcmp(st, "failed"))
        return "failed";
    return "queued";
}

/* Get Call: one attempt, by the agent_call_id a batch's recipient shows. */
void bc_outcomes_cartesia_call(bc_api *api, bc_pg *pg, const char *tenant, const char *id,
                               bc_http_resp *resp)
{
    bc_err err = { "" };
    const char *p[] = { id, tenant };
    PGresult *res = bc_pg_exec(pg, "outcomes_call", 2, p, &err);
    json_t *report, *o;

    if (!res) {
        bc_log(api->ctx->log, BC_ERROR, "cartesia.failed", "{s:s,s:s,s:s}", "what", "call",
               "tenant_id", tenant, "error", err.msg);
        bc_http_error(resp, 500, "internal_error", "Internal server error");
        return;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        bc_http_error(resp, 404, "not_found", "call not found");
        return;
    }
    report = loads(bc_pg_val(res, 0, "report"));
    o = json_pack("{s:s,s:o,s:s,s:s,s:o,s:s,s:{s:s,s:s}}", "id", bc_pg_val(res, 0, "id"),
                  "agent_id", bc_json_pg_str(res, 0, "agent_id"), "batch_id",
                  bc_pg_val(res, 0, "batch_id"), "recipient_id",
                  bc_pg_val(res, 0, "recipient_id"), "attempt",
                  int_or_null(res, 0, "attempt"), "status",
                  cartesia_status(bc_pg_val(res, 0, "status")), "telephony_params", "to",
                  bc_pg_val(res, 0, "to_number"), "from", bc_pg_val(res, 0, "from_number"));
    json_object_set_new(o, "start_time", bc_json_pg_str(res, 0, "start_time"));
    json_object_set_new(o, "answered_at", bc_json_pg_str(res, 0, "answered_at"));
    json_object_set_new(o, "end_time", bc_json_pg_str(res, 0, "end_time"));
    json_object_set_new(o, "end_reason", bc_json_pg_str(res, 0, "end_reason"));
    json_object_set_new(o, "answered_by", bc_json_pg_str(res, 0, "answered_by"));
    json_object_set_new(o, "duration_s", int_or_null(res, 0, "duration_s"));
    json_object_set_new(o, "transcript", report_field(report, "transcript"));
    json_object_set_new(o, "summary", report_field(report, "summary"));
    json_object_set_new(o, "disposition", bc_json_pg_str(res, 0, "disposition"));
    json_object_set_new(o, "data", report_field(report, "data"));
    json_object_set_new(o, "reported_at", bc_json_pg_str(res, 0, "reported_at"));
    json_object_set_new(o, "recording_url", bc_json_pg_str(res, 0, "recording_url"));
    json_object_set_new(o, "recording_duration_s", int_or_null(res, 0, "recording_duration_s"));
    json_decref(report);
    PQclear(res);
    bc_http_json(resp, 200, o);
}
