/* bc_cartesia: the Cartesia-style surface, /agents/calls/batches. */
#ifndef BC_CARTESIA_H
#define BC_CARTESIA_H

#include "bc_api.h"
#include "bc_batches.h"

/* Its routes: /agents/calls/batches and Get Call, /agents/calls/{id}. */
bc_http_surface bc_cartesia_surface(bc_api *api);

/* Validates a create-batch body into spec, whose strings and JSON borrow from
 * body; the recipients are rebuilt into a new array, *recips, which spec
 * borrows too (caller decrefs it after spec is used). 0, or -1 with why set
 * and *recips NULL. Touches no database. */
int bc_cartesia_parse(json_t *body, bc_batch_spec *spec, json_t **recips, char *why,
                      size_t cap);

#endif
