/* bc_retell: the Retell-compatible surface. POST /create-batch-call takes
 * Retell's documented request (docs/retell.md) and answers in its shape,
 * {status: "error", message} on errors; the other routes are batchcall
 * extensions named in Retell's verb-noun style. */
#ifndef BC_RETELL_H
#define BC_RETELL_H

#include "bc_api.h"
#include "bc_batches.h"

#define BC_RETELL_MAX_TASKS 5000

/* Its routes (no common prefix). */
bc_http_surface bc_retell_surface(bc_api *api);

/* What a create request carries beyond the spec. tasks and hours are owned
 * (bc_retell_req_clear releases them); the spec borrows both. */
typedef struct bc_retell_req {
    json_t *tasks;       /* the recipients, rebuilt in the core's fields */
    json_t *hours;       /* call_time_window as calling_hours, or NULL */
    long reserved;       /* reserved_concurrency; -1 when absent */
    char sched[40];      /* trigger_timestamp as RFC 3339 (spec->scheduled_at) */
} bc_retell_req;

/* Validates a POST /create-batch-call body into spec (strings borrowed from
 * in) and out. The batch's agent is the tasks' common override_agent_id or
 * the agent_id extension when given (spec->agent_id), else NULL: the caller
 * resolves it from the number, which needs the database. Time zone names
 * are not checked either. 0, or -1 with why set and out cleared. */
int bc_retell_parse(json_t *in, bc_batch_spec *spec, bc_retell_req *out, char *why,
                    size_t cap);
void bc_retell_req_clear(bc_retell_req *out);

/* Retell's call_time_window for a batch's calling_hours and time zone
 * (NULL hours: NULL). New reference. */
json_t *bc_retell_window(json_t *hours, const char *timezone);

/* Its statements, for the API's table (bc_api_main.c). */
extern const bc_pg_stmt bc_retell_stmts[];

#endif
