#include "bc_batch_admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_kafka.h"
#include "bc_lease.h"
#include "bc_sql.h"

/* Releases one batch's window; lock: whether to take its release lock
 * first (else the caller holds it). region names its jobs topic. */
static PGresult *release(bc_api *api, bc_pg *pg, const char *id, const char *region, int lock,
                         bc_err *err)
{
    char topic[160];

    bc_kafka_topic(topic, sizeof topic, api->topic_prefix, "jobs", region);
    return lock ? bc_sql_release_one(pg, id, topic, err) : bc_sql_release(pg, id, topic, err);
}

PGresult *bc_batch_release(bc_api *api, bc_pg *pg, const char *id, const char *region,
                           bc_err *err)
{
    return release(api, pg, id, region, 1, err);
}

/* Gives an admitted batch its lease slots (its reservation) and releases
 * its first window of jobs to the outbox. Returns the outbox rows, NULL on
 * error. */
static PGresult *open_window(bc_api *api, bc_pg *pg, const char *id,
                             const char *slots, const char *region, bc_err *err)
{
    const char *p[] = { id, slots };
    PGresult *res = bc_pg_exec(pg, "leases_insert", 2, p, err);

    if (!res)
        return NULL;
    PQclear(res);
    return bc_batch_release(api, pg, id, region, err);
}

int bc_batch_admit(bc_api *api, bc_pg *pg, const char *tenant, long concurrency, const char *id,
                   const char *limit, const char *region, int scheduled_ahead, PGresult **rel,
                   bc_err *err)
{
    const char *t[] = { tenant };
    PGresult *res;
    long reserved;
    const char *state, *why = NULL;
    char slots[16];

    const char *o[] = { tenant, id };
    int older_waits, held, need, grant, live, admit;

    *rel = NULL;
    /* Paused, itself or by its tenant: it waits as pending (or scheduled)
     * and is admitted once both pauses are over. */
    if (!(res = bc_pg_exec(pg, "batch_held", 1, o + 1, err)))
        return -1;
    held = PQntuples(res) == 1 && !strcmp(bc_pg_val(res, 0, "held"), "t");
    PQclear(res);
    if (!(res = bc_pg_exec(pg, "tenant_reserved", 1, t, err)))
        return -1;
    reserved = bc_pg_int(res, 0, "reserved", 0);
    PQclear(res);
    if (!(res = bc_pg_exec(pg, "batch_need", 1, o + 1, err)))
        return -1;
    need = bc_lease_reservation(atoi(limit), bc_pg_int(res, 0, "need", 0));
    live = !strcmp(bc_pg_val(res, 0, "live"), "t");
    PQclear(res);
    /* Oldest first: a batch never jumps ahead of an older one still waiting,
     * even when it alone would fit. */
    if (!(res = bc_pg_exec(pg, "older_pending", 2, o, err)))
        return -1;
    older_waits = !strcmp(bc_pg_val(res, 0, "waiting"), "t");
    PQclear(res);
    grant = bc_lease_grant((int)concurrency, reserved, need);
    admit = !scheduled_ahead && !held && !older_waits && live && grant >= 0;
    state = scheduled_ahead ? "scheduled" : admit ? "admitted" : "pending";
    if (!scheduled_ahead && !admit && !held)
        why = !live ? "region" : "concurrency";
    const char *a[] = { id, state, why };
    if (!(res = bc_pg_exec(pg, "batch_set_state", 3, a, err)))
        return -1;
    PQclear(res);
    snprintf(slots, sizeof slots, "%d", grant);
    if (admit && !(*rel = open_window(api, pg, id, slots, region, err)))
        return -1;
    return 0;
}

int bc_batch_admit_release(bc_api *api, bc_pg *pg, PGresult *res, PGresult **rels, int cap,
                           int *nrel, bc_err *err)
{
    int n = PQntuples(res);
    const char **ids;

    if (n == 0)
        return 0;
    if (!(ids = calloc((size_t)n, sizeof *ids))) {
        bc_err_set(err, "release: out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        ids[i] = bc_pg_val(res, i, "id");
    /* Every batch's lock at once, in one order (release_lock.sql). */
    int rc = bc_sql_release_lock(pg, ids, n, err);
    free(ids);
    if (rc < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        PGresult *rel = release(api, pg, bc_pg_val(res, i, "id"), bc_pg_val(res, i, "region"), 0,
                                err);

        if (!rel)
            return -1;
        if (*nrel < cap)
            rels[(*nrel)++] = rel;
        else
            PQclear(rel);   /* the scheduler's relay publishes those */
    }
    return 0;
}
