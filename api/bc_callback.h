/* bc_callback: carrier status callbacks. A signed callback becomes one event
 * on batchcall.carrier-events.<region>, acknowledged by Kafka before we answer
 * 2xx, so the carrier retries anything we could not make durable. */
#ifndef BC_CALLBACK_H
#define BC_CALLBACK_H

#include "bc_api.h"

#define BC_CALLBACK_PATH "/carrier/twilio/status"

int bc_callback_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

/* Longest AnsweredBy passed on. */
#define BC_ANSWERED_BY_MAX 32

/* Turns a callback's form body (len bytes) into the carrier event for
 * call_id: {"v","call_id","batch_id","tenant_id","carrier_call_id","status",
 * "duration","sequence","answered_by"?}; answered_by is the body's
 * AnsweredBy (answering-machine detection) when it is a word of at most
 * BC_ANSWERED_BY_MAX lowercase letters and '_', else absent. url is the full callback URL we issued, which the signature sig
 * (X-Twilio-Signature, may be NULL) covers; the ids are the ones in it,
 * already checked. Returns 0 and sets *payload to the event as compact JSON
 * (caller frees; NULL only when out of memory), or the HTTP status to answer
 * (400: malformed or incomplete body, 403: bad signature) with *why set to a
 * static message. Touches nothing but its arguments. */
int bc_callback_event(const char *token, const char *url, const char *body, size_t len,
                      const char *sig, const char *tenant_id, const char *batch_id,
                      const char *call_id, char **payload, const char **why);

#endif
