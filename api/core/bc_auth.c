#include "bc_auth.h"

#include <string.h>
#include <strings.h>

#include "bc_apikey.h"

bc_auth_result bc_auth_key(bc_pg *pg, const char *token, bc_principal *who)
{
    char lookup[BC_APIKEY_LOOKUP];
    int publishable;
    PGresult *res;
    bc_auth_result rc = BC_AUTH_INVALID;

    if (bc_apikey_parse(token, lookup, &publishable) < 0)
        return BC_AUTH_INVALID;
    const char *p[] = { lookup };
    if (!(res = bc_pg_exec(pg, "auth_key", 1, p, NULL)))
        return BC_AUTH_ERROR;
    if (PQntuples(res) == 1 && bc_apikey_matches(token, bc_pg_val(res, 0, "hash"))) {
        snprintf(who->tenant_id, sizeof who->tenant_id, "%s", bc_pg_val(res, 0, "tenant_id"));
        snprintf(who->key_id, sizeof who->key_id, "%s", bc_pg_val(res, 0, "id"));
        snprintf(who->default_region, sizeof who->default_region, "%s",
                 bc_pg_val(res, 0, "default_region"));
        who->publishable = !strcmp(bc_pg_val(res, 0, "kind"), "publishable");
        who->concurrency = (int)bc_pg_int(res, 0, "concurrency", 1);
        rc = BC_AUTH_OK;
    }
    PQclear(res);
    return rc;
}

bc_auth_result bc_auth_request(bc_pg *pg, const bc_http_req *req,
                               bc_principal *who)
{
    const char *authz = bc_http_header(req, "Authorization");
    const char *key = bc_http_header(req, "X-API-Key");
    const char *secret = bc_http_header(req, "X-API-Secret");
    char joined[BC_APIKEY_MAX];

    if (authz) {
        if (strncasecmp(authz, "Bearer ", 7) != 0)
            return BC_AUTH_INVALID;
        return bc_auth_key(pg, authz + 7, who);
    }
    if (key && secret) {
        if (bc_apikey_join(key, secret, joined) < 0)
            return BC_AUTH_INVALID;
        return bc_auth_key(pg, joined, who);
    }
    if (key)
        return bc_auth_key(pg, key, who);
    return BC_AUTH_MISSING;
}
