#include "bc_rymi_numbers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypto.h"
#include "bc_e164.h"
#include "bc_json.h"
#include "bc_rymi_agents.h"

const bc_pg_stmt bc_rymi_numbers_stmts[] = {
    { "rymi_numbers",
      "SELECT id, number, provider, agent_id, is_default, rfc3339(created_at) AS created_at,"
      "       count(*) OVER () AS total"
      "  FROM phone_numbers WHERE tenant_id = $1 AND ($2::text IS NULL OR number = $2)"
      " ORDER BY created_at, id LIMIT $3::int OFFSET $4::int" },
    { "rymi_number_insert",
      "INSERT INTO phone_numbers (id, tenant_id, number, provider, agent_id, is_default)"
      " VALUES ($1, $2, $3, $4, $5,"
      "         NOT EXISTS (SELECT 1 FROM phone_numbers WHERE tenant_id = $2))"
      " ON CONFLICT (tenant_id, number) DO NOTHING" },
    { "rymi_number_attach",
      "UPDATE phone_numbers SET agent_id = $3 WHERE tenant_id = $1 AND number = $2" },
    { "rymi_number_delete",
      "DELETE FROM phone_numbers p WHERE tenant_id = $1 AND number = $2"
      "   AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.from_number_id = p.id)"
      " RETURNING id" },
    { 0, 0 },
};

static json_t *number_json(const PGresult *res, int i)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:b,s:o}", "id", bc_json_pg_str(res, i, "id"),
                     "number", bc_json_pg_str(res, i, "number"),
                     "provider", bc_json_pg_str(res, i, "provider"),
                     "agent_id", bc_json_pg_str(res, i, "agent_id"),
                     "is_default", !strcmp(bc_pg_val(res, i, "is_default"), "t"),
                     "created_at", bc_json_pg_str(res, i, "created_at"));
}

static void numbers_list(bc_surface_req *r, const char *only, int status)
{
    char lim[16], off[16];
    int limit = 50, offset = 0;
    bc_err err = { "" };
    PGresult *res;
    json_t *arr;

    if (!only && bc_rymi_paging(r, &limit, &offset) < 0)
        return;
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[] = { r->g.who.tenant_id, only, lim, off };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_numbers", 4, p, &err))) {
        bc_surface_fail(r, "numbers.list", &err);
        return;
    }
    if (only) {
        if (PQntuples(res) == 1)
            bc_http_json(r->resp, status, number_json(res, 0));
        else
            bc_http_error(r->resp, 404, "not_found", "Number not found");
        PQclear(res);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, number_json(res, i));
    bc_rymi_page(r, "numbers", arr, res, limit, offset);
    PQclear(res);
}

static void number_create(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    json_t *in = bc_surface_body(r);
    const char *number = NULL, *provider = NULL, *agent = NULL;
    char why[200], id[48];
    bc_err err = { "" };
    PGresult *res;

    (void)req;
    if (!in)
        return;
    if (bc_json_no_null(in, "", "number,provider,agent_id", why, sizeof why) < 0 ||
        bc_json_str(in, "number", 1, 16, &number, why, sizeof why) < 0 ||
        bc_json_str(in, "provider", 0, 16, &provider, why, sizeof why) < 0 ||
        bc_json_str(in, "agent_id", 0, 64, &agent, why, sizeof why) < 0) {
        bc_http_error(resp, 400, "invalid_request", why);
    } else if (!bc_e164_valid(number)) {
        bc_http_error(resp, 400, "invalid_request", "number must be an E.164 phone number");
    } else if (provider && strcmp(provider, "twilio") && strcmp(provider, "plivo") &&
               strcmp(provider, "vonage")) {
        bc_http_error(resp, 400, "invalid_request", "provider must be one of twilio, plivo, vonage");
    } else if (agent && !bc_rymi_agent_exists(r, agent)) {
        bc_http_error(resp, 404, "agent_not_found", "Agent not found for this tenant");
    } else {
        bc_id_new(id, sizeof id, "ap");
        const char *p[] = { id, r->g.who.tenant_id, number, provider ? provider : "twilio", agent };
        if (!(res = bc_pg_exec(r->g.pg, "rymi_number_insert", 5, p, &err))) {
            bc_surface_fail(r, "number.create", &err);
        } else {
            int n = atoi(PQcmdTuples(res));
            PQclear(res);
            if (n)
                numbers_list(r, number, 201);
            else
                bc_http_error(resp, 409, "conflict", "This number is already registered");
        }
    }
    json_decref(in);
}

static void number_attach(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *number = bc_http_param(req, "number");
    json_t *in = bc_surface_body(r);
    const char *agent = NULL;
    char why[200];
    bc_err err = { "" };
    PGresult *res;

    if (!in)
        return;
    if (bc_json_str(in, "agent_id", 1, 64, &agent, why, sizeof why) < 0) {
        bc_http_error(resp, 400, "invalid_request", why);
    } else if (!bc_rymi_agent_exists(r, agent)) {
        bc_http_error(resp, 404, "agent_not_found", "Agent not found for this tenant");
    } else {
        const char *p[] = { r->g.who.tenant_id, number, agent };
        if (!(res = bc_pg_exec(r->g.pg, "rymi_number_attach", 3, p, &err))) {
            bc_surface_fail(r, "number.attach", &err);
        } else {
            int n = atoi(PQcmdTuples(res));
            PQclear(res);
            if (n)
                numbers_list(r, number, 200);
            else
                bc_http_error(resp, 404, "not_found", "Number not found");
        }
    }
    json_decref(in);
}

static void number_delete(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *number = bc_http_param(req, "number");
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id, number };
    PGresult *res = bc_pg_exec(r->g.pg, "rymi_number_delete", 2, p, &err), *ex;

    if (!res) {
        bc_surface_fail(r, "number.delete", &err);
        return;
    }
    if (PQntuples(res) == 1) {
        bc_http_json(resp, 200, json_pack("{s:s,s:b}", "number", number, "deleted", 1));
    } else {
        const char *x[] = { r->g.who.tenant_id, number, "1", "0" };
        ex = bc_pg_exec(r->g.pg, "rymi_numbers", 4, x, NULL);
        if (ex && PQntuples(ex) == 1)
            bc_http_error(resp, 409, "conflict", "This number is used by existing calls");
        else
            bc_http_error(resp, 404, "not_found", "Number not found");
        PQclear(ex);
    }
    PQclear(res);
}

static void numbers_read(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    (void)req;
    (void)resp;
    numbers_list(ud, NULL, 200);
}

#define IDEM BC_SURFACE_IDEM

const bc_http_route bc_rymi_numbers_routes[] = {
    { "GET", "/v1/numbers", numbers_read, NULL, 0, NULL },
    { "POST", "/v1/numbers", number_create, NULL, IDEM,
      BC_SURFACE_AUDIT("number.create", "number,provider,agent_id") },
    { "POST", "/v1/numbers/{number}/attach", number_attach, NULL, IDEM,
      BC_SURFACE_AUDIT("number.attach", "number,agent_id") },
    { "DELETE", "/v1/numbers/{number}", number_delete, NULL, 0,
      BC_SURFACE_AUDIT("number.delete", NULL) },
    { 0 },
};
