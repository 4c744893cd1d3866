/* bc_events: carrier events of the region (status callbacks the API turned
 * into Kafka messages, the reconciler's findings, hang-up requests). A
 * turn applies up to 500: progress and answering-machine verdicts in one
 * statement each, ends through bc_ends, and stores their offsets only once
 * their effect is written. */
#ifndef BC_EVENTS_H
#define BC_EVENTS_H

#include "bc_worker_int.h"

/* The statements this module runs (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_events_stmts[];

/* One turn of events. With no dial in flight nothing else makes the loop
 * wait, so it waits here for an event, briefly (5 ms), instead of
 * spinning. */
void bc_events_turn(bc_worker *w);

/* The carrier's answer to a change of a live call (bc_carrier's
 * bc_update_done; ud is the worker). */
void bc_events_updated(void *ud, const char *call, int ok, const char *why);

#endif
