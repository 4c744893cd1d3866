#include "bc_renewal.h"

#include <stdio.h>

#include "bc_lease.h"

const bc_pg_stmt bc_renewal_stmts[] = {
    { "renew",
      "UPDATE leases SET expires_at = now() + make_interval(secs => $2::int)"
      " WHERE holder = $1 AND call_id IS NOT NULL" },
    /* This worker is alive in its region (sql/0021): renewed with its
     * leases, for a lease TTL; admission waits while a region has none.
     * $1 holder $2 region $3 ttl s */
    { "worker_beat",
      "INSERT INTO workers (holder, region, expires_at)"
      " VALUES ($1, $2, now() + make_interval(secs => $3::int))"
      " ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at" },
    { "worker_gone", "DELETE FROM workers WHERE holder = $1" },
    { 0, 0 },
};

int bc_renewal_beat(bc_worker *w, bc_err *err)
{
    char ttl[16];
    PGresult *res;

    snprintf(ttl, sizeof ttl, "%ld", w->lease_ttl_s);
    const char *p[] = { w->holder, w->region, ttl };
    if (!(res = bc_pg_exec(w->pg, "worker_beat", 3, p, err)))
        return -1;
    PQclear(res);
    return 0;
}

/* Renews every lease this worker holds; stops or resumes dialing by how
 * long ago the last renewal succeeded. */
static void renew(bc_worker *w, long long now)
{
    bc_err err = { "" };
    char ttl[16];
    int ok;

    snprintf(ttl, sizeof ttl, "%ld", w->lease_ttl_s);
    const char *p[] = { w->holder, ttl };
    if (bc_pg_run(w->pg, "renew", 2, p, &err) == 0) {
        w->renewed_at = now;
    } else {
        bc_metric_add(w->m_renew_failed, 1);
        bc_log(w->ctx->log, BC_WARN, "lease.renew_failed", "{s:s,s:I}", "error", err.msg,
               "since_ms", (json_int_t)(now - w->renewed_at));
    }
    ok = now - w->renewed_at < w->lease_ttl_s * 1000 / 2;
    if (ok != atomic_load(&w->renewing)) {
        atomic_store(&w->renewing, ok);
        bc_log(w->ctx->log, ok ? BC_INFO : BC_ERROR,
               ok ? "worker.dialing_resumed" : "worker.dialing_stopped", "{s:I}",
               "since_renewal_ms", (json_int_t)(now - w->renewed_at));
    }
}

void bc_renewal_tick(bc_worker *w, long long now)
{
    bc_err err = { "" };

    if (now < w->next_renew)
        return;
    renew(w, now);
    if (!w->draining && bc_renewal_beat(w, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "worker.beat_failed", "{s:s}", "error", err.msg);
    w->next_renew = now + bc_lease_renew_ms(w->lease_ttl_s);
}

void bc_renewal_gone(bc_worker *w)
{
    const char *h[] = { w->holder };
    bc_err err = { "" };

    if (bc_pg_run(w->pg, "worker_gone", 1, h, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "worker.gone_failed", "{s:s}", "error", err.msg);
}
