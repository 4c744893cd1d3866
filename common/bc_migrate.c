#include "bc_migrate.h"

#include <stdlib.h>
#include <string.h>

#include "bc_pg.h"

/* Any fixed number: it names "the migration lock" for every process. */
#define MIGRATE_LOCK "7304215593"

static const bc_pg_stmt stmts[] = {
    { "lock", "SELECT pg_advisory_lock(" MIGRATE_LOCK ")" },
    { "unlock", "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")" },
    { "table", "CREATE TABLE IF NOT EXISTS schema_migrations ("
               " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())" },
    { 0, 0 },
};

static int applied_already(bc_pg *pg, const char *name, int *yes, bc_err *err)
{
    const char *p[] = { name };
    PGresult *res = bc_pg_exec_sql(pg, "SELECT 1 FROM schema_migrations WHERE name = $1",
                                   1, p, err);

    if (!res)
        return -1;
    *yes = PQntuples(res) > 0;
    PQclear(res);
    return 0;
}

static int apply(bc_pg *pg, const bc_migration *m, bc_err *err)
{
    const char *p[] = { m->name };
    PGresult *res;

    if (bc_pg_begin(pg, err) < 0)
        return -1;
    /* PQexec runs the whole multi-statement file inside our transaction. */
    res = PQexec(bc_pg_conn(pg), m->sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        bc_err_set(err, "migration %s: %s", m->name, PQresultErrorMessage(res));
        PQclear(res);
        bc_pg_rollback(pg);
        return -1;
    }
    PQclear(res);
    res = bc_pg_exec_sql(pg, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, p, err);
    if (!res) {
        bc_pg_rollback(pg);
        return -1;
    }
    PQclear(res);
    return bc_pg_commit(pg, err);
}

int bc_migrate_run(const char *dsn, bc_log *log, int *applied, bc_err *err)
{
    bc_pg *pg = bc_pg_connect(dsn, stmts, err);
    PGresult *res = NULL;
    int rc = -1, yes;

    *applied = 0;
    if (!pg)
        return -1;
    if (!(res = bc_pg_exec(pg, "lock", 0, NULL, err)))
        goto out;
    PQclear(res);
    if (!(res = bc_pg_exec(pg, "table", 0, NULL, err)))
        goto out;
    PQclear(res);
    res = NULL;
    for (const bc_migration *m = bc_migrations; m->name; m++) {
        if (applied_already(pg, m->name, &yes, err) < 0)
            goto out;
        if (yes)
            continue;
        if (apply(pg, m, err) < 0)
            goto out;
        (*applied)++;
        bc_log(log, BC_INFO, "migrate.applied", "{s:s}", "migration", m->name);
    }
    rc = 0;
out:
    /* The lock is the session's: freeing the connection below releases it
     * even when this fails. */
    (void)bc_pg_run(pg, "unlock", 0, NULL, NULL);
    bc_pg_free(pg);
    return rc;
}
