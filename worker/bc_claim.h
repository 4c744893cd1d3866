/* bc_claim: a turn's claims. The waiting jobs of every batch that may have
 * a free slot (a fair share of each, within the dials the carrier may take
 * and its pace) are claimed in one statement, worker/sql/claim.sql:
 * attempt, concurrency slot and call row together, or nothing, and each
 * claim through the dial's gate (the tenant's policy, a credit hold). What
 * passed goes to the carrier (bc_dialing_send), what the gate stopped to
 * bc_dialing_refused. */
#ifndef BC_CLAIM_H
#define BC_CLAIM_H

#include "bc_worker_int.h"

/* The statement this module runs (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_claim_stmts[];

/* One claim statement for the turn at now (ms), and the dials it allows. */
void bc_claim_turn(bc_worker *w, long long now);

#endif
