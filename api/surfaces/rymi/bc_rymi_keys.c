#include "bc_rymi_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_apikey.h"
#include "bc_crypto.h"
#include "bc_json.h"

const bc_pg_stmt bc_rymi_keys_stmts[] = {
    { "rymi_pk_list",
      "SELECT id, lookup, rfc3339(created_at) AS created_at FROM api_keys"
      " WHERE tenant_id = $1 AND kind = 'publishable' AND revoked_at IS NULL"
      " ORDER BY created_at, id" },
    { "rymi_key_insert",
      "INSERT INTO api_keys (id, tenant_id, kind, lookup, hash) VALUES ($1, $2, $3, $4, $5)" },
    { "rymi_key_revoke",
      "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND tenant_id = $2"
      "   AND kind = $3 AND revoked_at IS NULL" },
    { 0, 0 },
};

/* POST /v1/keys/publishable, or POST /v1/auth/regenerate-key: a new secret
 * key, and the one that asked stops working in the same commit. */
static void key_issue(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    int publishable = !strcmp(bc_surface_verb(r), "publishable");
    const char *revoke_id = publishable ? NULL : r->g.who.key_id;
    char token[BC_APIKEY_MAX], lookup[BC_APIKEY_LOOKUP], hash[BC_SHA256_HEX], id[48];
    bc_err err = { "" };
    PGresult *res;

    (void)req;
    if (bc_apikey_new(publishable, token, lookup, hash) < 0 || bc_id_new(id, sizeof id, "key") < 0) {
        bc_surface_fail(r, "key.random", NULL);
        return;
    }
    if (bc_pg_begin(r->g.pg, &err) < 0) {
        bc_surface_fail(r, "key.issue", &err);
        return;
    }
    const char *p[] = { id, r->g.who.tenant_id, publishable ? "publishable" : "secret", lookup, hash };
    if (!(res = bc_pg_exec(r->g.pg, "rymi_key_insert", 5, p, &err)))
        goto fail;
    PQclear(res);
    if (revoke_id) {
        /* Rotation: the key that asked stops working in the same commit. */
        const char *v[] = { revoke_id, r->g.who.tenant_id, "secret" };
        if (!(res = bc_pg_exec(r->g.pg, "rymi_key_revoke", 3, v, &err)))
            goto fail;
        PQclear(res);
    }
    if (bc_surface_audit_write(r, revoke_id ? "key.regenerate" : "key.issue", id,
              json_pack("{s:s,s:s*}", "type", publishable ? "publishable" : "secret",
                        "revoked_key_id", revoke_id), &err) < 0 ||
        bc_pg_commit(r->g.pg, &err) < 0)
        goto fail;
    bc_log(r->api->ctx->log, BC_INFO, publishable ? "key.publishable_created" : "key.rotated",
           "{s:s,s:s}", "tenant_id", r->g.who.tenant_id, "key_id", id);
    bc_gate_idem_secret(&r->g, publishable ? "key" : "api_key");
    bc_http_json(resp, 201, json_pack("{s:s,s:s,s:s,s:s}", "id", id, "type",
                                         publishable ? "publishable" : "secret",
                                         publishable ? "key" : "api_key", token,
                                         "note", "store this key now: it is not shown again"));
    return;
fail:
    bc_pg_rollback(r->g.pg);
    bc_surface_fail(r, "key.issue", &err);
}

static void keys_list(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    bc_err err = { "" };
    const char *p[] = { r->g.who.tenant_id };
    PGresult *res = bc_pg_exec(r->g.pg, "rymi_pk_list", 1, p, &err);
    json_t *arr;

    (void)req;
    if (!res) {
        bc_surface_fail(r, "keys.list", &err);
        return;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, json_pack("{s:o,s:o,s:o}", "id", bc_json_pg_str(res, i, "id"),
                                             "prefix", json_sprintf("bc_pk_%s", bc_pg_val(res, i, "lookup")),
                                             "created_at", bc_json_pg_str(res, i, "created_at")));
    PQclear(res);
    bc_http_json(resp, 200, json_pack("{s:o}", "keys", arr));
}

static void key_revoke(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    bc_surface_req *r = ud;
    const char *p[] = { bc_http_param(req, "id"), r->g.who.tenant_id, "publishable" };

    (void)resp;
    bc_rymi_delete(r, "rymi_key_revoke", 3, p, "Key");
}

#define IDEM BC_SURFACE_IDEM

const bc_http_route bc_rymi_keys_routes[] = {
    { "GET", "/v1/keys/publishable", keys_list, NULL, 0, NULL },
    { "POST", "/v1/keys/publishable", key_issue, NULL, IDEM, NULL },
    { "DELETE", "/v1/keys/publishable/{id}", key_revoke, NULL, 0,
      BC_SURFACE_AUDIT("key.revoke", NULL) },
    { "POST", "/v1/auth/regenerate-key", key_issue, NULL, IDEM, NULL },
    { 0 },
};
