/* bc_audit: the append-only audit log (sql/0019_audit_log.sql). One row per
 * write by a tenant's API key or an admin command: who (the tenant and key,
 * or the CLI's operator), what (action, target, a small JSON detail), when,
 * and from where (the request's client IP, or the CLI's host). PostgreSQL
 * refuses to change or delete a row once written. */
#ifndef BC_AUDIT_H
#define BC_AUDIT_H

#include <jansson.h>
#include <stddef.h>

#include "bc_err.h"
#include "bc_pg.h"

/* A detail bigger than this, serialised, is stored as {"truncated": true}:
 * room for the largest field a detail carries (a webhook URL, 2,048). */
#define BC_AUDIT_DETAIL_MAX 4096

/* Who wrote. Exactly one of key_id and operator_name is set. */
typedef struct bc_audit_actor {
    const char *tenant_id;      /* whose data changed */
    const char *key_id;         /* the tenant's API key that asked, or NULL */
    const char *operator_name;  /* the admin CLI's operator (OS user), or NULL */
    const char *source;         /* the request's client IP, or the CLI's host */
} bc_audit_actor;

/* The statements this module runs, for a process's table (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_audit_stmts[];

/* Appends one row: action ("batch.cancel"), target (an id, or NULL) and
 * detail (NULL means {}; takes ownership: decref'd). Run it inside the
 * transaction of the change it records, so that neither commits without
 * the other; a failure must roll that change back. 0, or -1 with err set. */
int bc_audit_write(bc_pg *pg, const bc_audit_actor *who, const char *action,
                   const char *target, json_t *detail, bc_err *err);

/* The tenant's rows, newest first: at most limit from offset, only those
 * of action if it is not NULL; *total is how many there are in all.
 * Each is {"id": "aud_<n>", "created_at", "action", "target_id", "detail",
 * "actor": {"type": "api_key", "key_id", "ip"} or {"type": "admin"}}. With
 * internal, an admin's actor also names the "operator" and "host": the
 * CLI shows them, the tenant's route does not. NULL with err set on
 * failure. Caller decrefs. */
json_t *bc_audit_list(bc_pg *pg, const char *tenant_id, const char *action, int limit,
                      int offset, int internal, long long *total, bc_err *err);

/* The admin CLI's operator and host: the name of the user running it
 * ("uid 1000" without a passwd entry; "root (sudo: alice)" under sudo),
 * and the host's name. */
void bc_audit_operator(char *op, size_t opcap, char *host, size_t hostcap);

#endif
