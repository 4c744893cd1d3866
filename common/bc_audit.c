#include "bc_audit.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_json.h"

const bc_pg_stmt bc_audit_stmts[] = {
    /* $1..$7 as in bc_audit_write. */
    { "audit_insert",
      "INSERT INTO audit_log (tenant_id, actor, key_id, operator, source, action,"
      "                       target_id, detail)"
      " VALUES ($1, CASE WHEN $2::text IS NULL THEN 'admin' ELSE 'api_key' END,"
      "         $2, $3, $4, $5, $6, $7::jsonb)" },
    /* $1 tenant, $2 action or NULL, $3 limit, $4 offset. */
    { "audit_list",
      "SELECT id, rfc3339_ms(at) AS at, actor, key_id, operator, source, action,"
      "       target_id, detail, count(*) OVER () AS total"
      "  FROM audit_log WHERE tenant_id = $1 AND ($2::text IS NULL OR action = $2)"
      " ORDER BY id DESC LIMIT $3::int OFFSET $4::int" },
    { 0, 0 },
};

int bc_audit_write(bc_pg *pg, const bc_audit_actor *who, const char *action,
                   const char *target, json_t *detail, bc_err *err)
{
    int rc = -1;
    char *doc = NULL;
    PGresult *res = NULL;

    if (!detail)
        detail = json_object();
    doc = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
    /* A row must never fail for its size: a detail is small by contract. */
    if (doc && strlen(doc) > BC_AUDIT_DETAIL_MAX) {
        free(doc);
        doc = strdup("{\"truncated\":true}");
    }
    if (!doc) {
        bc_err_set(err, "audit %s: out of memory", action);
        goto out;
    }
    const char *p[] = { who->tenant_id, who->key_id, who->key_id ? NULL : who->operator_name,
                        who->source && *who->source ? who->source : "unknown", action,
                        target, doc };
    if (!(res = bc_pg_exec(pg, "audit_insert", 7, p, err))) {
        bc_err_wrap(err, "audit %s", action);
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    free(doc);
    json_decref(detail);
    return rc;
}

json_t *bc_audit_list(bc_pg *pg, const char *tenant_id, const char *action, int limit,
                      int offset, int internal, long long *total, bc_err *err)
{
    char lim[16], off[16];
    PGresult *res;
    json_t *arr;

    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[] = { tenant_id, action, lim, off };
    if (!(res = bc_pg_exec(pg, "audit_list", 4, p, err)))
        return NULL;
    *total = PQntuples(res) ? bc_pg_int(res, 0, "total", 0) : 0;
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *d = bc_pg_val(res, i, "detail");
        json_t *detail = d ? json_loads(d, 0, NULL) : NULL, *actor;

        if (!strcmp(bc_pg_val(res, i, "actor"), "api_key"))
            actor = json_pack("{s:s,s:o,s:o}", "type", "api_key", "key_id",
                              bc_json_pg_str(res, i, "key_id"), "ip", bc_json_pg_str(res, i, "source"));
        else if (internal)
            actor = json_pack("{s:s,s:o,s:o}", "type", "admin", "operator",
                              bc_json_pg_str(res, i, "operator"), "host",
                              bc_json_pg_str(res, i, "source"));
        else
            actor = json_pack("{s:s}", "type", "admin");
        json_array_append_new(arr, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}",
                                             "id", json_sprintf("aud_%s", bc_pg_val(res, i, "id")),
                                             "created_at", bc_json_pg_str(res, i, "at"),
                                             "actor", actor,
                                             "action", bc_json_pg_str(res, i, "action"),
                                             "target_id", bc_json_pg_str(res, i, "target_id"),
                                             "detail", detail ? detail : json_object()));
    }
    PQclear(res);
    return arr;
}

void bc_audit_operator(char *op, size_t opcap, char *host, size_t hostcap)
{
    struct passwd pw, *found = NULL;
    char buf[1024];
    const char *sudo = getenv("SUDO_USER");

    if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &found) == 0 && found)
        snprintf(op, opcap, "%s", found->pw_name);
    else
        snprintf(op, opcap, "uid %u", (unsigned)getuid());
    if (sudo && *sudo && strcmp(sudo, op)) {
        size_t n = strlen(op);
        snprintf(op + n, opcap - n, " (sudo: %s)", sudo);
    }
    if (gethostname(host, hostcap) < 0 || !*host)
        snprintf(host, hostcap, "unknown");
    host[hostcap - 1] = '\0';
}
