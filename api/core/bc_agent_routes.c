#include "bc_agent_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_agent.h"
#include "bc_json.h"
#include "bc_kafka.h"

#define REPORT_MAX (256 * 1024)  /* bytes of a report's body */
#define TURNS_MAX 5000           /* entries of a transcript */
#define DISPOSITION_MAX 64

const bc_pg_stmt bc_agent_routes_stmts[] = {
    /* The call's context: its ids, numbers and attempt, who answered, and the
     * recipient's variables and metadata over the batch's. $1 call id */
    { "agent_context",
      "SELECT json_build_object('call_id', c.id, 'batch_id', c.batch_id,"
      "         'tenant_id', c.tenant_id, 'agent_id', b.agent_id,"
      "         'recipient_id', c.recipient_id, 'to', c.to_number,"
      "         'from', c.from_number, 'attempt', c.attempt, 'status', c.status,"
      "         'answered_by', c.answered_by, 'batch_name', b.name,"
      "         'variables', CASE WHEN jsonb_typeof(r.variables) = 'object'"
      "                           THEN b.variables || r.variables ELSE b.variables END,"
      "         'metadata', CASE WHEN jsonb_typeof(r.metadata) = 'object'"
      "                          THEN b.metadata || r.metadata ELSE b.metadata END,"
      "         'post_call', b.post_call)::text AS context"
      "  FROM calls c JOIN batches b ON b.id = c.batch_id"
      "  JOIN recipients r ON r.id = c.recipient_id"
      " WHERE c.id = $1" },
    /* The agent's report, stored unless it is the one already stored; the
     * call's call-result v3 "call.report" goes to the outbox in the same
     * statement. $1 call $2 report $3 disposition $4 results topic */
    { "agent_report_store",
      "WITH c AS (UPDATE calls SET report = $2::jsonb, disposition = $3,"
      "                 reported_at = now()"
      "            WHERE id = $1 AND report IS DISTINCT FROM $2::jsonb"
      "           RETURNING to_jsonb(calls) AS cj, id, recipient_id, batch_id,"
      "                     reported_at),"
      " r AS (SELECT c.*, rr.status AS rstatus, rr.next_attempt_at FROM c"
      "         LEFT JOIN recipients rr ON rr.id = c.recipient_id"
      "          AND rr.last_call_id = c.id)"
      " INSERT INTO outbox (topic, key, payload)"
      " SELECT $4, batch_id, call_result_v3('call.report', cj, rstatus,"
      "        CASE WHEN rstatus = 'queued' THEN false"
      "             WHEN rstatus IN ('completed', 'failed', 'cancelled') THEN true END,"
      "        CASE WHEN rstatus = 'queued' THEN next_attempt_at END, NULL,"
      "        reported_at, $2::jsonb)"
      "   FROM r RETURNING id, topic, key, payload" },
    { "agent_report_get",
      "SELECT json_build_object('call_id', id,"
      "         'transcript', report->'transcript', 'summary', report->'summary',"
      "         'disposition', disposition, 'data', report->'data',"
      "         'reported_at', rfc3339_ms(reported_at))::text AS report"
      "  FROM calls WHERE id = $1" },
    { 0, 0 },
};

static const char *bearer(const bc_http_req *req)
{
    const char *h = bc_http_header(req, "Authorization");

    return h && !strncmp(h, "Bearer ", 7) ? h + 7 : NULL;
}

static int token_ok(bc_api *api, const bc_http_req *req, const char *call, bc_http_resp *resp);

static void context(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_api *api = ud;
    const char *call = bc_http_param(req, "id");
    bc_err err = { "" };
    bc_pg *pg;
    PGresult *res;

    if (token_ok(api, req, call, resp) < 0)
        return;
    pg = bc_pgpool_get(api->pool);
    res = bc_pg_exec(pg, "agent_context", 1, (const char *[]){ call }, &err);
    bc_pgpool_put(api->pool, pg);
    if (!res) {
        bc_log(api->ctx->log, BC_ERROR, "agent.context_failed", "{s:s,s:s}", "call_id", call,
               "error", err.msg);
        bc_http_error(resp, 500, "internal_error", "Internal server error");
        return;
    }
    if (PQntuples(res) != 1)
        bc_http_error(resp, 404, "not_found", "Call not found");
    else
        bc_http_json(resp, 200, json_loads(PQgetvalue(res, 0, 0), 0, NULL));
    PQclear(res);
}

/* 0 if the token in the request is call's; else -1 with the 401 answered. */
static int token_ok(bc_api *api, const bc_http_req *req, const char *call, bc_http_resp *resp)
{
    /* The token names the call; nothing else is asked, so nothing about
     * the call is told before it is checked. */
    if (bc_agent_token_check(api->agent_secret, call, bearer(req), (long long)time(NULL)))
        return 0;
    bc_http_error(resp, 401, "invalid_token",
                  "Authorization: Bearer must carry this call's bc_token, before it expires");
    return -1;
}

/* A 400 naming the field at fault, in Rymi's shape. */
static void bad(bc_http_resp *resp, const char *field, const char *msg)
{
    bc_http_json(resp, 400, json_pack("{s:s,s:s,s:s}", "error", msg, "code", "invalid_request",
                                      "detail", field));
}

/* Checks a transcript: a string, or a list of turns {"role": "agent" |
 * "user", "text": string, "at"?: RFC 3339 string or seconds into the call}.
 * 0, or -1 with the 400 answered. */
