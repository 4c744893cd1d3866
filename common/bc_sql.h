/* bc_sql: statements more than one process prepares. Each states its
 * precondition in its WHERE clause; callers check the row count. */
#ifndef BC_SQL_H
#define BC_SQL_H

/* Tops up a batch's window: releases the next queued recipients (in seq
 * order, due ones only) until window = limit * $2 jobs are in flight, and
 * writes one job per released recipient to the outbox, in one statement.
 * Jobs are keyed by recipient, not batch, so one batch spreads over every
 * partition and every worker of the region.
 * $1 batch id, $2 window multiple, $3 jobs topic. Returns the outbox rows. */
/* = ANY(ARRAY(...)), not IN (...): with IN the planner guesses the LIMIT's
 * size and hashes a sequential scan of every recipient (measured: 6 ms at
 * 5,000 rows, growing with the table); ARRAY() makes it look each id up. */
#define BC_SQL_RELEASE                                                          \
    "WITH b AS (SELECT id, target_concurrency_limit * $2::int AS win"          \
    "             FROM batches WHERE id = $1 AND state = 'admitted'"           \
    "              AND in_calling_hours(calling_hours, timezone, now())),"     \
    " inflight AS (SELECT count(*) AS n FROM recipients"                        \
    "              WHERE batch_id = $1 AND released"                            \
    "                AND status IN ('queued', 'dispatched', 'started')),"       \
    " r AS (UPDATE recipients SET released = true, updated_at = now()"          \
    "        WHERE id = ANY(ARRAY(SELECT id FROM recipients"                    \
    "                      WHERE batch_id = $1 AND status = 'queued'"           \
    "                        AND NOT released"                                  \
    "                        AND (next_attempt_at IS NULL OR next_attempt_at <= now())" \
    "                      ORDER BY seq"                                        \
    "                      LIMIT GREATEST(0, coalesce((SELECT win FROM b), 0)"  \
    "                                        - (SELECT n FROM inflight))"       \
    "                      FOR UPDATE SKIP LOCKED))"                            \
    "        RETURNING id, batch_id, tenant_id, attempts)"                      \
    " INSERT INTO outbox (topic, key, payload)"                                 \
    " SELECT $3, r.id, json_build_object('v', 1, 'recipient_id', r.id,"   \
    "        'batch_id', r.batch_id, 'tenant_id', r.tenant_id,"                 \
    "        'attempt', r.attempts + 1)::text FROM r"                           \
    " RETURNING id, topic, key, payload"

/* Jobs in flight per batch: this many times its concurrency limit. */
#define BC_WINDOW_MULTIPLE "2"

#endif
