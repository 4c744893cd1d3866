/* bc_dialing: from a claim to the carrier and back. A claim passes one
 * last gate (batch still admitted, lease still ours, the tenant's policy,
 * a credit hold): in the claim's own statement (worker/sql/claim.sql), or
 * for a paced dial sent again in dial_start_many. Then it goes to the
 * carrier, whose answer is recorded (accepted, paced and sent again,
 * refused, or unknown and left to the reconciler). */
#ifndef BC_DIALING_H
#define BC_DIALING_H

#include "bc_worker_int.h"

/* The statements this module runs (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_dialing_stmts[];

/* Takes the claimed calls ds[0..n) whose batch is still admitted and whose
 * lease is still ours to 'dialing', in one statement, and dials them; a
 * claim refused there is settled (claim_cancel) and never dialed, and one
 * the gate stopped goes to bc_dialing_refused. */
void bc_dialing_start(bc_worker *w, bc_dial *ds, int n);
/* Sends ds[0..n), past the gate ('dialing', held), to the carrier; a dial
 * that cannot start ends 'failed'. */
void bc_dialing_send(bc_worker *w, const bc_dial *ds, int n);
/* A claimed call of batch the gate stopped for why: the tenant's policy
 * ends it with the rule (bc_ends_blocked); BC_CREDITS_SHORT notes the batch
 * in short_of (a JSON array), for bc_dialing_short to pause. */
void bc_dialing_refused(bc_worker *w, const char *call, const char *batch, const char *why,
                        json_t *short_of);
/* Pauses the batches of short_of (bc_dialing_refused) whose next call
 * their tenant could not pay (credits_pause): the pause undoes their
 * refused claims, so those recipients stay queued. */
void bc_dialing_short(bc_worker *w, json_t *short_of);

/* The carrier's answer to a dial (bc_carrier's bc_dial_done; ud is the
 * worker). */
void bc_dialing_done(void *ud, const bc_dial *d, bc_dial_result r, const char *sid,
                     const char *why);

/* Sends again the paced dials due at now (ms), through dial_start's gate
 * (redial_back): a dial whose batch was cancelled or paused meanwhile, or
 * whose lease was taken over, is not sent. */
void bc_dialing_resend(bc_worker *w, long long now);
/* Paced dials held to be sent again. */
int bc_dialing_waiting(const bc_worker *w);

/* Writes the accepted dials gathered so far: the carrier's id, 'queued'. */
void bc_dialing_flush_accepted(bc_worker *w);

/* Forgets the paced dials not yet sent again (the worker is going). */
void bc_dialing_free(bc_worker *w);

#endif
