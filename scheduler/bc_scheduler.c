#include "bc_scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_credits.h"
#include "bc_kafka.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_reconcile.h"
#include "bc_sql.h"

struct bc_scheduler {
    bc_ctx *ctx;
    bc_pg *pg;
    bc_publisher *pub;
    bc_reconcile *rec;
    char region[16], jobs_topic[160], results_topic[160];
    int leader;
    long long next_try, next_relay, next_reap;
    long relay_after_ms, quiet_s;
    bc_metric *m_leader, *m_admitted, *m_relayed, *m_reaped, *m_released, *m_outbox,
              *m_live, *m_live_limit, *m_expired;
};

static const bc_pg_stmt stmts[] = {
    BC_PUBLISHER_STMT,
    { "lead", "SELECT pg_try_advisory_lock(hashtext('batchcall.scheduler.' || $1)) AS ok" },
    /* Oldest first, across scheduled-and-due and pending batches; a batch
     * held by a pause (its own or its tenant's) waits where it is. */
    { "waiting",
      "SELECT id, tenant_id, state FROM batches b"
      " WHERE region = $1 AND (state = 'pending'"
      "    OR (state = 'scheduled' AND scheduled_at <= now()))"
      "   AND paused_at IS NULL"
      "   AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = b.tenant_id"
      "                   AND t.paused_at IS NOT NULL)"
      " ORDER BY created_at, id LIMIT 100" },
    { "tenant_lock", "SELECT concurrency FROM tenants WHERE id = $1 FOR UPDATE" },
    { "tenant_reserved", BC_SQL_TENANT_RESERVED },
    /* Under the tenant lock, which a tenant pause takes too; a batch pause
     * takes the batch row, which this re-reads. */
    { "admit",
      "UPDATE batches SET state = 'admitted', admitted_at = now(), updated_at = now()"
      " WHERE id = $1 AND state IN ('pending', 'scheduled')"
      "   AND target_concurrency_limit <= $2::int AND paused_at IS NULL"
      "   AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = batches.tenant_id"
      "                   AND t.paused_at IS NOT NULL)"
      " RETURNING target_concurrency_limit" },
    { "to_pending",
      "UPDATE batches SET state = 'pending', updated_at = now()"
      " WHERE id = $1 AND state = 'scheduled'" },
    { "leases_insert", BC_SQL_LEASES_INSERT },
    /* Admitted batches with work that could be released. OFFSET 0 keeps
     * each batch's test a lookup by batch_id: pulled up into a join, with
     * the statistics of a table just filled, it ran as a scan of every
     * active recipient per batch. */
    { "running",
      "SELECT b.id FROM batches b WHERE b.region = $1 AND b.state = 'admitted'"
      "   AND EXISTS (SELECT 1 FROM recipients r WHERE r.batch_id = b.id"
      "               AND r.status = 'queued' AND NOT r.released"
      "               AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= bc_now())"
      "               OFFSET 0)" },
    { "release", BC_SQL_RELEASE },
    /* Rows a publisher wrote but did not see acknowledged in time. */
    { "stragglers",
      "SELECT o.id, o.topic, o.key, o.payload FROM outbox o"
      " WHERE o.created_at < now() - make_interval(secs => $4::int / 1000.0)"
      "   AND (o.topic = $1 OR (o.topic = $2 AND EXISTS"
      "        (SELECT 1 FROM batches b WHERE b.id = o.key AND b.region = $3)))"
      " ORDER BY o.id LIMIT 1000" },
    { "outbox_depth", "SELECT count(*) AS n FROM outbox" },
    /* Expiry: every recipient still queued (waiting its turn, a window or
     * a retry) in a batch past its latest_at ends as 'expired', with the
     * reason. Conditional on 'queued', so a claim that won the row first
     * keeps it (its call goes out; the release stopped handing out new
     * ones at latest_at). On the clock calling hours use (bc_now()). */
    /* The recipients are found from the expired batches, by batch_id:
     * joined the other way the planner had walked every active recipient
     * of the region on each sweep (B2: 3.6 ms a tick with none expired;
     * B5, 1,000,000 waiting: 38 ms). The update goes by key (= ANY of the
     * ids found, with coalesce() keeping it off the partial index
     * recipients_active), so with nothing expired it reads nothing. */
    { "expire",
      "WITH b AS MATERIALIZED (SELECT id, latest_at FROM batches WHERE region = $1"
      "            AND latest_at IS NOT NULL AND NOT expiry_done AND latest_at <= bc_now()),"
      " q AS MATERIALIZED (SELECT q.id, b.latest_at FROM b,"
      "            LATERAL (SELECT id FROM recipients WHERE batch_id = b.id"
      "                     AND status = 'queued' OFFSET 0) q),"
      " x AS (UPDATE recipients r SET status = 'expired', end_reason = 'expired',"
      "              released = false, updated_at = now(),"
      "              error_message = CASE WHEN r.attempts > 0 THEN 'retry not dialed before latest_at '"
      "                                   ELSE 'not dialed before latest_at ' END"
      "                              || rfc3339(q.latest_at)"
      "         FROM q WHERE r.id = ANY(ARRAY(SELECT id FROM q)) AND r.id = q.id"
      "          AND coalesce(r.status, '') = 'queued'"
      "        RETURNING r.batch_id)"
      " SELECT batch_id, count(*) AS n FROM x GROUP BY 1" },
    /* A batch past its latest_at with nothing queued or live cannot gain a
     * queued recipient any more (only a live call's retry could): stop
     * sweeping it. A separate statement, so it sees every claim the one
     * above lost to. A manual retry clears the mark. The batch is over
     * then, and when expiry ended it no call-result says so: its
     * batch.completed webhook is queued here, with the id the webhook
     * intake gives it (scheduler/bc_webhooks.c) and the same body
     * (batch_completed_data), so a batch whose last call ended at the same
     * time gets it once. */
    { "expiry_done",
      "WITH d AS (UPDATE batches b SET expiry_done = true WHERE b.region = $1"
      "   AND b.latest_at IS NOT NULL AND NOT b.expiry_done AND b.latest_at <= bc_now()"
      "   AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.batch_id = b.id"
      "                   AND r.status IN ('queued', 'dispatched', 'started') OFFSET 0)"
      "  RETURNING b.id, b.tenant_id, b.retry_count),"
      " ev AS (SELECT d.*, 'evt_' || d.id || '_' || d.retry_count AS event_id, now() AS ended_at,"
      "               batch_completed_data(d.id, to_jsonb(rfc3339(now()))) AS data"
      "          FROM d WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = d.tenant_id))"
      " INSERT INTO webhook_deliveries (webhook_id, tenant_id, event_id, event_type, payload)"
      " SELECT w.id, w.tenant_id, ev.event_id, 'batch.completed',"
      "        jsonb_build_object('id', ev.event_id, 'type', 'batch.completed',"
      "                           'created_at', rfc3339(ev.ended_at), 'data', ev.data)::text"
      "   FROM ev JOIN webhooks w ON w.tenant_id = ev.tenant_id AND w.enabled"
      "    AND 'batch.completed' = ANY (w.events) AND date_trunc('second', w.created_at) <= ev.ended_at"
      " ON CONFLICT (webhook_id, event_id) DO NOTHING" },
    /* Claims a pause could not see (they committed while it waited for the
     * batch row) are never sent, but hold a slot and keep their recipient
     * dispatched: undo them, as the pause did the others. */
    { "unclaim_paused",
      "WITH pb AS (SELECT id FROM batches WHERE region = $1 AND state = 'paused'),"
      BC_SQL_UNCLAIM_CTES
      " SELECT count(*) AS n FROM uc" },
    /* Batches that paused themselves for credits, once their tenant can
     * pay one of their calls again (bc_credits.h). */
    { "credits_resume", BC_CREDITS_RESUME_SQL },
    /* Calls holding a slot in the region, and the slots of its batches
     * with work left (the sum of their concurrency limits). */
    { "live_calls",
      "SELECT (SELECT count(*) FROM leases l JOIN batches b ON b.id = l.batch_id"
      "         WHERE l.call_id IS NOT NULL AND b.region = $1) AS live,"
      "       (SELECT coalesce(sum(b.target_concurrency_limit), 0) FROM batches b"
      "         WHERE b.region = $1 AND b.state IN ('admitted', 'paused')"
      "           AND EXISTS (SELECT 1 FROM recipients r WHERE r.batch_id = b.id"
      "                       AND r.status IN ('queued', 'dispatched', 'started'))) AS slots" },
    BC_RECONCILE_STMTS,
    /* An expired lease whose call has ended (or never began) is free. A
     * lease whose call is still live at the carrier is not reaped here: it
     * is reconciled with the carrier first, never freed on a guess. */
    { "reap",
      "UPDATE leases l SET call_id = NULL, holder = NULL, expires_at = NULL"
      "  FROM batches b"
      " WHERE b.id = l.batch_id AND b.region = $1 AND l.call_id IS NOT NULL"
      "   AND l.expires_at < now()"
      "   AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = l.call_id"
      "                   AND call_status_rank(c.status) < 9)" },
    { 0, 0 },
};

