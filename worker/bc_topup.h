/* bc_topup: the worker that frees a slot tops its batch's window up, so a
 * freed slot is refilled in milliseconds, not at the scheduler's next
 * tick (docs/design-notes.md). The top-ups of one batch are coalesced
 * over TOPUP_EVERY_MS. */
#ifndef BC_TOPUP_H
#define BC_TOPUP_H

#include "bc_worker_int.h"

/* The statements this module runs (BC_PG_INCLUDE): "release_lock" and
 * "release", common/sql/release_lock.sql and release.sql. */
extern const bc_pg_stmt bc_topup_stmts[];

/* Notes that batch's window may top up; bc_topup_run runs it. */
void bc_topup_want(bc_worker *w, const char *batch);
/* Runs the top-ups noted, once per interval, at now (ms). */
void bc_topup_run(bc_worker *w, long long now);

#endif
