#include "bc_topup.h"

#include <stdio.h>
#include <string.h>

#include "bc_sql.h"

/* Window top-ups of one batch are coalesced over this long: one release
 * statement per batch per interval, not one per ended call (each scans the
 * batch's backlog). The window (BC_WINDOW_MULTIPLE x the slots the batch
 * holds) covers it. */
#define TOPUP_EVERY_MS 50

const bc_pg_stmt bc_topup_stmts[] = {
    { "release", BC_SQL_RELEASE },
    { "release_lock", BC_SQL_RELEASE_LOCK },
    { "release_try_lock", BC_SQL_RELEASE_TRY_LOCK },
    { 0, 0 },
};

/* Releases the batch's next jobs now that a slot is free. If another
 * transaction is releasing it, that one fills the window. */
static void top_up(bc_worker *w, const char *batch)
{
    bc_err err = { "" };
    char skipped = 0;

    if (bc_sql_top_up(w->pg, w->pub, w->jobs_topic, &batch, 1, &skipped, w->ctx->log,
                      &err) < 0)
        /* The scheduler's periodic top-up covers it. */
        bc_log(w->ctx->log, BC_WARN, "window.topup_failed", "{s:s,s:s}", "batch_id",
               batch, "error", err.msg);
}

void bc_topup_want(bc_worker *w, const char *batch)
{
    for (int i = 0; i < w->ntopups; i++)
        if (!strcmp(w->topups[i], batch))
            return;
    if (w->ntopups == BC_TOPUP_MAX) {
        top_up(w, batch);   /* more batches than we track: do it now */
        return;
    }
    snprintf(w->topups[w->ntopups++], sizeof w->topups[0], "%s", batch);
}

/* The top-ups of one interval in one transaction: one commit (one WAL
 * flush) for every batch, not one each; with 200 small batches they were
 * 4,000 commits a second. The jobs are published once it committed. A
 * batch another transaction is releasing (the scheduler's pass, another
 * worker's top-up) is not waited for: the loop would stand still until
 * that commits. It stays wanted for the next interval. */
void bc_topup_run(bc_worker *w, long long now)
{
    const char *ids[BC_TOPUP_MAX] = { 0 };
    char skipped[BC_TOPUP_MAX] = { 0 };
    int n = w->ntopups, kept = 0;
    bc_err err = { "" };

    if (now < w->next_topup || n == 0)
        return;
    w->next_topup = now + TOPUP_EVERY_MS;
    for (int i = 0; i < n; i++)
        ids[i] = w->topups[i];
    if (bc_sql_top_up(w->pg, w->pub, w->jobs_topic, ids, n, skipped, w->ctx->log, &err) < 0) {
        /* The scheduler's periodic top-up covers them. */
        bc_log(w->ctx->log, BC_WARN, "window.topup_failed", "{s:s}", "error", err.msg);
        w->ntopups = 0;
        return;
    }
    for (int i = 0; i < n; i++)
        if (skipped[i]) {
            if (kept != i)
                memcpy(w->topups[kept], w->topups[i], sizeof w->topups[0]);
            kept++;
        }
    bc_metric_add(w->m_topup_skipped, kept);
    w->ntopups = kept;
}
