/* bc_sql: the window top-up of the worker and the scheduler. */
#include "bc_sql.h"

#include <stdlib.h>

/* Hands committed outbox rows to the publisher; what it could not take
 * stays in the outbox for the relay. */
static void publish(bc_publisher *pub, const PGresult *res, bc_log *log)
{
    bc_err err = { "" };

    if (bc_publisher_outbox_rows(pub, res, log ? &err : NULL) < 0 && log)
        bc_log(log, BC_WARN, "publish.deferred", "{s:s}", "error", err.msg);
}

int bc_sql_top_up(bc_pg *pg, bc_publisher *pub, const char *jobs_topic,
                  const char *const *batches, int n, bc_log *log, bc_err *err)
{
    const char *p[] = { NULL, BC_WINDOW_MULTIPLE, jobs_topic };
    PGresult **rel;
    int got = 0, jobs = 0;

    if (n <= 0)
        return 0;
    if (n == 1) {
        PGresult *res;

        p[0] = batches[0];
        if (!(res = bc_pg_exec(pg, "release", 3, p, err)))
            return BC_SQL_FAILED;
        jobs = PQntuples(res);
        publish(pub, res, log);
        PQclear(res);
        return jobs;
    }
    if (!(rel = calloc((size_t)n, sizeof *rel))) {
        bc_err_set(err, "top-up: out of memory");
        return BC_SQL_NO_TXN;
    }
    if (bc_pg_begin(pg, err) < 0) {
        free(rel);
        return BC_SQL_NO_TXN;
    }
    for (; got < n; got++) {
        p[0] = batches[got];
        if (!(rel[got] = bc_pg_exec(pg, "release", 3, p, err)))
            break;
    }
    if (got < n || bc_pg_commit(pg, err) < 0) {
        bc_pg_rollback(pg);
        jobs = BC_SQL_FAILED;
    } else {
        /* Published only once committed: a job never names a recipient
         * whose release could still roll back. */
        for (int i = 0; i < got; i++) {
            jobs += PQntuples(rel[i]);
            publish(pub, rel[i], log);
        }
    }
    for (int i = 0; i < got; i++)
        PQclear(rel[i]);
    free(rel);
    return jobs;
}
