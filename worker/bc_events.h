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

/* One turn of events: takes whatever the consumer holds, up to
 * BC_EVENTS_MAX, never waiting (the loop waits in bc_carrier_perform,
 * woken by Kafka), and writes their ends. Returns 1 if it stopped at
 * BC_EVENTS_MAX (more may be waiting), else 0. */
int bc_events_turn(bc_worker *w);
/* Writes one kind of what the turn gathered, in this order: accepted
 * dials, progress, answering machines, ends added since. Returns 1 if it
 * wrote (or tried to), 0 once nothing is left: then bc_events_settle. */
int bc_events_write_next(bc_worker *w);
/* Writes whatever is left, then stores the offsets of the events taken.
 * Every turn calls it after its claims. */
void bc_events_settle(bc_worker *w);

/* The carrier's answer to a change of a live call (bc_carrier's
 * bc_update_done; ud is the worker). */
void bc_events_updated(void *ud, const char *call, int ok, const char *why);

#endif
