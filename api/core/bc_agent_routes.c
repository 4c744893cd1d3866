#include "bc_agent_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_agent.h"
#include "bc_json.h"
#include "bc_kafka.h"

#define PREFIX "/v1/calls/"
#define REPORT_MAX (256 * 1024)  /* bytes of a report's body */
#define TURNS_MAX 5000           /* entries of a transcript */
#define DISPOSITION_MAX 64

/* Rymi's error body, since these routes live under its /v1. */
static void error(bc_http_resp *resp, int status, const char *code, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:s,s:s}", "error", msg, "code", code));
}

/* The call id of PREFIX "{id}/" tail, copied to id; 0, or -1 when the path
 * is not one of ours. */
static int call_of(const char *path, const char *tail, char *id, size_t cap)
{
    const char *p = path + strlen(PREFIX), *slash;

    if (strncmp(path, PREFIX, strlen(PREFIX)) || !(slash = strchr(p, '/')) ||
        strcmp(slash + 1, tail) || slash == p || (size_t)(slash - p) >= cap)
        return -1;
    memcpy(id, p, (size_t)(slash - p));
    id[slash - p] = '\0';
    return 0;
}

static const char *bearer(const bc_http_req *req)
{
    const char *h = bc_http_header(req, "Authorization");

    return h && !strncmp(h, "Bearer ", 7) ? h + 7 : NULL;
}

static int token_ok(bc_api *api, const bc_http_req *req, const char *call, bc_http_resp *resp);

static void context(bc_api *api, const bc_http_req *req, const char *call,
                    bc_http_resp *resp)
{
    bc_err err = { "" };
    bc_pg *pg;
    PGresult *res;

    if (strcmp(bc_http_method(req), "GET")) {
        error(resp, 405, "method_not_allowed", "use GET");
        return;
    }
    if (token_ok(api, req, call, resp) < 0)
        return;
    pg = bc_pgpool_get(api->pool);
    res = bc_pg_exec(pg, "agent_context", 1, (const char *[]){ call }, &err);
    bc_pgpool_put(api->pool, pg);
    if (!res) {
        bc_log(api->ctx->log, BC_ERROR, "agent.context_failed", "{s:s,s:s}", "call_id", call,
               "error", err.msg);
        error(resp, 500, "internal_error", "Internal server error");
        return;
    }
    if (PQntuples(res) != 1)
        error(resp, 404, "not_found", "Call not found");
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
    error(resp, 401, "invalid_token",
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
        const char *role = json_string_value(json_object_get(turn, "role"));
        json_t *at = json_object_get(turn, "at");
        const char *k;
        json_t *v;
        int extra = 0;

        json_object_foreach(turn, k, v)
            extra |= strcmp(k, "role") && strcmp(k, "text") && strcmp(k, "at");
        if (!json_is_object(turn) || !role || (strcmp(role, "agent") && strcmp(role, "user")) ||
            !json_is_string(json_object_get(turn, "text")) || extra ||
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
    out = json_incref(in);
out:
    json_decref(in);
    return out;
}

/* POST /v1/calls/{id}/report: the agent's end-of-call report. A second
 * report replaces the first (an agent that retries after a timeout must
 * not be refused); one equal to the stored report changes nothing and
 * announces nothing. */
static void report(bc_api *api, const bc_http_req *req, const char *call, bc_http_resp *resp)
{
    bc_err err = { "" };
    char topic[160], *doc = NULL;
    const char *raw, *disp;
    size_t len;
    json_t *rep;
    bc_pg *pg;
    PGresult *res = NULL, *got = NULL;

    if (strcmp(bc_http_method(req), "POST")) {
        error(resp, 405, "method_not_allowed", "use POST");
        return;
    }
    if (token_ok(api, req, call, resp) < 0)
        return;
    raw = bc_http_body(req, &len);
    if (len > REPORT_MAX) {
        error(resp, 413, "payload_too_large", "a report is at most 262144 bytes");
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
        error(resp, 500, "internal_error", "Internal server error");
    } else if (PQntuples(got) != 1) {
        error(resp, 404, "not_found", "Call not found");
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

int bc_agent_routes_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp)
{
    char call[64];

    if (call_of(bc_http_path(req), "context", call, sizeof call) == 0) {
        bc_http_set_route(req, "/v1/calls/{id}/context");
        context(api, req, call, resp);
        return 1;
    }
    if (call_of(bc_http_path(req), "report", call, sizeof call) == 0) {
        bc_http_set_route(req, "/v1/calls/{id}/report");
        report(api, req, call, resp);
        return 1;
    }
    return 0;
}
