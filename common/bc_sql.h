/* bc_sql: statements more than one process prepares. Each states its
 * precondition in its WHERE clause; callers check the row count. And
 * bc_sql_top_up, the periodic window top-up the worker and the scheduler
 * share. */
#ifndef BC_SQL_H
#define BC_SQL_H

#include "bc_err.h"
#include "bc_log.h"
#include "bc_pg.h"
#include "bc_publisher.h"

/* Tops up a batch's window: releases the next queued recipients (in seq
 * order, due ones only, inside their calling hours, none past the batch's
 * latest_at: the scheduler expires those) until window = limit
 * * $2 jobs are in flight, and
 * writes one job per released recipient to the outbox, in one statement.
 * Jobs are keyed by recipient, not batch, so one batch spreads over every
 * partition and every worker of the region.
 * $1 batch id, $2 window multiple, $3 jobs topic. Returns the outbox rows. */
/* = ANY(ARRAY(...)), not IN (...): with IN the planner guesses the LIMIT's
 * size and hashes a sequential scan of every recipient (measured: 6 ms at
 * 5,000 rows, growing with the table); ARRAY() makes it look each id up. */
#define BC_SQL_RELEASE                                                          \
    "WITH b AS (SELECT id, target_concurrency_limit * $2::int AS win,"         \
    "                  calling_hours, timezone, bc_now() AS t,"                 \
    "                  tenant_legal_hours(tenant_id) AS lw"                     \
    "             FROM batches WHERE id = $1 AND state = 'admitted'"           \
    "              AND (latest_at IS NULL OR latest_at > bc_now())),"           \
    " inflight AS (SELECT count(*) AS n FROM recipients"                        \
    "              WHERE batch_id = $1 AND released"                            \
    "                AND status IN ('queued', 'dispatched', 'started')),"       \
    " room AS (SELECT GREATEST(0, coalesce((SELECT win FROM b), 0)"             \
    "                             - (SELECT n FROM inflight)) AS n),"           \
    /* The next due recipients in order, and with calling hours up to 256   \
     * more: those outside their own hours (read in their time zone, else   \
     * the batch's) are deferred to their next opening, holding nothing.   \
     * Calling hours are the batch's and the tenant's legal window (lw,     \
     * sql/0023_legal_hours.sql). The hours functions run only when the    \
     * batch has either: per row they                                       \
     * were nine tenths of this statement's time (B2). */                   \
    " c AS (SELECT r.id, r.seq,"                                                \
    "              CASE WHEN b.calling_hours IS NULL AND b.lw IS NULL THEN true" \
    "                   ELSE recipient_open(b.calling_hours, b.lw, r.timezone," \
    "                                       b.timezone, r.to_number, b.t)"      \
    "              END AS open,"                                                \
    "              CASE WHEN b.calling_hours IS NOT NULL OR b.lw IS NOT NULL"   \
    "                   THEN recipient_opens(b.calling_hours, b.lw, r.timezone," \
    "                                        b.timezone, r.to_number, b.t)"     \
    "              END AS opens"                                                \
    "         FROM b, LATERAL (SELECT id, seq, timezone, to_number FROM recipients" \
    "                           WHERE batch_id = $1 AND status = 'queued'"      \
    "                             AND NOT released"                             \
    "                             AND (next_attempt_at IS NULL OR next_attempt_at <= b.t)" \
    "                           ORDER BY seq"                                   \
    "                           LIMIT (SELECT n FROM room)"                     \
    "                                 + CASE WHEN b.calling_hours IS NULL AND b.lw IS NULL" \
    "                                        THEN 0 ELSE 256 END"               \
    "                           FOR UPDATE SKIP LOCKED) r),"                    \
    " d AS (UPDATE recipients SET next_attempt_at = c.opens, window_wait = true," \
    "              updated_at = now()"                                          \
    "         FROM c WHERE recipients.id = c.id AND NOT c.open RETURNING 1),"   \
    " r AS (UPDATE recipients SET released = true, window_wait = false,"        \
    "              updated_at = now()"                                          \
    "        WHERE id = ANY(ARRAY(SELECT id FROM c WHERE open ORDER BY seq"     \
    "                             LIMIT (SELECT n FROM room)))"                 \
    "        RETURNING id, batch_id, tenant_id, attempts)"                      \
    " INSERT INTO outbox (topic, key, payload)"                                 \
    " SELECT $3, r.id, json_build_object('v', 1, 'recipient_id', r.id,"         \
    "        'batch_id', r.batch_id, 'tenant_id', r.tenant_id,"                 \
    "        'attempt', r.attempts + 1)::text FROM r"                           \
    " RETURNING id, topic, key, payload"

