/* bc_renewal: the leases of this worker's live calls, and its heartbeat.
 * Leases it cannot renew expire after lease-ttl, and the reaper then gives
 * their slots to other calls while ours may still be live: after half of
 * that without a renewal the worker dials no more (renewing goes to 0,
 * readiness with it) until one succeeds. */
#ifndef BC_RENEWAL_H
#define BC_RENEWAL_H

#include "bc_worker_int.h"

/* The statements this module runs (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_renewal_stmts[];

/* Says this worker is alive in its region until a lease TTL from now
 * (sql/0021: admission waits while a region has none). 0 or -1. */
int bc_renewal_beat(bc_worker *w, bc_err *err);
/* Renews the leases and the heartbeat when due at now (ms): every third
 * of a lease's life (bc_lease_renew_ms). */
void bc_renewal_tick(bc_worker *w, long long now);
/* No longer one of the region's live workers (it drains). If this fails
 * the heartbeat simply expires. */
void bc_renewal_gone(bc_worker *w);

#endif