bc_scheduler *bc_scheduler_new(bc_ctx *ctx, bc_err *err)
{
    bc_scheduler *s = calloc(1, sizeof *s);
    const char *prefix = bc_config_str(ctx->cfg, "topic-prefix");

    if (!s)
        return NULL;
    s->ctx = ctx;
    snprintf(s->region, sizeof s->region, "%s", bc_config_str(ctx->cfg, "region"));
    s->relay_after_ms = bc_config_int(ctx->cfg, "relay-after-ms");
    s->quiet_s = bc_config_int(ctx->cfg, "quiet-call-s");
    bc_kafka_topic(s->jobs_topic, sizeof s->jobs_topic, prefix, "jobs", s->region);
    bc_kafka_topic(s->results_topic, sizeof s->results_topic, prefix, "call-results", NULL);
    if (!(s->pg = bc_pg_connect(bc_config_str(ctx->cfg, "pg-dsn"), stmts, err)) ||
        !(s->pub = bc_publisher_new(bc_config_str(ctx->cfg, "kafka-brokers"), ctx->log,
                                    ctx->metrics, err)) ||
        !(s->rec = bc_reconcile_new(ctx, s->pg, s->pub, err))) {
        bc_scheduler_free(s);
        return NULL;
    }
#define M(field, type, name, help) \
    s->field = bc_metrics_get(ctx->metrics, type, name, help, NULL, NULL, 0)
    M(m_leader, BC_GAUGE, "scheduler_is_leader", "1 while this process leads its region");
    M(m_admitted, BC_COUNTER, "scheduler_batches_admitted_total", "Batches admitted");
    M(m_released, BC_COUNTER, "scheduler_jobs_released_total", "Jobs released by window top-up");
    M(m_relayed, BC_COUNTER, "scheduler_outbox_relayed_total", "Outbox rows republished");
    M(m_reaped, BC_COUNTER, "scheduler_leases_reaped_total", "Expired leases freed");
    M(m_outbox, BC_GAUGE, "outbox_depth", "Outbox rows not yet acknowledged by Kafka");
    M(m_expired, BC_COUNTER, "scheduler_recipients_expired_total",
      "Recipients not dialed by their batch's latest_at, ended as expired");
    M(m_live, BC_GAUGE, "live_calls",
      "Calls holding a concurrency slot in this region (leader only)");
    M(m_live_limit, BC_GAUGE, "live_calls_limit",
      "Concurrency slots of this region's admitted batches with work left (leader only)");
#undef M
    return s;
}

