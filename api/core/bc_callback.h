/* bc_callback: carrier status callbacks. A signed callback becomes one event
 * on batchcall.carrier-events.<region>, acknowledged by Kafka before we answer
 * 2xx, so the carrier retries anything we could not make durable. */
#ifndef BC_CALLBACK_H
#define BC_CALLBACK_H

#include "bc_api.h"

#include "bc_twilio.h"

/* Our callback URLs, each with ?region=&tenant_id=&batch_id=&call_id= and
 * signed by the carrier: a call's statuses, its answering-machine
 * detection's verdict (AsyncAmd), and its recording. */
#define BC_CALLBACK_PATH "/carrier/twilio/status"
#define BC_CALLBACK_AMD_PATH "/carrier/twilio/amd"
#define BC_CALLBACK_RECORDING_PATH "/carrier/twilio/recording"

/* The three routes, each a POST. */
bc_http_surface bc_callback_surface(bc_api *api);

/* The ids a checked callback URL names. */
typedef struct bc_callback_ids {
    char region[16], tenant_id[65], batch_id[65], call_id[65];
} bc_callback_ids;

/* Checks a callback to path (a POST: its route's method): its query names
 * ids we could have issued and its X-Twilio-Signature covers the URL we
 * issued and its form. 0 with ids and form filled (free the form with
 * bc_form_free), or -1 with resp answered (400, 403). */
int bc_callback_verify(bc_api *api, const bc_http_req *req, bc_http_resp *resp,
                       const char *path, bc_callback_ids *ids, bc_form *form);

/* The recording's callback, checked (bc_outcomes.c): stores it and tells
 * analytics and webhooks. */
void bc_callback_recording(bc_api *api, const bc_callback_ids *ids, const bc_form *form,
                           bc_http_resp *resp);

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
