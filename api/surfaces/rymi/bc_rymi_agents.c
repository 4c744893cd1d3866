#include "bc_rymi_agents.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_agent.h"
#include "bc_crypto.h"
#include "bc_json.h"

const bc_pg_stmt bc_rymi_agents_stmts[] = {
    { "rymi_agents",
      "SELECT id, name, region, endpoint, record, config::text AS config,"
      "       rfc3339(created_at) AS created_at,"
      "       rfc3339(updated_at) AS updated_at, count(*) OVER () AS total"
      "  FROM agents WHERE tenant_id = $1 AND deleted_at IS NULL"
      "   AND ($2::text IS NULL OR id = $2)"
      " ORDER BY created_at DESC, id LIMIT $3::int OFFSET $4::int" },
    { "rymi_agent_insert",
      "INSERT INTO agents (id, tenant_id, name, region, config, endpoint, record)"
      " VALUES ($1, $2, $3, $4, $5::jsonb, $6, coalesce($7::boolean, false))" },
    { "rymi_agent_update",
      "UPDATE agents SET name = coalesce($3, name), region = coalesce($4, region),"
      "       config = CASE WHEN $5::jsonb IS NULL THEN config ELSE config || $5::jsonb END,"
      "       endpoint = coalesce($6, endpoint),"
      "       record = coalesce($7::boolean, record), updated_at = now()"
      " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL" },
    { "rymi_agent_delete",
      "UPDATE agents SET deleted_at = now() WHERE id = $1 AND tenant_id = $2"
      "   AND deleted_at IS NULL" },
    { 0, 0 },
};

static json_t *agent_json(const PGresult *res, int i)
{
    const char *kind = bc_agent_kind_name(bc_agent_kind_of(bc_pg_val(res, i, "endpoint")));

    return json_pack("{s:o,s:o,s:o,s:o,s:b,s:o,s:o,s:o,s:o}", "id", bc_json_pg_str(res, i, "id"),
                     "name", bc_json_pg_str(res, i, "name"), "region", bc_json_pg_str(res, i, "region"),
                     "endpoint", bc_json_pg_str(res, i, "endpoint"),
                     "record", !strcmp(bc_pg_val(res, i, "record") ? bc_pg_val(res, i, "record")
                                                                  : "", "t"),
                     "endpoint_kind", kind ? json_string(kind) : json_null(),
                     "config", bc_rymi_json_col(res, i, "config"),
                     "created_at", bc_json_pg_str(res, i, "created_at"),
                     "updated_at", bc_json_pg_str(res, i, "updated_at"));
}

static void agents_list(bc_surface_req *r, const char *only)
{
    char lim[16], off[16];
    int limit, offset;
    bc_err err = { "" };
    PGresult *res;
    json_t *arr;

    if (bc_rymi_paging(r, &limit, &offset) < 0)
        return;
    snprintf(lim, sizeof lim, "%d", only ? 1 : limit);
    snprintf(off, sizeof off, "%d", only ? 0 : offset);
    const char *p[] = { r->g.who.tenant_id, only, lim, off };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_agents", 4, p, &err))) {
        bc_surface_fail(r, "agents.list", &err);
        return;
    }
    if (only) {
        if (PQntuples(res) == 1)
            bc_http_json(r->resp, 200, agent_json(res, 0));
        else
            bc_http_error(r->resp, 404, "not_found", "Agent not found");
        PQclear(res);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, agent_json(res, i));
    bc_rymi_page(r, "agents", arr, res, limit, offset);
    PQclear(res);
}

/* Everything but name, region, endpoint and record is the agent's config,
 * kept as given. The endpoint is how its calls reach it, record whether
 * they are recorded (docs/agents.md); *record is NULL, "t" or "f". */
