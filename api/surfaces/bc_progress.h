/* bc_progress: where a tenant's batches stand, for people watching them (the
 * `batchcall batches watch` CLI and the /dashboard page): counts by status,
 * live calls against the batch's and the tenant's limit, outcomes, rate and
 * ETA, in one read. A batchcall extension beside the three surfaces:
 *
 *   GET /progress/batches        newest first; limit (1-100, default 10),
 *                                starting_after (a batch id); the tenant's
 *                                live calls and limit beside them
 *   GET /progress/batches/{id}   one batch, with the tenant's numbers
 *
 * Auth as on every surface (Bearer or X-API-Key, secret keys only); errors
 * are {"error", "code"} as on the Cartesia-style surface. docs/cli.md has
 * every field. */
#ifndef BC_PROGRESS_H
#define BC_PROGRESS_H

#include "bc_api.h"

/* Handles the request if its path is under /progress; 1 if it did, else 0. */
int bc_progress_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

/* Statements this module needs, for the API's table. The rate counts
 * recipients that reached completed or failed in the last 60 s, over the
 * part of the window the batch has been admitted for (a batch admitted 10 s
 * ago is not diluted over 60). */
#define BC_PROGRESS_STMTS                                                         \
    { "progress_batches",                                                         \
      "SELECT b.id, b.name, b.agent_id, b.region, b.state,"                       \
      "       b.target_concurrency_limit, b.total, b.retry_count,"                \
      "       rfc3339(b.created_at) AS created_at,"                               \
      "       rfc3339(b.scheduled_at) AS scheduled_at,"                           \
      "       rfc3339(b.admitted_at) AS admitted_at,"                             \
      "       rfc3339(greatest(b.updated_at, c.last)) AS updated_at,"             \
      "       c.queued, c.live, c.completed, c.failed, c.cancelled, c.expired,"   \
      "       CASE WHEN c.recent = 0 OR b.admitted_at IS NULL THEN 0"             \
      "            ELSE c.recent * 60.0 / greatest(1.0, least(60.0,"             \
      "                 extract(epoch FROM now() - b.admitted_at)))"              \
      "       END AS rate_per_min, o.outcomes,"                                   \
      "       b.state <> 'cancelled' AND (b.paused_at IS NOT NULL"                \
      "         OR tp.paused_at IS NOT NULL) AS held"                             \
      "  FROM batches b JOIN tenants tp ON tp.id = b.tenant_id"                   \
      "  CROSS JOIN LATERAL (SELECT"                                              \
      "       count(*) FILTER (WHERE status = 'queued') AS queued,"               \
      "       count(*) FILTER (WHERE status IN ('dispatched', 'started')) AS live," \
      "       count(*) FILTER (WHERE status = 'completed') AS completed,"         \
      "       count(*) FILTER (WHERE status = 'failed') AS failed,"               \
      "       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,"         \
      "       count(*) FILTER (WHERE status = 'expired') AS expired,"             \
      "       count(*) FILTER (WHERE status IN ('completed', 'failed')"           \
      "                          AND updated_at > now() - interval '60 seconds')" \
      "         AS recent,"                                                       \
      "       max(updated_at) AS last"                                            \
      "       FROM recipients r WHERE r.batch_id = b.id) c"                       \
      "  CROSS JOIN LATERAL (SELECT coalesce(jsonb_object_agg(reason, n), '{}')::text" \
      "       AS outcomes FROM (SELECT coalesce(end_reason, 'unknown') AS reason,"   \
      "       count(*) AS n FROM recipients WHERE batch_id = b.id"                \
      "       AND status IN ('completed', 'failed', 'expired') GROUP BY 1) x) o"  \
      " WHERE b.tenant_id = $1 AND ($2::text IS NULL OR b.id = $2)"               \
      "   AND ($3::text IS NULL OR (b.created_at, b.id) <"                        \
      "        (SELECT created_at, id FROM batches WHERE id = $3 AND tenant_id = $1))" \
      " ORDER BY b.created_at DESC, b.id DESC LIMIT $4::int" },                   \
    { "progress_tenant",                                                          \
      "SELECT t.concurrency, (SELECT count(*) FROM recipients r"                  \
      "        WHERE r.tenant_id = t.id AND r.status IN ('dispatched', 'started'))" \
      "       AS live FROM tenants t WHERE t.id = $1" }

#endif
