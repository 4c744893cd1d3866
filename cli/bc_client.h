/* bc_client: the CLI's side of the public HTTP API (libcurl). One client is
 * one base URL and one secret key; the key goes in Authorization: Bearer,
 * never in a URL. */
#ifndef BC_CLIENT_H
#define BC_CLIENT_H

#include <jansson.h>

#include "bc_err.h"

typedef struct bc_client bc_client;

/* Upload progress: sent of total bytes of the request body so far. */
typedef void (*bc_client_progress)(void *ud, long long sent, long long total);

/* base_url without a trailing slash ("http://127.0.0.1:8080"); timeout_s
 * bounds each whole request. NULL with err set on failure. */
bc_client *bc_client_new(const char *base_url, const char *api_key, long timeout_s,
                         bc_err *err);
void bc_client_free(bc_client *c);   /* NULL is a no-op */

/* Per-request options; zeroed means none. */
typedef struct bc_client_opts {
    const char *idempotency_key;
    long long max_send_bytes_per_s;   /* 0: no cap */
    bc_client_progress progress;      /* called while the body uploads */
    void *ud;
} bc_client_opts;

/* Sends method path (with its query string) and a JSON body of len bytes
 * (NULL for none). Returns 0 when an answer came, whatever its status:
 * *status gets it and *out the parsed JSON body (NULL if it was not JSON;
 * caller decrefs). -1 with err set when no answer came (cannot connect,
 * timeout). */
int bc_client_call(bc_client *c, const char *method, const char *path, const char *body,
                   size_t len, const bc_client_opts *o, long *status, json_t **out,
                   bc_err *err);

/* Says why a non-2xx answer failed, from its JSON error body when there is
 * one (any surface's shape): "batch not found (HTTP 404 not_found)". */
void bc_client_error(long status, json_t *body, bc_err *err);

#endif
