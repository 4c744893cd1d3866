/* bc_reconcile: settles calls whose lease expired because their holder
 * stopped renewing (a worker died or stalled). The lease is taken over with
 * a new fencing token first, so the old holder's late writes are refused;
 * then the carrier is asked what became of the call:
 *   - never claimed by the carrier (still 'claimed', or 'dialing' with no
 *     call of that number at the carrier since the claim): the attempt is
 *     abandoned and the recipient queued again for the same attempt;
 *   - known to the carrier and ended: its final status is published as a
 *     carrier event, which a worker applies like any callback;
 *   - known and still live: the lease stays held (by us) until the carrier's
 *     final callback frees it. Never a blind redial. */
#ifndef BC_RECONCILE_H
#define BC_RECONCILE_H

#include "bc_err.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_svc.h"

typedef struct bc_reconcile bc_reconcile;

bc_reconcile *bc_reconcile_new(bc_ctx *ctx, bc_pg *pg, bc_publisher *pub, bc_err *err);
void bc_reconcile_free(bc_reconcile *r);
/* One pass over expired leases of the region. Returns calls settled. */
int bc_reconcile_run(bc_reconcile *r);
/* One pass over calls not ended that have heard nothing for quiet_s seconds
 * (a lost callback, an event not applied): asks the carrier and publishes
 * the final status of those that ended. Returns calls asked about. */
int bc_reconcile_quiet(bc_reconcile *r, long quiet_s);
/* One pass over the open calls asked to hang up (a cancel with hang-up, the
 * voicemail policy on a machine; sql/0033): sends the command of each the
 * carrier has whose last one is older than again_s seconds, or that never
 * had one (no carrier sid when it was asked). Returns commands sent. */
int bc_reconcile_hangups(bc_reconcile *r, long again_s);

/* The statements bc_reconcile runs on the connection it is given:
 * include them in that connection's table (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_reconcile_stmts[];

#endif
