/* bc_gate: what every public route does before its own work, the same on
 * every surface: authenticate, check the key's scope, apply the plan's rate
 * limit, and honour Idempotency-Key on creating POSTs. Errors are rendered
 * by the surface, in its own body shape. */
#ifndef BC_GATE_H
#define BC_GATE_H

#include "bc_api.h"
#include "bc_credits.h"

/* Renders an error in a surface's own shape. code is a machine word
 * ("unauthorized"); msg is for people. */
typedef void (*bc_gate_error)(bc_http_resp *resp, int status, const char *code,
                              const char *msg);

typedef struct bc_gate {
    bc_pg *pg;
    bc_principal who;
    char idem_key[256];      /* set when this request owns an idempotency row */
    char idem_secret[32];    /* the answer's field holding a secret, if any */
    long long credits_cents; /* the tenant's balance (bc_credits.h), read on entry */
} bc_gate;

/* Authenticates (publishable keys only if allow_publishable, else 403),
 * then rate-limits (429 with Retry-After). Fills resp and returns -1 when the
 * request must stop; 0 to go on. Rate-limit headers are added either way. */
int bc_gate_enter(bc_api *api, bc_gate *g, const bc_http_req *req,
                  bc_http_resp *resp, int allow_publishable, bc_gate_error err);

/* 402 (in the surface's words) when the tenant has no credit left for new
 * calls. Returns -1 with resp filled, or 0. */
int bc_gate_credits(bc_gate *g, bc_http_resp *resp, bc_gate_error err,
                    const char *msg);

/* For a creating POST: with an Idempotency-Key, a replay gets the stored
 * response (returns 1, resp filled), the same key with another body gets
 * conflict_status (returns 1). 0: go on, and call bc_gate_idem_done after. */
int bc_gate_idem_begin(bc_api *api, bc_gate *g, const bc_http_req *req,
                       bc_http_resp *resp, const char *route, int conflict_status,
                       bc_gate_error err);
/* Stores the response for replays (a 5xx frees the key instead). */
void bc_gate_idem_done(bc_api *api, bc_gate *g, const bc_http_resp *resp);
/* Says that the answer carries a secret (a new key, a webhook's signing
 * secret) in its top-level string field: it is shown in this answer only.
 * The stored answer, and so a replay, has "redacted" in its place. */
void bc_gate_idem_secret(bc_gate *g, const char *field);

/* Its statements, for the API's table (bc_api_main.c). */
extern const bc_pg_stmt bc_gate_stmts[];

#endif
