/* bc_ends: the ends of attempts. A turn gathers them (carrier events, dials
 * refused, policy stops) and writes them in one statement: each call's
 * final status, its lease freed, its credit hold released and its cost
 * settled, its recipient finished or queued for a retry, and its
 * call-result events in the outbox; then the batch's window tops up. */
#ifndef BC_ENDS_H
#define BC_ENDS_H

#include "bc_worker_int.h"

/* The statement this module runs (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_ends_stmts[];

/* Registers worker_calls_finished_total, one series per outcome. */
void bc_ends_metrics(bc_worker *w);

/* Ends attempt call with the carrier's final status, the call's duration
 * (s), end_reason, the carrier's id sid and AnsweredBy answered_by (each
 * may be NULL) and an error message (may be NULL): gathered, and written
 * with the turn's other ends (bc_ends_flush). A repeat within the turn is
 * counted as a duplicate event and dropped. The outcome class
 * (bc_retry_outcome) is what the retry policy's retry_on is matched
 * against there. */
void bc_ends_add(bc_worker *w, const char *call, const char *status, int duration,
                 const char *end_reason, const char *sid, const char *answered_by,
                 const char *error);
/* Ends attempt call as 'failed' before the carrier had it, with end_reason
 * and error (may be NULL). */
void bc_ends_failed(bc_worker *w, const char *call, const char *end_reason, const char *error);
/* Ends a claimed attempt the tenant's policy stopped before the carrier was
 * asked: 'failed' with the rule as its end reason (and the rule's message,
 * policy_message()), through the same statement as every end, so it frees
 * its slot, ends its recipient, and makes its call-result event and
 * webhook. Its outcome is the rule, which no retry_on lists: never
 * retried. */
void bc_ends_blocked(bc_worker *w, const char *call, const char *batch, const char *reason);

/* Moves each progress event and answering-machine verdict of the turn
 * whose call has its end gathered too into that end (call_end_many writes
 * them with it): one write of the call and its recipient, not three. B2's
 * zero-length calls bring a call's answer, verdict and end together. */
void bc_ends_fold(bc_worker *w);

/* 1 if any entry of arr (pending writes of the turn) names, in its field,
 * a call whose end is gathered and not yet written. */
int bc_ends_touch(bc_worker *w, json_t *arr, const char *field);

/* Writes the ends gathered so far; a batch whose slot came free tops up.
 * 0, or -1 if the statement failed (the calls stay open: the reconciler's
 * quiet-call sweep asks the carrier about them). */
int bc_ends_flush(bc_worker *w);

#endif
