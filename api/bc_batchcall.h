/* bc_batchcall: the batch-call surface, /batch-call, in its
 * {message, status, error, data} envelope, with X-API-KEY + X-API-SECRET. */
#ifndef BC_BATCHCALL_H
#define BC_BATCHCALL_H

#include "bc_api.h"

int bc_batchcall_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

#endif
