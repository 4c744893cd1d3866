#include "bc_rymi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_json.h"

void bc_rymi_credit_error(bc_http_resp *resp, int status, const char *code, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:s,s:s,s:s}", "error", msg, "code", code,
                                         "detail", "tenant_balance_exhausted"));
}

void bc_rymi_bad_field(bc_surface_req *r, const char *msg, const char *field)
{
    bc_http_json(r->resp, 400, json_pack("{s:s,s:s,s:s}", "error", msg, "code",
                                         "invalid_request", "detail", field));
}

int bc_rymi_paging(bc_surface_req *r, int *limit, int *offset)
{
    long l, o;

    if (bc_http_query_long(r->req, "limit", 1, 200, 50, &l) < 0) {
        bc_http_error(r->resp, 400, "invalid_request",
                      "limit must be an integer between 1 and 200");
        return -1;
    }
    if (bc_http_query_long(r->req, "offset", 0, 1000000000, 0, &o) < 0) {
        bc_http_error(r->resp, 400, "invalid_request",
                      "offset must be an integer between 0 and 1000000000");
        return -1;
    }
    *limit = (int)l;
    *offset = (int)o;
    return 0;
}

json_t *bc_rymi_json_col(const PGresult *res, int row, const char *col)
{
    const char *v = bc_pg_val(res, row, col);
    json_t *j = v ? json_loads(v, 0, NULL) : NULL;

    return j ? j : json_null();
}

void bc_rymi_page(bc_surface_req *r, const char *name, json_t *arr, const PGresult *res,
                  int limit, int offset)
{
    json_int_t total = PQntuples(res) ? (json_int_t)bc_pg_int(res, 0, "total", 0) : 0;

    bc_http_json(r->resp, 200, json_pack("{s:o,s:I,s:i,s:i}", name, arr, "total", total,
                                         "limit", limit, "offset", offset));
}

void bc_rymi_delete(bc_surface_req *r, const char *stmt, int n, const char *const *p,
                    const char *what)
{
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(r->g.pg, stmt, n, p, &err);
    const char *id = p[0];
    char msg[64];

    if (!res) {
        bc_surface_fail(r, stmt, &err);
        return;
    }
    snprintf(msg, sizeof msg, "%s not found", what);
    if (atoi(PQcmdTuples(res)))
        bc_http_json(r->resp, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
    else
        bc_http_error(r->resp, 404, "not_found", msg);
    PQclear(res);
}

/* ---- the surface ---------------------------------------------------------------- */

static int batch_key_ok(bc_surface_req *r)
{
    if (!r->route || !(r->route->flags & BC_RYMI_NO_PK) || !r->g.who.publishable)
        return 0;
    bc_http_error(r->resp, 403, "forbidden", "Publishable keys cannot use batch API");
    return -1;
}

static const bc_surface_gate gate = {
    .name = "rymi",
    .error = bc_http_error,
    .not_found = "No such route",
    .failed = "Internal server error",
    .no_credit = "Insufficient credits to start this call",
    .credit_error = bc_rymi_credit_error,
    .idem_conflict = 409,
    .check = batch_key_ok,
};

bc_http_surface bc_rymi_surface(bc_api *api, const bc_http_route *routes)
{
    return (bc_http_surface){ "/v1/", routes, bc_surface_serve, api, &gate };
}
