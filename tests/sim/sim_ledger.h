/* sim_ledger: what really reached the carrier simulator, for tests: every
 * dial (with our attempt id and the create's parameters), the live and
 * peak calls per batch and per tenant, attempt ids dialed twice, refused
 * creates and updates, and what the agents saw. GET /ledger,
 * /ledger/dials?batch_id=, /ledger/refused; POST /ledger/reset. */
#ifndef SIM_LEDGER_H
#define SIM_LEDGER_H

#include "sim_model.h"

/* Counts d more (or fewer) live calls for c's batch and tenant (s->mu held). */
void sim_ledger_live_add(sim *s, call *c, int d);
/* Whether the calls and dials of batch are kept once over: always, unless
 * BC_SIM_KEEP_ONE_IN=N, then for one batch id in N by sim_map_hash (calls
 * with no batch always). */
int sim_ledger_kept(const sim *s, const char *batch);
/* Records the dial of c, created with body (len bytes) (s->mu held). The
 * per-batch list of dials (/ledger/dials) holds kept batches only; the
 * counts and the attempt ids dialed twice hold every dial. */
void sim_ledger_record_dial(sim *s, call *c, const char *body, size_t len);
/* Answers a refused create or update with Twilio's error body and keeps it
 * for /ledger/refused (the last REFUSED_MAX). Takes s->mu: call it without. */
void sim_ledger_refuse(sim *s, bc_http_resp *resp, const char *body, size_t len, int status,
                       int code, const char *msg);
/* Serves path under /ledger (takes s->mu). */
void sim_ledger_route(sim *s, const bc_http_req *req, const char *path, bc_http_resp *resp);
/* Frees what the ledger holds, at exit. */
void sim_ledger_free(sim *s);

#endif
