#include "bc_rymi_dnc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_dnc.h"
#include "bc_e164.h"
#include "bc_json.h"

/* Numbers per POST /v1/dnc/batch (and /check): an import of a few hundred
 * thousand fits in one request (the body limit, 8 MiB, holds ~500,000). */
#define MAX_DNC_BATCH 500000

const bc_pg_stmt bc_rymi_dnc_stmts[] = {
    { "rymi_dnc_list",
      "SELECT number, reason, rfc3339(created_at) AS created_at, count(*) OVER () AS total"
      "  FROM dnc WHERE tenant_id = $1 ORDER BY created_at DESC, number"
      " LIMIT $2::int OFFSET $3::int" },
    { "rymi_dnc_delete",
      "DELETE FROM dnc WHERE tenant_id = $1 AND number = $2 RETURNING number" },
    { 0, 0 },
};

/* Validates a list of E.164 numbers (all of them, or a 400). */
static int numbers_ok(bc_surface_req *r, json_t *arr, const char *field, size_t max)
{
    char why[200];
    size_t i;
    json_t *x;

    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > max) {
        snprintf(why, sizeof why, "%s must be an array of 1 to %zu E.164 numbers", field, max);
        bc_http_error(r->resp, 400, "invalid_request", why);
        return -1;
    }
    json_array_foreach(arr, i, x)
        if (!json_is_string(x) || !bc_e164_valid(json_string_value(x))) {
            snprintf(why, sizeof why, "%s[%zu]: invalid E.164 number", field, i);
            bc_http_error(r->resp, 400, "invalid_request", why);
            return -1;
        }
    return 0;
}

static void dnc_add(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    int batch = !strcmp(bc_surface_verb(r), "batch");   /* POST /v1/dnc/batch */
    json_t *in = bc_surface_body(r), *nums;
    const char *reason = NULL;
    char why[200], *arr;
    bc_err err = { "" };
    long long added = 0;

    (void)req;
    if (!in)
        return;
    if (bc_json_no_null(in, "", "reason", why, sizeof why) < 0 ||
        bc_json_str(in, "reason", 0, 255, &reason, why, sizeof why) < 0) {
        bc_http_error(resp, 400, "invalid_request", why);
        goto out;
    }
    if (batch) {
        nums = json_incref(json_object_get(in, "numbers"));
    } else {
        json_t *n = json_object_get(in, "number");
        nums = json_array();
        if (n)
            json_array_append(nums, n);
    }
    if (numbers_ok(r, nums, batch ? "numbers" : "number", batch ? MAX_DNC_BATCH : 1) < 0) {
        json_decref(nums);
        goto out;
    }
    /* One statement however many: an import of hundreds of thousands of
     * numbers is one round trip. */
    arr = bc_dnc_array(nums, NULL);
    if (!arr || bc_dnc_add(r->g.pg, r->g.who.tenant_id, arr, reason, &added, &err) < 0) {
        bc_surface_fail(r, "dnc.add", &err);
    } else if (batch) {
        bc_log(r->api->ctx->log, BC_INFO, "dnc.added", "{s:s,s:I,s:I}", "tenant_id",
               r->g.who.tenant_id, "received", (json_int_t)json_array_size(nums), "added",
               (json_int_t)added);
        bc_http_json(resp, 201, json_pack("{s:I,s:I}", "added", (json_int_t)added,
                                             "received", (json_int_t)json_array_size(nums)));
    } else {
        bc_http_json(resp, added ? 201 : 200,
                     json_pack("{s:O,s:s*,s:b}", "number", json_array_get(nums, 0),
                               "reason", reason, "blocked", 1));
    }
    free(arr);
    json_decref(nums);
out:
    json_decref(in);
}