void bc_scheduler_free(bc_scheduler *s)
{
    if (!s)
        return;
    bc_reconcile_free(s->rec);
    if (s->pub) {
        bc_publisher_flush(s->pub, 5000);
        if (s->pg)
            bc_publisher_tick(s->pub, s->pg, NULL);
        bc_publisher_free(s->pub, 0);
    }
    /* Closing the session releases the advisory lock: a standby leads next. */
    bc_pg_free(s->pg);
    free(s);
}

int bc_scheduler_is_leader(const bc_scheduler *s) { return s->leader; }

int bc_scheduler_ready(void *ud)
{
    bc_scheduler *s = ud;

    return s && bc_pg_up(s->pg);
}

static void publish(bc_scheduler *s, PGresult *res, bc_metric *m)
{
    bc_metric_add(m, PQntuples(res));
    bc_publisher_outbox_rows(s->pub, res, NULL);
}

static PGresult *release(bc_scheduler *s, const char *batch, bc_err *err)
{
    const char *p[] = { batch, BC_WINDOW_MULTIPLE, s->jobs_topic };

    return bc_pg_exec(s->pg, "release", 3, p, err);
}

/* Admits one batch if its tenant has room; 1 admitted, 0 no room, -1 error. */
static int admit(bc_scheduler *s, const char *batch, const char *tenant,
                 const char *state, bc_err *err)
{
    PGresult *res = NULL, *rel = NULL;
    long conc, reserved;
    char room[24], lim[24];
    int rc = -1;

    if (bc_pg_begin(s->pg, err) < 0)
        return -1;
    const char *t[] = { tenant };
    if (!(res = bc_pg_exec(s->pg, "tenant_lock", 1, t, err)))
        goto out;
    conc = bc_pg_int(res, 0, "concurrency", 0);
    PQclear(res);
    if (!(res = bc_pg_exec(s->pg, "tenant_reserved", 1, t, err)))
        goto out;
    reserved = bc_pg_int(res, 0, "reserved", 0);
    PQclear(res);
    snprintf(room, sizeof room, "%ld", conc - reserved);
    const char *a[] = { batch, room };
    if (!(res = bc_pg_exec(s->pg, "admit", 2, a, err)))
        goto out;
    if (PQntuples(res) == 0) {
        PQclear(res);
        res = NULL;
        if (!strcmp(state, "scheduled")) {
            const char *b[] = { batch };
            if (!(res = bc_pg_exec(s->pg, "to_pending", 1, b, err)))
                goto out;
        }
        rc = 0;
        goto commit;
    }
    snprintf(lim, sizeof lim, "%s", bc_pg_val(res, 0, "target_concurrency_limit"));
    PQclear(res);
    const char *l[] = { batch, lim };
    if (!(res = bc_pg_exec(s->pg, "leases_insert", 2, l, err)))
        goto out;
    if (!(rel = release(s, batch, err)))
        goto out;
    rc = 1;
commit:
    if (bc_pg_commit(s->pg, err) < 0) {
        rc = -1;
        goto out;
    }
    if (rel) {
        publish(s, rel, s->m_released);
        bc_metric_add(s->m_admitted, 1);
        bc_log(s->ctx->log, BC_INFO, "batch.admitted", "{s:s,s:s}", "batch_id", batch,
               "tenant_id", tenant);
    }
out:
    if (rc < 0)
        bc_pg_rollback(s->pg);
    PQclear(res);
    PQclear(rel);
    return rc;
}

