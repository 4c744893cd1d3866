/* bc_batch_admit: admission, the batch core's step between a batch and its
 * calls: a batch is admitted when its region has a live worker and its
 * tenant has room for what it can use, and its first window of jobs goes to
 * the outbox; else it waits as pending, saying why. Used by creating,
 * sending, retrying and resuming batches (bc_batch_create.c,
 * bc_batches.c), inside their transactions. */
#ifndef BC_BATCH_ADMIT_H
#define BC_BATCH_ADMIT_H

#include "bc_api.h"

/* Inside a transaction holding the tenant lock: admits batch id if its
 * region has a live worker and the tenant (concurrency) has room for what
 * it can use, min(limit, recipients still to finish), opening its window
 * (*rel gets the outbox rows, the caller publishes them after its commit and
 * clears them), else leaves it pending, saying why (wait_reason); a batch
 * whose time is ahead (scheduled_ahead) becomes scheduled. 0, or -1 with
 * err set. */
int bc_batch_admit(bc_api *api, bc_pg *pg, const char *tenant, long concurrency, const char *id,
                   const char *limit, const char *region, int scheduled_ahead, PGresult **rel,
                   bc_err *err);

/* Inside a transaction: takes batch id's release lock (bc_sql_release_lock)
 * and releases its window's next jobs into the outbox (release.sql). The
 * outbox rows, or NULL with err set. */
PGresult *bc_batch_release(bc_api *api, bc_pg *pg, const char *id, const char *region,
                           bc_err *err);

/* Releases the first window of each batch in res (columns id, region) into
 * the outbox; the rows to publish are appended to rels (at most cap; the
 * scheduler's relay publishes the rest). Inside the caller's transaction. 0,
 * or -1 with err set. */
int bc_batch_admit_release(bc_api *api, bc_pg *pg, PGresult *res, PGresult **rels, int cap,
                           int *nrel, bc_err *err);

#endif