static void dnc_check(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    json_t *in = bc_surface_body(r), *nums, *hits, *out;
    char *arr;
    bc_err err = { "" };
    PGresult *res;
    size_t i;
    json_t *x;
    int single;

    (void)req;
    if (!in)
        return;
    single = json_object_get(in, "number") != NULL;
    /* number wins, but numbers given beside it must be valid all the same. */
    if (single && json_object_get(in, "numbers") &&
        numbers_ok(r, json_object_get(in, "numbers"), "numbers", MAX_DNC_BATCH) < 0) {
        json_decref(in);
        return;
    }
    if (single) {
        nums = json_array();
        json_array_append(nums, json_object_get(in, "number"));
    } else {
        nums = json_incref(json_object_get(in, "numbers"));
    }
    if (numbers_ok(r, nums, single ? "number" : "numbers", MAX_DNC_BATCH) < 0)
        goto out;
    arr = bc_dnc_array(nums, NULL);
    const char *p[] = { r->g.who.tenant_id, arr };
    res = bc_pg_exec(r->g.pg, "dnc_hits", 2, p, &err);
    free(arr);
    if (!res) {
        bc_surface_fail(r, "dnc.check", &err);
        goto out;
    }
    hits = json_object();
    for (int k = 0; k < PQntuples(res); k++)
        json_object_set_new(hits, bc_pg_val(res, k, "number"), json_true());
    PQclear(res);
    if (single) {
        bc_http_json(resp, 200, json_pack("{s:O,s:b}", "number", json_array_get(nums, 0),
                                             "blocked", json_object_size(hits) > 0));
    } else {
        out = json_array();
        json_array_foreach(nums, i, x)
            json_array_append_new(out, json_pack("{s:O,s:b}", "number", x, "blocked",
                                                 json_object_get(hits, json_string_value(x)) != NULL));
        bc_http_json(resp, 200, json_pack("{s:o}", "results", out));
    }
    json_decref(hits);
out:
    json_decref(nums);
    json_decref(in);
}

static void dnc_list(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    char lim[16], off[16];
    int limit, offset;
    bc_err err = { "" };
    PGresult *res;
    json_t *arr;

    (void)req;
    (void)resp;
    if (bc_rymi_paging(r, &limit, &offset) < 0)
        return;
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[] = { r->g.who.tenant_id, lim, off };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_dnc_list", 3, p, &err))) {
        bc_surface_fail(r, "dnc.list", &err);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, json_pack("{s:o,s:o,s:o}", "number",
                                             bc_json_pg_str(res, i, "number"), "reason",
                                             bc_json_pg_str(res, i, "reason"), "created_at",
                                             bc_json_pg_str(res, i, "created_at")));
    bc_rymi_page(r, "dnc", arr, res, limit, offset);
    PQclear(res);
}

static void dnc_delete(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *number = bc_http_param(req, "number");
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id, number };
    PGresult *res = bc_pg_exec(r->g.pg, "rymi_dnc_delete", 2, p, &err);

    if (!res) {
        bc_surface_fail(r, "dnc.delete", &err);
        return;
    }
    if (PQntuples(res))
        bc_http_json(resp, 200, json_pack("{s:s,s:b}", "number", number, "deleted", 1));
    else
        bc_http_error(resp, 404, "not_found", "Number is not on the DNC list");
    PQclear(res);
}

#define IDEM BC_SURFACE_IDEM

const bc_http_route bc_rymi_dnc_routes[] = {
    { "GET", "/v1/dnc", dnc_list, NULL, 0, NULL },
    { "POST", "/v1/dnc", dnc_add, NULL, IDEM, BC_SURFACE_AUDIT("dnc.add", "reason") },
    { "POST", "/v1/dnc/batch", dnc_add, NULL, IDEM,
      BC_SURFACE_AUDIT("dnc.add_bulk", "added,received") },
    { "POST", "/v1/dnc/check", dnc_check, NULL, IDEM, NULL },
    { "DELETE", "/v1/dnc/{number}", dnc_delete, NULL, 0, BC_SURFACE_AUDIT("dnc.remove", NULL) },
    { 0 },
};