static int transcript_ok(json_t *t, bc_http_resp *resp)
{
    char why[160];
    size_t i;
    json_t *turn;

    if (json_is_string(t))
        return 0;
    if (!json_is_array(t) || json_array_size(t) > TURNS_MAX) {
        bad(resp, "transcript", "transcript must be a string or a list of at most 5000 turns");
        return -1;
    }
    json_array_foreach(t, i, turn) {
        const char *role, *text;
        json_t *at = NULL;

        if (json_unpack(turn, "{s:s, s:s, s?o !}", "role", &role, "text", &text, "at", &at) < 0 ||
            (strcmp(role, "agent") && strcmp(role, "user")) ||
            (at && !json_is_null(at) &&
             !(json_is_string(at) && strlen(json_string_value(at)) <= 64) &&
             !(json_is_number(at) && json_number_value(at) >= 0))) {
            snprintf(why, sizeof why,
                     "transcript[%zu] must be {\"role\": \"agent\" or \"user\", "
                     "\"text\": string, \"at\"?: time or seconds}", i);
            bad(resp, "transcript", why);
            return -1;
        }
    }
    return 0;
}

/* Checks a report body; returns the report to store (caller decrefs), or
 * NULL with the 400 answered. */
static json_t *report_parse(const char *raw, size_t len, bc_http_resp *resp)
{
    char why[300];
    json_t *in = bc_json_object(raw, len, why, sizeof why), *out = NULL, *v;
    const char *k, *disp;

    if (!in) {
        bad(resp, "body", why);
        return NULL;
    }
    json_object_foreach(in, k, v) {
        if (strcmp(k, "transcript") && strcmp(k, "summary") && strcmp(k, "disposition") &&
            strcmp(k, "data")) {
            snprintf(why, sizeof why, "unknown field '%.64s': a report has transcript, "
                     "summary, disposition and data", k);
            bad(resp, k, why);
            goto out;
        }
    }
    if (json_object_size(in) == 0) {
        bad(resp, "body", "a report needs one of transcript, summary, disposition or data");
        goto out;
    }
    if ((v = json_object_get(in, "transcript")) && transcript_ok(v, resp) < 0)
        goto out;
    if ((v = json_object_get(in, "summary")) && !json_is_string(v)) {
        bad(resp, "summary", "summary must be a string");
        goto out;
    }
    if ((v = json_object_get(in, "disposition"))) {
        disp = json_string_value(v);
        if (!disp || !*disp || strlen(disp) > DISPOSITION_MAX ||
            strspn(disp, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(disp)) {
            bad(resp, "disposition",
                "disposition must be 1 to 64 characters of a-z, 0-9, '_' and '-'");
            goto out;
        }
    }
    if ((v = json_object_get(in, "data")) && !json_is_object(v)) {
        bad(resp, "data", "data must be an object");
        goto out;
    }
    /* Its size is the body's cap; its depth, the cap on every client JSON. */
    if (v && bc_json_fits(v, "data", REPORT_MAX, why, sizeof why) < 0) {
        bad(resp, "data", why);
        goto out;
    }
    out = json_incref(in);
out:
    json_decref(in);
    return out;
}

/* POST /v1/calls/{id}/report: the agent's end-of-call report. A second
 * report replaces the first (an agent that retries after a timeout must
 * not be refused); one equal to the stored report changes nothing and
 * announces nothing. */
static void report(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_api *api = ud;
    const char *call = bc_http_param(req, "id");
    bc_err err = { "" };
    char topic[160], *doc = NULL;
    const char *raw, *disp;
    size_t len;
    json_t *rep;
    bc_pg *pg;
    PGresult *res = NULL, *got = NULL;

    if (token_ok(api, req, call, resp) < 0)
        return;
    raw = bc_http_body(req, &len);
    if (len > REPORT_MAX) {
        bc_http_error(resp, 413, "payload_too_large", "a report is at most 262144 bytes");
        return;
    }
    if (!(rep = report_parse(raw, len, resp)))
        return;
    disp = json_string_value(json_object_get(rep, "disposition"));
    doc = json_dumps(rep, JSON_COMPACT);
    bc_kafka_topic(topic, sizeof topic, api->topic_prefix, "call-results", NULL);
    const char *p[] = { call, doc, disp, topic };
    pg = bc_pgpool_get(api->pool);
    if (doc && (res = bc_pg_exec(pg, "agent_report_store", 4, p, &err)))
        got = bc_pg_exec(pg, "agent_report_get", 1, p, &err);
    bc_pgpool_put(api->pool, pg);
    if (!got) {
        bc_log(api->ctx->log, BC_ERROR, "agent.report_failed", "{s:s,s:s}", "call_id", call,
               "error", doc ? err.msg : "out of memory");
        bc_http_error(resp, 500, "internal_error", "Internal server error");
    } else if (PQntuples(got) != 1) {
        bc_http_error(resp, 404, "not_found", "Call not found");
    } else {
        if (PQntuples(res) > 0) {
            /* Committed: a failed publish leaves the row to the relay. */
            bc_publisher_outbox_rows(api->pub, res, NULL);
            bc_log(api->ctx->log, BC_INFO, "agent.reported", "{s:s,s:s}", "call_id", call,
                   "disposition", disp ? disp : "");
        }
        bc_http_json(resp, 200, json_loads(PQgetvalue(got, 0, 0), 0, NULL));
    }
    PQclear(res);
    PQclear(got);
    free(doc);
    json_decref(rep);
}

/* Under Rymi's /v1, in its error shape (bc_http_miss's), but keyed by the
 * call's token: no tenant gate. */
static const bc_http_route routes[] = {
    { "GET", "/v1/calls/{id}/context", context, NULL, 0, NULL },
    { "POST", "/v1/calls/{id}/report", report, NULL, 0, NULL },
    { 0 },
};

bc_http_surface bc_agent_routes_surface(bc_api *api)
{
    return (bc_http_surface){ .routes = routes, .ud = api };
}
