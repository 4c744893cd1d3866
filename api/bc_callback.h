/* bc_callback: carrier status callbacks. A signed callback becomes one event
 * on batchcall.carrier-events.<region>, acknowledged by Kafka before we answer
 * 2xx, so the carrier retries anything we could not make durable. */
#ifndef BC_CALLBACK_H
#define BC_CALLBACK_H

#include "bc_api.h"

#define BC_CALLBACK_PATH "/carrier/twilio/status"

int bc_callback_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

#endif