static void admission(bc_scheduler *s)
{
    const char *p[] = { s->region };
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(s->pg, "waiting", 1, p, &err);
    char blocked[100][48];
    int nblocked = 0;

    if (!res)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *tenant = bc_pg_val(res, i, "tenant_id");
        int skip = 0;

        /* Oldest first per tenant: a later batch never jumps the queue. */
        for (int k = 0; k < nblocked && !skip; k++)
            skip = !strcmp(blocked[k], tenant);
        if (skip)
            continue;
        if (admit(s, bc_pg_val(res, i, "id"), tenant, bc_pg_val(res, i, "state"), &err) <= 0 &&
            nblocked < 100)
            snprintf(blocked[nblocked++], sizeof blocked[0], "%s", tenant);
    }
    PQclear(res);
}

static void top_up(bc_scheduler *s)
{
    const char *p[] = { s->region }, **ids;
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(s->pg, "running", 1, p, &err);
    int n, jobs;

    if (!res)
        return;
    n = PQntuples(res);
    if (n == 0 || !(ids = calloc((size_t)n, sizeof *ids))) {
        PQclear(res);
        return;
    }
    for (int i = 0; i < n; i++)
        ids[i] = bc_pg_val(res, i, "id");
    /* Every batch's top-up in one transaction: one commit (one WAL flush),
     * not one per batch; the jobs are published once it committed. */
    jobs = bc_sql_top_up(s->pg, s->pub, s->jobs_topic, ids, n, NULL, &err);
    if (jobs == BC_SQL_FAILED)
        bc_log(s->ctx->log, BC_WARN, "window.topup_failed", "{s:s}", "error", err.msg);
    else if (jobs > 0)
        bc_metric_add(s->m_released, jobs);
    free(ids);
    PQclear(res);
}

static void relay(bc_scheduler *s)
{
    char after[24];
    bc_err err = { "" };
    PGresult *res;

    /* Never relay while our own sends are unacknowledged: they would go
     * out twice. */
    if (bc_publisher_inflight(s->pub) > 0)
        return;
    snprintf(after, sizeof after, "%ld", s->relay_after_ms);
    const char *p[] = { s->jobs_topic, s->results_topic, s->region, after };
    if (!(res = bc_pg_exec(s->pg, "stragglers", 4, p, &err)))
        return;
    if (PQntuples(res) > 0)
        bc_log(s->ctx->log, BC_INFO, "outbox.relay", "{s:i}", "rows", PQntuples(res));
    publish(s, res, s->m_relayed);
    PQclear(res);
    if ((res = bc_pg_exec(s->pg, "outbox_depth", 0, NULL, NULL))) {
        bc_metric_set(s->m_outbox, (double)bc_pg_int(res, 0, "n", 0));
        PQclear(res);
    }
    const char *r[] = { s->region };
    if ((res = bc_pg_exec(s->pg, "live_calls", 1, r, NULL))) {
        bc_metric_set(s->m_live, (double)bc_pg_int(res, 0, "live", 0));
        bc_metric_set(s->m_live_limit, (double)bc_pg_int(res, 0, "slots", 0));
        PQclear(res);
    }
}

