/* bc_scheduler: when recipients become dialable. One leader per region
 * (a PostgreSQL advisory lock held by a session); standbys wait and take over
 * within a second of the leader's session ending. */
#ifndef BC_SCHEDULER_H
#define BC_SCHEDULER_H

#include "bc_svc.h"

typedef struct bc_scheduler bc_scheduler;

bc_scheduler *bc_scheduler_new(bc_ctx *ctx, bc_err *err);
/* While a batch drains, passes come this often: after one that gave back
 * slots, and when woken by a draining batch's end (bc_scheduler_wait). */
#define BC_SCHEDULER_HANDOVER_MS 20

/* One turn: keep or seek leadership; as leader, admit, top up, relay, reap.
 * Returns 1 if it gave back slots: a batch is draining, and the next turn
 * should come soon (bc_scheduler_main.c), 0 otherwise. */
int bc_scheduler_tick(bc_scheduler *s);
/* Waits up to ms for the next pass, less if a worker said a draining
 * batch's call ended (bc_lease.h's channel, this region): returns 1 then,
 * else 0. */
int bc_scheduler_wait(bc_scheduler *s, long ms);
int bc_scheduler_ready(void *s);
void bc_scheduler_free(bc_scheduler *s);

#endif
