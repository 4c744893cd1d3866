/* bc_cartesia: the Cartesia-style surface, /agents/calls/batches. */
#ifndef BC_CARTESIA_H
#define BC_CARTESIA_H

#include "bc_api.h"

/* Handles the request if its path belongs to this surface; returns 1 if it
 * did, 0 otherwise. */
int bc_cartesia_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

#endif
