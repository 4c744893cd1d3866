/* bc_surface: what a surface keyed by the tenant's key does around each of
 * its routes (bc_http_route), the same on every surface: take a connection
 * from the pool, pass the gate (bc_gate_enter: key, scope, rate limit) and
 * the surface's own check, refuse a tenant without credit, honour
 * Idempotency-Key, run the route, and commit or roll back its audited
 * write; a miss (bc_http_miss: 405 or 404) is answered after the gate, in
 * the surface's error shape. */
#ifndef BC_SURFACE_H
#define BC_SURFACE_H

#include "bc_api.h"
#include "bc_gate.h"

/* A route's flags (bc_http_route.flags). */
enum {
    BC_SURFACE_CREDITS = 1,      /* 402 (gate no_credit) when the tenant has no credit */
    BC_SURFACE_IDEM = 2,         /* honours Idempotency-Key, the path naming the request */
    BC_SURFACE_PUBLISHABLE = 4,  /* publishable keys may call it (else 403) */
    BC_SURFACE_OWN = 1 << 8,     /* and up, below BC_HTTP_WAITS: the surface's own */
};

/* A route's write to a resource only its surface has (agents, numbers,
 * DNC, webhooks, keys), audited (bc_http_route.arg): the route runs in a
 * transaction; a 2xx answer commits it with its audit row (action; target:
 * the answer's id, else its number; detail: the answer's fields named in
 * fields, "name,region"), any other answer rolls it back, so a refused
 * request leaves neither. If the row or the commit fails, nothing is kept
 * and the answer becomes a 500. Batches are audited by the core
 * (bc_batches), in their own transactions. */
typedef struct bc_surface_audit {
    const char *action;
    const char *fields;
} bc_surface_audit;
#define BC_SURFACE_AUDIT(action, fields) (&(const bc_surface_audit){ action, fields })

typedef struct bc_surface_gate bc_surface_gate;

/* A request on its way through a route: what the handler gets as ud. */
typedef struct bc_surface_req {
    bc_api *api;
    const bc_surface_gate *gate;
    const bc_http_route *route;  /* NULL for a miss */
    const bc_http_req *req;
    bc_http_resp *resp;
    bc_gate g;                   /* g.pg: the connection; g.who: the caller */
    const bc_surface_audit *audit;   /* the write this route opened, or NULL */
} bc_surface_req;

struct bc_surface_gate {
    const char *name;            /* "rymi": its log events are "rymi.failed" */
    bc_gate_error error;         /* the surface's error body */
    const char *not_found;       /* a miss's 404 message */
    const char *failed;          /* a 500's message */
    const char *no_credit;       /* the 402's message (BC_SURFACE_CREDITS) */
    bc_gate_error credit_error;  /* the 402's body, if not error's */
    int idem_conflict;           /* status for a reused Idempotency-Key */
    /* Run after the gate, before the route or the miss (Cartesia's
     * version header): 0 to go on, -1 with s->resp answered. May be NULL. */
    int (*check)(bc_surface_req *s);
};

/* The bc_http_serve_fn of a surface keyed by the tenant's key: ud is the
 * bc_api, arg the surface's bc_surface_gate. */
void bc_surface_serve(void *ud, const void *arg, const bc_http_route *route,
                      const bc_http_req *req, bc_http_resp *resp);

/* The last segment of the running route's pattern: the verb of
 * ".../{id}/cancel". */
const char *bc_surface_verb(const bc_surface_req *s);

/* The request's body, a JSON object (caller decrefs); NULL after a 400
 * (invalid_request) saying why. */
json_t *bc_surface_body(bc_surface_req *s);

/* POST .../pause or .../resume of every batch of the caller's tenant (the
 * route's verb, "pause..." or not; bc_tenant_pause): its answer, or NULL
 * after a 500. Caller decrefs. */
json_t *bc_surface_tenant_pause(bc_surface_req *s);
/* The same as a route, answering 200 with it. */
void bc_surface_pause_all(void *ud, const bc_http_req *req, bc_http_resp *resp);

/* Logs what failed (event "<name>.failed") and answers 500. */
void bc_surface_fail(bc_surface_req *s, const char *what, const bc_err *err);

/* The audit row of a write by the caller, in the write's transaction.
 * Takes ownership of detail. */
int bc_surface_audit_write(bc_surface_req *s, const char *action, const char *target,
                     json_t *detail, bc_err *err);

#endif
