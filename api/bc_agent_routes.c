#include "bc_agent_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_agent.h"

#define PREFIX "/v1/calls/"

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
    /* The token names the call; nothing else is asked, so nothing about
     * the call is told before it is checked. */
    if (!bc_agent_token_check(api->agent_secret, call, bearer(req), (long long)time(NULL))) {
        error(resp, 401, "invalid_token",
              "Authorization: Bearer must carry this call's bc_token, before it expires");
        return;
    }
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

int bc_agent_routes_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp)
{
    char call[64];

    if (call_of(bc_http_path(req), "context", call, sizeof call) == 0) {
        bc_http_set_route(req, "/v1/calls/{id}/context");
        context(api, req, call, resp);
        return 1;
    }
    return 0;
}