static void reap(bc_scheduler *s)
{
    const char *p[] = { s->region };
    PGresult *res = bc_pg_exec(s->pg, "reap", 1, p, NULL);

    if (res) {
        long n = atol(PQcmdTuples(res));
        if (n > 0) {
            bc_metric_add(s->m_reaped, (double)n);
            bc_log(s->ctx->log, BC_INFO, "lease.reaped", "{s:i}", "leases", (int)n);
        }
        PQclear(res);
    }
}

/* Ends what was not dialed by its batch's latest_at (see "expire"). */
static void expire(bc_scheduler *s)
{
    const char *p[] = { s->region };
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(s->pg, "expire", 1, p, NULL);

    if (!res)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        bc_metric_add(s->m_expired, (double)bc_pg_int(res, i, "n", 0));
        bc_log(s->ctx->log, BC_INFO, "batch.expired", "{s:s,s:I}", "batch_id",
               bc_pg_val(res, i, "batch_id"), "recipients", (json_int_t)bc_pg_int(res, i, "n", 0));
    }
    PQclear(res);
    /* Not marked done, the next sweep finds the same batches and ends
     * nothing more: only a repeat, so a warning. */
    if (bc_pg_run(s->pg, "expiry_done", 1, p, &err) < 0)
        bc_log(s->ctx->log, BC_WARN, "expiry.mark_failed", "{s:s}", "error", err.msg);
}

/* Undoes claims left in paused batches (see "unclaim_paused"). */
static void unclaim_paused(bc_scheduler *s)
{
    const char *p[] = { s->region };
    PGresult *res = bc_pg_exec(s->pg, "unclaim_paused", 1, p, NULL);

    if (res) {
        if (bc_pg_int(res, 0, "n", 0) > 0)
            bc_log(s->ctx->log, BC_INFO, "pause.unclaimed", "{s:I}", "calls",
                   (json_int_t)bc_pg_int(res, 0, "n", 0));
        PQclear(res);
    }
}

/* Resumes the batches paused for credits whose tenant can pay again: a
 * top-up (`batchcall credits-add`), or holds given back as calls ended.
 * Their window is released by top_up, as any admitted batch's. */
static void credits_resume(bc_scheduler *s)
{
    const char *p[] = { s->region };
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(s->pg, "credits_resume", 1, p, &err);

    if (!res) {
        bc_log(s->ctx->log, BC_WARN, "credits.resume_failed", "{s:s}", "error", err.msg);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        bc_log(s->ctx->log, BC_INFO, "batch.resumed", "{s:s,s:s,s:s}", "batch_id",
               bc_pg_val(res, i, "id"), "tenant_id", bc_pg_val(res, i, "tenant_id"), "reason",
               BC_CREDITS_SHORT);
    PQclear(res);
}

void bc_scheduler_tick(bc_scheduler *s)
{
    long long now = bc_now_ms();
    bc_err err = { "" };

    if (!bc_pg_alive(s->pg) && s->leader) {
        /* The session that held the lock is gone, and the lock with it. */
        s->leader = 0;
        bc_metric_set(s->m_live, 0);   /* the next leader reports them */
        bc_metric_set(s->m_live_limit, 0);
        bc_log(s->ctx->log, BC_WARN, "scheduler.lost_leadership", NULL);
    }
    if (!s->leader) {
        if (now < s->next_try)
            return;
        s->next_try = now + 500;
        const char *p[] = { s->region };
        PGresult *res = bc_pg_exec(s->pg, "lead", 1, p, &err);
        if (res && !strcmp(bc_pg_val(res, 0, "ok"), "t")) {
            s->leader = 1;
            bc_log(s->ctx->log, BC_INFO, "scheduler.leading", "{s:s}", "region", s->region);
        }
        PQclear(res);
        bc_metric_set(s->m_leader, s->leader);
        if (!s->leader)
            return;
    }
    admission(s);
    expire(s);
    credits_resume(s);
    top_up(s);
    if (now >= s->next_relay) {
        relay(s);
        s->next_relay = now + 1000;
    }
    if (now >= s->next_reap) {
        reap(s);
        unclaim_paused(s);
        bc_reconcile_run(s->rec);
        bc_reconcile_quiet(s->rec, s->quiet_s);
        s->next_reap = now + 1000;
    }
    if (bc_publisher_tick(s->pub, s->pg, &err) < 0)
        bc_log(s->ctx->log, BC_WARN, "outbox.delete_failed", "{s:s}", "error", err.msg);
}
