/* bc_http: a small HTTP server over libmicrohttpd. Handlers see a whole
 * request (body capped) and fill a response; /healthz, /readyz and /metrics
 * are served here for every process. */
#ifndef BC_HTTP_H
#define BC_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "bc_err.h"
#include "bc_metrics.h"

typedef struct bc_http bc_http;
typedef struct bc_http_req bc_http_req;

typedef struct bc_http_resp {
    int status;
    char *body;             /* owned; freed by bc_http */
    size_t len;
    const char *content_type;
    /* Extra headers, "Name: value" pairs; values are copied. */
    char hname[8][48];
    char hval[8][128];
    int nheaders;
} bc_http_resp;

/* Called once per complete request from one of the server's threads. The
 * route label is set by the handler (bounded cardinality for metrics). */
typedef void (*bc_http_handler)(void *ud, const bc_http_req *req,
                                bc_http_resp *resp);
/* Returns 1 when the process is ready to take traffic. */
typedef int (*bc_http_ready_fn)(void *ud);

typedef struct bc_http_opts {
    const char *bind;        /* "127.0.0.1" or "0.0.0.0" */
    int port;                /* 0 picks a free port; see bc_http_port */
    size_t max_body;         /* larger bodies get 413 */
    unsigned threads;        /* worker threads */
    unsigned max_conns;      /* connection limit */
    unsigned timeout_s;      /* idle connection timeout */
    /* Seconds a request has to arrive whole (headers and body), from its
     * connection's opening or the end of the previous answer on it, else
     * bc_http_tick closes the connection; 0: no deadline. */
    unsigned request_timeout_s;
    unsigned max_conns_per_ip; /* connections from one address; 0: no cap */
    bc_metrics *metrics;     /* rendered on /metrics; may be NULL */
    bc_http_ready_fn ready;  /* NULL means always ready */
    bc_http_handler handler; /* NULL serves only the built-in routes */
    void *ud;
} bc_http_opts;

bc_http *bc_http_start(const bc_http_opts *opts, bc_err *err);
/* Stops accepting, finishes requests in flight, frees. NULL is a no-op. */
void bc_http_stop(bc_http *h);
int bc_http_port(const bc_http *h);
/* Closes the connections whose request missed its deadline (see
 * request_timeout_s). Call it from the main loop, at least every 100 ms for
 * a deadline kept to the tenth of a second; it does nothing more often. */
void bc_http_tick(bc_http *h);

/* Request accessors; returned strings are borrowed for the handler call. */
const char *bc_http_method(const bc_http_req *r);
const char *bc_http_path(const bc_http_req *r);
const char *bc_http_header(const bc_http_req *r, const char *name);
const char *bc_http_query(const bc_http_req *r, const char *name);
/* Reads an optional integer query parameter in [min, max] into *out (def if
 * absent). -1 if present but not such an integer. */
int bc_http_query_long(const bc_http_req *r, const char *name, long min, long max,
                       long def, long *out);
const char *bc_http_body(const bc_http_req *r, size_t *len);
const char *bc_http_client_ip(const bc_http_req *r, char *buf, size_t cap);
/* The route label the handler chose, for metrics ("/agents/calls/batches/:id"). */
void bc_http_set_route(const bc_http_req *r, const char *route);

/* Answering later. A handler that would otherwise block its thread (on a
 * Kafka acknowledgement, say) calls bc_http_defer() and returns; whatever
 * it filled in resp is dropped. Any thread then calls bc_http_answer()
 * exactly once; the connection sleeps meanwhile and the server thread
 * serves others. bc_http_stop waits for promised answers. */
typedef struct bc_http_req bc_http_later;
bc_http_later *bc_http_defer(const bc_http_req *req);
/* Takes ownership of body (decref'd). */
void bc_http_answer(bc_http_later *later, int status, json_t *body);

/* Fills resp with a JSON body. Takes ownership of body (decref'd). */
void bc_http_json(bc_http_resp *resp, int status, json_t *body);
/* Adds a response header (silently dropped past 8). */
void bc_http_add_header(bc_http_resp *resp, const char *name, const char *val);

#endif
