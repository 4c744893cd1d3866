/* bc_batchcall: the batch-call surface, /batch-call, in its
 * {message, status, error, data} envelope, with X-API-KEY + X-API-SECRET. */
#ifndef BC_BATCHCALL_H
#define BC_BATCHCALL_H

#include "bc_api.h"
#include "bc_batches.h"

/* Its routes, under /batch-call. */
bc_http_surface bc_batchcall_surface(bc_api *api);

/* Validates a POST /batch-call body into spec, whose strings and JSON borrow
 * from in; a trigger time is written to sched, which spec->scheduled_at then
 * points at. The tasks are rebuilt into a new array, *tasks, which spec
 * borrows too (caller decrefs it after spec is used). 0, or -1 with why set
 * and *tasks NULL. The time zone's name is not checked: that needs the
 * database. */
int bc_batchcall_parse(json_t *in, bc_batch_spec *spec, json_t **tasks, char sched[40],
                       char *why, size_t cap);

#endif
