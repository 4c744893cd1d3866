/* bc_scheduler: when recipients become dialable. One leader per region
 * (a PostgreSQL advisory lock held by a session); standbys wait and take over
 * within a second of the leader's session ending. */
#ifndef BC_SCHEDULER_H
#define BC_SCHEDULER_H

#include "bc_svc.h"

typedef struct bc_scheduler bc_scheduler;

bc_scheduler *bc_scheduler_new(bc_ctx *ctx, bc_err *err);
/* One turn: keep or seek leadership; as leader, admit, top up, relay, reap.
 * Returns 1 if it gave back slots: a batch is draining, and the next turn
 * should come soon (bc_scheduler_main.c), 0 otherwise. */
int bc_scheduler_tick(bc_scheduler *s);
int bc_scheduler_ready(void *s);
void bc_scheduler_free(bc_scheduler *s);

#endif
