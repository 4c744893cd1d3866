/* bc_expiry: what a batch's latest_at leaves undialed. Once a second the
 * region's scheduler leader ends every recipient still queued in a batch
 * past its latest_at: as 'expired', or, when the tenant's policy is what
 * held it back (legal hours, or its batch paused for credits), stopped
 * with that reason as a policy stop, with its attempt's call row,
 * call-result events and webhook (sql/0031_stop_reasons.sql). A batch so
 * ended with nothing live is marked done, and its batch.completed webhook
 * queued. */
#ifndef BC_EXPIRY_H
#define BC_EXPIRY_H

#include "bc_err.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_svc.h"

typedef struct bc_expiry bc_expiry;

/* Reads region, topic-prefix, call-result-v1 and call-result-v2 from ctx's
 * config; runs on pg and publishes the call-results it makes through pub
 * (borrowed, both). NULL on failure. */
bc_expiry *bc_expiry_new(bc_ctx *ctx, bc_pg *pg, bc_publisher *pub, bc_err *err);
void bc_expiry_free(bc_expiry *x);   /* NULL is a no-op */
/* One pass over the region's batches past their latest_at. Failures are
 * logged; the next pass finds the same rows. */
void bc_expiry_run(bc_expiry *x);

/* The statements bc_expiry runs on the connection it is given: include
 * them in that connection's table (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_expiry_stmts[];

#endif
