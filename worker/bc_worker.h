/* bc_worker: the dispatch loop of one worker process. Jobs from Kafka are
 * pointers: each is claimed in PostgreSQL together with a concurrency lease
 * in one conditional statement, then dialed; carrier events finish calls,
 * free their lease and top the batch's window up. */
#ifndef BC_WORKER_H
#define BC_WORKER_H

#include "bc_svc.h"

typedef struct bc_worker bc_worker;

bc_worker *bc_worker_new(bc_ctx *ctx, bc_err *err);
/* One turn of the loop; blocks at most ~10 ms when idle. */
void bc_worker_tick(bc_worker *w);
/* Stops taking jobs, hands back those not started, finishes dials in
 * flight and the bookkeeping, within grace_ms. */
void bc_worker_drain(bc_worker *w, int grace_ms);
void bc_worker_free(bc_worker *w);
int bc_worker_ready(void *w);
/* Prints the plan of each of the worker's statements, as its connection
 * makes them, as one JSON object on out (--explain-plans). */
int bc_worker_explain(bc_ctx *ctx, FILE *out, bc_err *err);

#endif
