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

/* Routes. Every surface of a process registers its routes here, in one
 * table: a method, a path pattern whose "{name}" segments each match one
 * non-empty segment of at most BC_HTTP_PARAM_MAX - 1 bytes (read with
 * bc_http_param), the handler, and the metrics label (NULL: the pattern
 * with ":name" for "{name}"). A trailing slash is ignored. Routes are tried
 * in the order given. A path that is a literal route's ("/v1/calls/batch")
 * is that route's alone, under any method: no pattern takes it
 * ("/v1/calls/{id}"). A path that matches routes only under other methods
 * is answered 405 with an Allow header. */
#define BC_HTTP_PARAM_MAX 128

typedef struct bc_http_route {
    const char *method;      /* "GET", "POST", ... */
    const char *pattern;     /* "/v1/calls/{id}/events" */
    bc_http_handler fn;
    const char *label;       /* metrics route label; NULL: from the pattern */
    int flags;               /* the surface's own but BC_HTTP_WAITS; */
    const void *arg;         /* bc_http reads neither else */
} bc_http_route;

/* In a route's flags: the handler may wait on something slow (a cancel
 * waits for the dials in flight), so it runs on a thread of its own and
 * its answer is deferred. A server thread serves every connection pinned
 * to it, and must never wait with one (libmicrohttpd's rule for its
 * thread pool). */
#define BC_HTTP_WAITS (1 << 30)

/* A surface's errors, in its own body shape: status, a machine word
 * ("not_found") and a message for people. */
typedef void (*bc_http_error_fn)(bc_http_resp *resp, int status, const char *code,
                                 const char *msg);

/* Runs a route of the surface's that matched (route), with whatever every
 * route of the surface does first (authentication, say), and calls
 * route->fn with a context of its own as ud; arg is the surface's. route
 * NULL: a request under the surface's prefix that no route takes, or a
 * route's path under another method; bc_http_miss answers it. */
typedef void (*bc_http_serve_fn)(void *ud, const void *arg, const bc_http_route *route,
                                 const bc_http_req *req, bc_http_resp *resp);

typedef struct bc_http_surface {
    /* The paths it answers for, routes or not: those equal to prefix or
     * under it ("/v1/" ends in '/': only those under it). NULL: its
     * routes' paths only; other paths are the server's 404. */
    const char *prefix;
    const bc_http_route *routes;   /* ends with a zeroed entry */
    /* NULL: route->fn(ud, ...) is called directly, and a miss is answered
     * by bc_http_miss in the {"error", "code"} shape. */
    bc_http_serve_fn serve;
    void *ud;
    const void *arg;               /* serve's, as the surface wants it */
} bc_http_surface;

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
    /* The route table: surfaces in order, ending with a zeroed entry;
     * must outlive the server. NULL: none. */
    const bc_http_surface *surfaces;
    /* Requests no surface takes (a process without routes); NULL: 404. */
    bc_http_handler handler;
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
/* Takes the caller's reference to j (NULL is ignored) and drops it once the
 * response has been sent: a 5,000-recipient request's JSON takes
 * milliseconds to free, which the client need not wait for. */
void bc_http_drop_later(const bc_http_req *r, json_t *j);
const char *bc_http_client_ip(const bc_http_req *r, char *buf, size_t cap);
/* The route label the handler chose, for metrics ("/agents/calls/batches/:id"). */
void bc_http_set_route(const bc_http_req *r, const char *route);
/* The path segment the matched route's "{name}" took; NULL if it has none. */
const char *bc_http_param(const bc_http_req *r, const char *name);
/* The methods the path has routes under ("GET, POST") when the request's
 * method is none of them; NULL when the path is no route's. */
const char *bc_http_allow(const bc_http_req *r);
/* Answers a request no route took, through err: 405 "use GET or POST"
 * (method_not_allowed; the server adds the Allow header) if the path is a
 * route's under other methods, else 404 not_found with not_found's text. */
void bc_http_miss(const bc_http_req *r, bc_http_resp *resp, bc_http_error_fn err,
                  const char *not_found);

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
/* The server's own error body, {"error": msg, "code": code}: a miss, 413,
 * 503; Rymi's and Cartesia's surfaces and the core routes under their
 * paths answer in it too. A bc_http_error_fn. */
void bc_http_error(bc_http_resp *resp, int status, const char *code, const char *msg);
/* Adds a response header (silently dropped past 8). */
void bc_http_add_header(bc_http_resp *resp, const char *name, const char *val);

#endif