/* Sets an admitted batch's lease slots to $2, its reservation
 * (bc_lease_reservation): slots 0..$2-1 exist, and free slots at or above
 * $2 (left by an earlier admission) go; a slot in use is never taken. With
 * a caller-ID pool, slot s belongs to number from_pool[s mod n].
 * $1 batch id, $2 slots. */
#define BC_SQL_LEASES_INSERT                                                    \
    "WITH d AS (DELETE FROM leases WHERE batch_id = $1 AND slot >= $2::int"     \
    "             AND call_id IS NULL)"                                         \
    " INSERT INTO leases (batch_id, slot, number)"                              \
    " SELECT $1, g, (SELECT from_pool[1 + g % cardinality(from_pool)]"          \
    "                  FROM batches WHERE id = $1)"                             \
    "   FROM generate_series(0, $2::int - 1) AS g ON CONFLICT DO NOTHING"

/* What admitting a batch takes: the slots it can use (need) and whether
 * its region has a live worker (live). $1 batch id. */
#define BC_SQL_BATCH_NEED                                                       \
    "SELECT batch_slots_needed(id, target_concurrency_limit) AS need,"          \
    "       region_has_workers(region) AS live FROM batches WHERE id = $1"

/* Undoes the claims a pause left behind in the batches of a CTE pb(id)
 * that must precede it: calls claimed and never sent. dial_start sends a
 * claim only while its batch is admitted, so no claim of a held batch can
 * be sent any more. Each call row goes, its lease slot is freed (while its
 * token is current) and its recipient is queued again for the same
 * attempt, released nowhere. A claim sent meanwhile ('dialing') is left
 * alone: the delete re-checks the row it waited for. Open calls only, so
 * the lookup goes through calls_open, not the batch's every call. CTEs uc
 * (the undone calls), ul, ur. */
#define BC_SQL_UNCLAIM_CTES                                                     \
    " uc AS (DELETE FROM calls WHERE calls.ended_at IS NULL"                    \
    "          AND calls.status = 'claimed' AND calls.batch_id IN (SELECT id FROM pb)" \
    "        RETURNING calls.id, calls.recipient_id, calls.batch_id, calls.attempt," \
    "                  calls.lease_slot, calls.lease_token),"                   \
    " ul AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL" \
    "          FROM uc WHERE leases.batch_id = uc.batch_id"                     \
    "           AND leases.slot = uc.lease_slot AND leases.token = uc.lease_token" \
    "        RETURNING 1),"                                                     \
    " ur AS (UPDATE recipients SET status = 'queued', attempts = uc.attempt - 1," \
    "              released = false, updated_at = now(),"                       \
    "              last_call_id = (SELECT p.id FROM calls p"                    \
    "                               WHERE p.recipient_id = uc.recipient_id"     \
    "                                 AND p.attempt = uc.attempt - 1)"          \
    "          FROM uc WHERE recipients.id = uc.recipient_id"                   \
    "           AND recipients.status = 'dispatched' AND recipients.last_call_id = uc.id" \
    "        RETURNING 1)"

/* A tenant's reserved slots: the lease rows of its admitted (or paused:
 * they keep their slots) batches, and any slot in use whatever its batch
 * (a cancelled batch's live calls still count). A batch has rows for what
 * it can use (BC_SQL_LEASES_INSERT) and the scheduler deletes the free
 * ones it no longer can, so a finished batch reserves nothing.
 * $1 tenant id. */
#define BC_SQL_TENANT_RESERVED                                                  \
    "SELECT count(*) AS reserved FROM leases l JOIN batches b ON b.id = l.batch_id" \
    " WHERE b.tenant_id = $1"                                                   \
    "   AND (b.state IN ('admitted', 'paused') OR l.call_id IS NOT NULL)"

/* Jobs in flight per batch: this many times its concurrency limit. */
#define BC_WINDOW_MULTIPLE "2"

/* bc_sql_top_up's failures; after either nothing is committed or published. */
#define BC_SQL_FAILED (-1)   /* a release or the commit failed: rolled back */
#define BC_SQL_NO_TXN (-2)   /* the transaction could not begin: nothing ran */

/* Tops up the windows of n batches: runs BC_SQL_RELEASE (prepared on pg's
 * connection as "release") for each with jobs_topic and, once committed,
 * hands the jobs it wrote to pub. A publish that fails is left to the
 * scheduler's relay, and logged (publish.deferred) if log is not NULL.
 * Several batches share one transaction: one commit (one WAL flush) for
 * all, not one each; one batch is its one statement, no BEGIN/COMMIT.
 * Returns how many jobs it released, or BC_SQL_FAILED or BC_SQL_NO_TXN
 * (only when n > 1) with err set. */
int bc_sql_top_up(bc_pg *pg, bc_publisher *pub, const char *jobs_topic,
                  const char *const *batches, int n, bc_log *log, bc_err *err);

#endif
