/* bc_sql: the window top-up of the worker and the scheduler, and the lock
 * every window release takes first. */
#include "bc_sql.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Hands committed outbox rows to the publisher; what it could not take
 * stays in the outbox for the relay. */
static void publish(bc_publisher *pub, const PGresult *res, bc_log *log)
{
    bc_err err = { "" };

    if (bc_publisher_outbox_rows(pub, res, log ? &err : NULL) < 0 && log)
        bc_log(log, BC_WARN, "publish.deferred", "{s:s}", "error", err.msg);
}

/* The n batch ids as a JSON array's text (caller frees), or NULL. */
static char *ids_doc(const char *const *batches, int n)
{
    json_t *ids = json_array();
    char *text = NULL;
    int i = 0;

    while (ids && i < n && json_array_append_new(ids, json_string(batches[i])) == 0)
        i++;
    if (ids && i == n)
        text = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    return text;
}

int bc_sql_release_lock(bc_pg *pg, const char *const *batches, int n, bc_err *err)
{
    char *text = ids_doc(batches, n);
    const char *p[] = { text };
    int rc = text ? bc_pg_run(pg, "release_lock", 1, p, err) : -1;

    if (!text)
        bc_err_set(err, "release lock: out of memory");
    free(text);
    return rc < 0 ? -1 : 0;
}

int bc_sql_release_try_lock(bc_pg *pg, const char *const *batches, int n, char *skipped,
                            bc_err *err)
{
    char *text = ids_doc(batches, n);
    const char *p[] = { text };
    PGresult *res = text ? bc_pg_exec(pg, "release_try_lock", 1, p, err) : NULL;
    int took = 0;

    if (!text)
        bc_err_set(err, "release lock: out of memory");
    free(text);
    if (!res)
        return -1;
    memset(skipped, 1, (size_t)n);
    for (int r = 0; r < PQntuples(res); r++) {
        long long i = bc_pg_int(res, r, "i", -1);

        if (i >= 0 && i < n && skipped[i]) {
            skipped[i] = 0;
            took++;
        }
    }
    PQclear(res);
    return took;
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
                  const char *const *batches, int n, char *skipped, bc_log *log, bc_err *err)
{
    PGresult **rel;
    int got = 0, jobs = 0, locked;

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
    locked = skipped ? bc_sql_release_try_lock(pg, batches, n, skipped, err)
                     : bc_sql_release_lock(pg, batches, n, err);
    for (int i = 0; locked >= 0 && i < n; i++) {
        if (skipped && skipped[i])
            continue;
        if (!(rel[got] = bc_sql_release(pg, batches[i], jobs_topic, err))) {
            locked = -1;
            break;
        }
        got++;
    }
    if (locked < 0 || bc_pg_commit(pg, err) < 0) {
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