static int agent_fields(bc_surface_req *r, json_t *in, int create, const char **name, const char **region,
                        const char **endpoint, const char **record, char **config)
{
    char why[200];
    json_t *cfg = json_deep_copy(in), *rec = json_object_get(in, "record");

    /* None of them may be null (region: a null is no region and would not
     * clear one either), as the OpenAPI document says. */
    if (bc_json_no_null(in, "", "name,region,endpoint,record", why, sizeof why) < 0) {
        bc_http_error(r->resp, 400, "invalid_request", why);
        json_decref(cfg);
        return -1;
    }
    if (rec && !json_is_boolean(rec)) {
        bc_http_error(r->resp, 400, "invalid_request", "record must be a boolean");
        json_decref(cfg);
        return -1;
    }
    *record = json_is_boolean(rec) ? (json_is_true(rec) ? "t" : "f") : NULL;
    if (bc_json_str(in, "name", create, 255, name, why, sizeof why) < 0 ||
        bc_json_str(in, "region", 0, 8, region, why, sizeof why) < 0 ||
        bc_json_str(in, "endpoint", 0, BC_AGENT_ENDPOINT_MAX, endpoint, why, sizeof why) < 0 ||
        (*endpoint && bc_agent_endpoint_check(*endpoint, why, sizeof why) < 0)) {
        bc_http_error(r->resp, 400, "invalid_request", why);
        json_decref(cfg);
        return -1;
    }
    /* An update names no new name, or one of 1 to 255 characters, as on create. */
    if (*name && !**name) {
        bc_http_error(r->resp, 400, "invalid_request", "name must not be empty");
        json_decref(cfg);
        return -1;
    }
    if (*region && strcmp(*region, "us") && strcmp(*region, "eu") && strcmp(*region, "apac")) {
        bc_http_error(r->resp, 400, "invalid_request", "region must be one of us, eu, apac");
        json_decref(cfg);
        return -1;
    }
    json_object_del(cfg, "name");
    json_object_del(cfg, "region");
    json_object_del(cfg, "endpoint");
    json_object_del(cfg, "endpoint_kind");
    json_object_del(cfg, "record");
    json_object_del(cfg, "id");
    if (bc_json_fits(cfg, "the agent's config (its fields but name, region, endpoint and "
                     "record)", BC_JSON_MAX_CONFIG_BYTES, why, sizeof why) < 0) {
        bc_http_error(r->resp, 400, "invalid_request", why);
        json_decref(cfg);
        return -1;
    }
    *config = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    return 0;
}

static void agent_create(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    json_t *in = bc_surface_body(r);
    const char *name = NULL, *region = NULL, *endpoint = NULL, *record = NULL;
    char *config = NULL, id[48];
    bc_err err = { "" };
    PGresult *res;

    (void)req;
    if (!in)
        return;
    if (agent_fields(r, in, 1, &name, &region, &endpoint, &record, &config) == 0) {
        bc_id_new(id, sizeof id, "agent");
        const char *p[] = { id, r->g.who.tenant_id, name, region, config, endpoint, record };
        if (!(res = bc_pg_exec(r->g.pg, "rymi_agent_insert", 7, p, &err))) {
            bc_surface_fail(r, "agent.create", &err);
        } else {
            PQclear(res);
            agents_list(r, id);
            resp->status = 201;
        }
    }
    free(config);
    json_decref(in);
}

static void agent_update(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *id = bc_http_param(req, "id");
    json_t *in = bc_surface_body(r);
    const char *name = NULL, *region = NULL, *endpoint = NULL, *record = NULL;
    char *config = NULL;
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    if (agent_fields(r, in, 0, &name, &region, &endpoint, &record, &config) == 0) {
        const char *p[] = { id, r->g.who.tenant_id, name, region, config, endpoint, record };
        if (!(res = bc_pg_exec(r->g.pg, "rymi_agent_update", 7, p, &err))) {
            bc_surface_fail(r, "agent.update", &err);
        } else {
            int n = atoi(PQcmdTuples(res));
            PQclear(res);
            if (n)
                agents_list(r, id);
            else
                bc_http_error(resp, 404, "not_found", "Agent not found");
        }
    }
    free(config);
    json_decref(in);
}

static void agent_delete(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *id = bc_http_param(req, "id");
    bc_err err = { "" };
    const char *p[] = { id, r->g.who.tenant_id };
    PGresult *res = bc_pg_exec(r->g.pg, "rymi_agent_delete", 2, p, &err);

    if (!res) {
        bc_surface_fail(r, "agent.delete", &err);
        return;
    }
    if (atoi(PQcmdTuples(res)))
        bc_http_json(resp, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
    else
        bc_http_error(resp, 404, "not_found", "Agent not found");
    PQclear(res);
}

int bc_rymi_agent_exists(bc_surface_req *r, const char *agent)
{
    const char *p[] = { agent, r->g.who.tenant_id };
    PGresult *res = bc_pg_exec(r->g.pg, "agent_get", 2, p, NULL);
    int ok = res && PQntuples(res) == 1;

    PQclear(res);
    return ok;
}

/* GET /v1/agents and /v1/agents/{id}. */
static void agents_read(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    (void)resp;
    agents_list(ud, bc_http_param(req, "id"));
}

#define IDEM BC_SURFACE_IDEM

const bc_http_route bc_rymi_agents_routes[] = {
    { "GET", "/v1/agents", agents_read, NULL, 0, NULL },
    { "POST", "/v1/agents", agent_create, NULL, IDEM,
      BC_SURFACE_AUDIT("agent.create", "name,region,endpoint_kind") },
    { "GET", "/v1/agents/{id}", agents_read, NULL, 0, NULL },
    { "PUT", "/v1/agents/{id}", agent_update, NULL, 0,
      BC_SURFACE_AUDIT("agent.update", "name,region,endpoint_kind,record") },
    { "DELETE", "/v1/agents/{id}", agent_delete, NULL, 0, BC_SURFACE_AUDIT("agent.delete", NULL) },
    { 0 },
};
