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

/* Its routes, under /progress/batches. */
bc_http_surface bc_progress_surface(bc_api *api);

/* Its statements, for the API's table (bc_api_main.c). */
extern const bc_pg_stmt bc_progress_stmts[];

#endif
