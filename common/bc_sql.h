/* bc_sql: the SQL more than one module uses, and bc_sql_top_up, the
 * window top-up the worker and the scheduler share.
 *
 * That SQL is written in common/sql/<name>.sql; the build turns each file
 * into the string-literal macro BC_SQL_<NAME> (bc_sql_common.h, generated
 * by CMakeLists.txt's bc_sql_header), so a statement splices a fragment at
 * compile time as it would a C literal. A file that begins
 * "-- params: a b" is a function-like macro whose arguments (SQL text)
 * replace :a and :b. Whole statements: BC_SQL_RELEASE (the window
 * top-up), BC_SQL_RELEASE_LOCK (taken before it) and
 * BC_SQL_RELEASE_TRY_LOCK (the same, not waiting),
 * BC_SQL_LEASES_INSERT, BC_SQL_BATCH_NEED, BC_SQL_TENANT_RESERVED.
 * Fragments: BC_SQL_UNCLAIM_CTES (what a pause undoes),
 * BC_SQL_POLICY_BLOCK(tenant, number) (bc_policy.h),
 * BC_SQL_CALL_RESULT_ROWS(src, topic, legacy, v2) (a statement's
 * call-result events), and the credit pieces of bc_credits.h. Each
 * statement states its precondition in its WHERE clause; callers check the
 * row count. */
#ifndef BC_SQL_H
#define BC_SQL_H

#include "bc_err.h"
#include "bc_log.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_sql_common.h"

/* Jobs in flight per batch: this many times its concurrency limit. */
#define BC_WINDOW_MULTIPLE "2"

/* bc_sql_top_up's failures; after either nothing is committed or published. */
#define BC_SQL_FAILED (-1)   /* a release or the commit failed: rolled back */
#define BC_SQL_NO_TXN (-2)   /* the transaction could not begin: nothing ran */

/* Takes, in pg's open transaction, the lock that serializes the window
 * releases of these n batches (BC_SQL_RELEASE_LOCK, prepared as
 * "release_lock"), waiting for any other transaction releasing one of
 * them to end. Every transaction that runs BC_SQL_RELEASE takes it first,
 * for every batch it will release, in one call: release.sql counts a
 * batch's jobs in flight in its own snapshot, and two releases at once
 * each filled the room without the other's jobs. 0, or -1 with err set. */
int bc_sql_release_lock(bc_pg *pg, const char *const *batches, int n, bc_err *err);
/* The same lock without waiting (BC_SQL_RELEASE_TRY_LOCK, prepared as
 * "release_try_lock"): takes it for each of the n batches no other
 * transaction holds it for, and sets skipped[i] to 1 for each it left, 0
 * for the others. For the top-ups on a timer: the transaction releasing a
 * skipped batch fills its window. How many it took, or -1 with err set. */
int bc_sql_release_try_lock(bc_pg *pg, const char *const *batches, int n, char *skipped,
                            bc_err *err);

/* Runs BC_SQL_RELEASE (prepared as "release") for batch, its jobs going to
 * jobs_topic, in a transaction that already holds batch's release lock.
 * The outbox rows it wrote, or NULL with err set. */
PGresult *bc_sql_release(bc_pg *pg, const char *batch, const char *jobs_topic, bc_err *err);
/* bc_sql_release_lock for batch alone, then bc_sql_release: for a
 * transaction that releases one batch. */
PGresult *bc_sql_release_one(bc_pg *pg, const char *batch, const char *jobs_topic,
                             bc_err *err);

/* Tops up the windows of n batches in one transaction: takes their
 * release lock (with skipped NULL, waiting for it; else as
 * bc_sql_release_try_lock does, leaving out the batches whose lock another
 * transaction holds, each marked in skipped[0..n)), runs BC_SQL_RELEASE
 * (prepared on pg's connection as "release") for each batch it locked
 * with jobs_topic and, once committed, hands the jobs it wrote to pub. A
 * publish that fails is left to the scheduler's relay, and logged
 * (publish.deferred) if log is not NULL. One commit (one WAL flush) for
 * all the batches, not one each. Returns how many jobs it
 * released, or BC_SQL_FAILED or BC_SQL_NO_TXN with err set. */
int bc_sql_top_up(bc_pg *pg, bc_publisher *pub, const char *jobs_topic,
                  const char *const *batches, int n, char *skipped, bc_log *log, bc_err *err);

#endif
