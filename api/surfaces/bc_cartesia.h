/* bc_cartesia: the Cartesia-style surface, /agents/calls/batches. */
#ifndef BC_CARTESIA_H
#define BC_CARTESIA_H

#include "bc_api.h"
#include "bc_batches.h"

/* Handles the request if its path belongs to this surface; returns 1 if it
 * did, 0 otherwise. */
int bc_cartesia_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

/* Validates a create-batch body into spec, whose strings and JSON borrow from
 * body; the recipients are rebuilt into a new array, *recips, which spec
 * borrows too (caller decrefs it after spec is used). 0, or -1 with why set
 * and *recips NULL. Touches no database. */
int bc_cartesia_parse(json_t *body, bc_batch_spec *spec, json_t **recips, char *why,
                      size_t cap);

#endif
