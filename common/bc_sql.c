/* bc_sql: the window top-up of the worker and the scheduler, and the lock
 * every window release takes first. */
#include "bc_sql.h"

#include <stdlib.h>

#include <jansson.h>

/* Hands committed outbox rows to the publisher; what it could not take
 * stays in the outbox for the relay. */
static void publish(bc_publisher *pub, const PGresult *res, bc_log *log)
{
    bc_err err = { "" };

    if (bc_publisher_outbox_rows(pub, res, log ? &err : NULL) < 0 && log)
        bc_log(log, BC_WARN, "publish.deferred", "{s:s}", "error", err.msg);
}

int bc_sql_release_lock(bc_pg *pg, const char *const *batches, int n, bc_err *err)
{
    json_t *ids = json_array();
    char *text = NULL;
    int rc = -1;

    for (int i = 0; ids && i < n; i++)
        if (json_array_append_new(ids, json_string(batches[i])) < 0)
            break;
    if (ids && json_array_size(ids) == (size_t)n &&
        (text = json_dumps(ids, JSON_COMPACT))) {
        const char *p[] = { text };
        rc = bc_pg_run(pg, "release_lock", 1, p, err);
    } else {
        bc_err_set(err, "release lock: out of memory");
    }
    free(text);
    json_decref(ids);
    return rc < 0 ? -1 : 0;
}

PGresult *bc_sql_release(bc_pg *pg, const char *batch, const char *jobs_topic, bc_err *err)
{
    const char *p[] = { batch, BC_WINDOW_MULTIPLE, jobs_topic };

    return bc_pg_exec(pg, "release", 3, p, err);
}

PGresult *bc_sql_release_one(bc_pg *pg, const char *batch, const char *jobs_topic,
                             bc_err *err)
{
    if (bc_sql_release_lock(pg, &batch, 1, err) < 0)
        return NULL;
    return bc_sql_release(pg, batch, jobs_topic, err);
}

int bc_sql_top_up(bc_pg *pg, bc_publisher *pub, const char *jobs_topic,
                  const char *const *batches, int n, bc_log *log, bc_err *err)
{
    PGresult **rel;
    int got = 0, jobs = 0;

    if (n <= 0)
        return 0;
    if (!(rel = calloc((size_t)n, sizeof *rel))) {
        bc_err_set(err, "top-up: out of memory");
        return BC_SQL_NO_TXN;
    }
    if (bc_pg_begin(pg, err) < 0) {
        free(rel);
        return BC_SQL_NO_TXN;
    }
    if (bc_sql_release_lock(pg, batches, n, err) == 0)
        for (; got < n; got++)
            if (!(rel[got] = bc_sql_release(pg, batches[got], jobs_topic, err)))
                break;
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
