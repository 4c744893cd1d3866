#include "bc_scheduler.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_credits.h"
#include "bc_expiry.h"
#include "bc_kafka.h"
#include "bc_lease.h"
#include "bc_marks.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_reconcile.h"
#include "bc_sql.h"

struct bc_scheduler {
    bc_ctx *ctx;
    bc_pg *pg;
    bc_publisher *pub;
    bc_reconcile *rec;
    bc_expiry *exp;
    char region[16], jobs_topic[160], results_topic[160];
    int leader;
    int listen_pid;          /* the backend that said LISTEN (bc_scheduler_wait) */
    long long pass_at;       /* when the last pass began */
    long long next_try, next_relay, next_reap, next_tz, next_tz_warn, next_topup_all;
    long relay_after_ms, quiet_s, hangup_again_s;
    bc_marks marks;          /* the outbox ids of the recent relays */
    bc_metric *m_leader, *m_admitted, *m_relayed, *m_reaped, *m_released, *m_outbox,
              *m_live, *m_live_limit, *m_given_back, *m_grown,
              *m_waiting_region, *m_workers, *m_ticks, *m_tz_prefixes, *m_topup_skipped;
};

static const bc_pg_stmt stmts[] = {
    BC_PG_INCLUDE(bc_publisher_stmts),
    BC_PG_INCLUDE(bc_reconcile_stmts),
    BC_PG_INCLUDE(bc_expiry_stmts),
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
    /* As the API's (api/bc_api_main.c): serialises admissions, not inserts. */
    { "tenant_lock", "SELECT concurrency FROM tenants WHERE id = $1 FOR NO KEY UPDATE" },
    { "tenant_reserved", BC_SQL_TENANT_RESERVED },
    { "batch_need", BC_SQL_BATCH_NEED },
    /* Under the tenant lock, which a tenant pause takes too; a batch pause
     * takes the batch row, which this re-reads. The caller has checked
     * that the tenant has room for what the batch can use. */
    { "admit",
      "UPDATE batches SET state = 'admitted', admitted_at = now(), updated_at = now(),"
      "       wait_reason = NULL"
      " WHERE id = $1 AND state IN ('pending', 'scheduled') AND paused_at IS NULL"
      "   AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = batches.tenant_id"
      "                   AND t.paused_at IS NOT NULL)"
      " RETURNING id" },
    /* A batch that cannot be admitted yet waits as pending, saying why
     * ($2: 'concurrency' or 'region'); written only when that changes. */
    { "to_pending",
      "UPDATE batches SET state = 'pending', wait_reason = $2, updated_at = now()"
      " WHERE id = $1 AND state IN ('pending', 'scheduled')"
      "   AND (state = 'scheduled' OR wait_reason IS DISTINCT FROM $2)" },
    { "leases_insert", BC_SQL_LEASES_INSERT },
    /* Rows of workers that died without draining: each process has a
     * holder of its own, so they would pile up. Kept an hour to look at. */
    { "workers_forget",
      "DELETE FROM workers WHERE region = $1 AND expires_at < now() - interval '1 hour'" },
    /* Idempotency-Key rows past their day (sql/0024): their keys are free
     * and their answers of no use any more. By the created_at index. */
    { "idempotency_forget",
      "DELETE FROM idempotency_keys WHERE created_at < now() - idempotency_ttl()" },
    { "region_live", "SELECT region_has_workers($1) AS live,"
                     " (SELECT count(*) FROM workers WHERE region = $1"
                     "     AND expires_at > now()) AS workers" },
    /* Every due batch of a region without a live worker waits for one, and
     * says so (the API admits none there either). Counts the batches
     * stalled there: pending ones (those marked now, which the outer
     * query's snapshot does not see as marked, and those marked before)
     * and admitted ones with recipients still to finish, which their
     * reads show as waiting for the region too (api/bc_api_main.c,
     * BATCH_GET) and which, their slots given back, no other gauge shows.
     * By unfinished_batches() (sql/0036). */
    { "wait_region",
      "WITH w AS (UPDATE batches SET state = 'pending', wait_reason = 'region', updated_at = now()"
      "            WHERE region = $1 AND (state = 'pending'"
      "               OR (state = 'scheduled' AND scheduled_at <= now()))"
      "              AND wait_reason IS DISTINCT FROM 'region' RETURNING 1)"
      " SELECT (SELECT count(*) FROM w)"
      "        + (SELECT count(*) FROM batches WHERE region = $1 AND state = 'pending'"
      "            AND wait_reason = 'region') AS pending,"
      "        (SELECT count(*) FROM unfinished_batches() ub(id),"
      "           LATERAL (SELECT 1 FROM batches WHERE id = ub.id AND region = $1"
      "                     AND state = 'admitted' OFFSET 0) b) AS admitted" },
    /* Gives back what batches can no longer use: each of the region's
     * batches with a free slot keeps min(limit, recipients still to
     * finish) slots if admitted or paused and its region has a live
     * worker, else none, and its free slots beyond that are deleted
     * (highest first), but for those of a pool's numbers its queued
     * recipients wait for (batch_wanted_slots, sql/0028): deleted, they
     * would wait for ever. A slot in use is never touched: only free rows
     * are taken, locked and skipped if a claim holds them, so a claim in
     * flight keeps its slot and a late write of an old holder still finds
     * no row with its token. Returns a row per slot given back. */
    { "give_back",
      "WITH f AS (SELECT DISTINCT batch_id FROM leases WHERE call_id IS NULL),"
      " live AS (SELECT region_has_workers($1) AS ok),"
      " b AS MATERIALIZED (SELECT b.id, b.target_concurrency_limit AS lim,"
      "              CASE WHEN b.state IN ('admitted', 'paused') AND (SELECT ok FROM live)"
      "                   THEN batch_slots_needed(b.id, b.target_concurrency_limit)"
      "                   ELSE 0 END AS need,"
      "              (SELECT count(*) FROM leases l WHERE l.batch_id = b.id) AS held"
      "         FROM batches b WHERE b.id IN (SELECT batch_id FROM f) AND b.region = $1),"
      " d AS (SELECT x.batch_id, x.slot FROM b,"
      "         LATERAL (SELECT ARRAY(SELECT batch_wanted_slots(b.id, b.lim)) AS slots) w,"
      "         LATERAL (SELECT l.batch_id, l.slot FROM leases l"
      "                   WHERE l.batch_id = b.id AND l.call_id IS NULL"
      "                     AND l.slot <> ALL (w.slots)"
      "                   ORDER BY l.slot DESC LIMIT greatest(0, b.held - b.need)"
      "                   FOR UPDATE SKIP LOCKED) x"
      "        WHERE b.held > b.need)"
      " DELETE FROM leases USING d WHERE leases.batch_id = d.batch_id"
      "   AND leases.slot = d.slot AND leases.call_id IS NULL"
      " RETURNING leases.batch_id" },
    /* Admitted batches of the region holding fewer slots than they can
     * use (a retry queued recipients again, or their region's workers came
     * back), oldest first, among those with a recipient to finish
     * (unfinished_batches, sql/0036). OFFSET 0 keeps each a lookup. */
    { "short",
      "SELECT b.id, b.tenant_id, b.target_concurrency_limit AS lim, x.need, x.held"
      "  FROM unfinished_batches() ub(id),"
      "  LATERAL (SELECT * FROM batches WHERE id = ub.id AND region = $1"
      "            AND state = 'admitted' AND region_has_workers($1) OFFSET 0) b,"
      "  LATERAL (SELECT batch_slots_needed(b.id, b.target_concurrency_limit) AS need,"
      "                  (SELECT count(*) FROM leases l WHERE l.batch_id = b.id) AS held"
      "           OFFSET 0) x"
      " WHERE x.held < x.need"
      " ORDER BY b.admitted_at, b.id LIMIT 100" },
    /* Adds up to $2 free slots to batch $1, the lowest numbers it lacks
     * below its limit $3 (so it never has more than its limit), those of
     * a pool's numbers its queued recipients wait for first (sql/0028). */
    { "leases_grow",
      "INSERT INTO leases (batch_id, slot, number)"
      " SELECT $1, g, (SELECT from_pool[1 + g % cardinality(from_pool)]"
      "                  FROM batches WHERE id = $1)"
      "   FROM generate_series(0, $3::int - 1) AS g"
      "  WHERE NOT EXISTS (SELECT 1 FROM leases l WHERE l.batch_id = $1 AND l.slot = g)"
      "  ORDER BY g = ANY (ARRAY(SELECT batch_wanted_slots($1, $3::int))) DESC, g"
      "  LIMIT $2::int ON CONFLICT DO NOTHING" },
    /* Admitted batches with work that could be released: every one when
     * $2, else those with no call live (a batch with one is topped up by
     * the worker that ends it, bc_topup.h). OFFSET 0 keeps each batch's
     * test a lookup by batch_id: pulled up into a join, with the
     * statistics of a table just filled, it ran as a scan of every active
     * recipient per batch. The batches are chosen first, behind an OFFSET 0
     * of their own (so are those of wait_region, short and expiry_done):
     * in a plan cached while recipients was empty, the test cost nothing
     * and ran ahead of region and state, as a scan of recipients for every
     * batch of the table (test_scheduler_plans.py: 36,000 pages a pass
     * with 30 batches scheduled for tomorrow). Only batches with a
     * recipient to finish are looked at (unfinished_batches, sql/0036): a
     * finished batch stays admitted, and walking them all grew with the
     * region's history. $1 region $2 all */
    { "running",
      "SELECT b.id FROM unfinished_batches() ub(id),"
      "  LATERAL (SELECT id FROM batches WHERE id = ub.id AND region = $1"
      "            AND state = 'admitted' OFFSET 0) b"
      " WHERE EXISTS (SELECT 1 FROM recipients r WHERE r.batch_id = b.id"
      "               AND r.status = 'queued' AND NOT r.released"
      "               AND (r.next_attempt_at IS NULL OR r.next_attempt_at <= bc_now())"
      "               OFFSET 0)"
      "   AND ($2::boolean OR NOT EXISTS (SELECT 1 FROM leases l WHERE l.batch_id = b.id"
      "                                    AND l.call_id IS NOT NULL))" },
    { "release", BC_SQL_RELEASE },
    { "release_lock", BC_SQL_RELEASE_LOCK },
    { "release_try_lock", BC_SQL_RELEASE_TRY_LOCK },
    /* Rows a publisher wrote but did not see acknowledged in time, with
     * ids up to $5 (bc_marks.h): the scan of the primary key ends there,
     * before the young rows that publishers are about to delete. */
    { "stragglers",
      "SELECT o.id, o.topic, o.key, o.payload FROM outbox o"
      " WHERE o.id <= $5::bigint"
      "   AND o.created_at < now() - make_interval(secs => $4::int / 1000.0)"
      "   AND (o.topic = $1 OR (o.topic = $2 AND EXISTS"
      "        (SELECT 1 FROM batches b WHERE b.id = o.key AND b.region = $3)))"
      " ORDER BY o.id LIMIT 1000" },
    /* The last outbox id handed out. */
    { "outbox_mark", "SELECT last_value AS id FROM outbox_id_seq" },
    { "outbox_depth", "SELECT count(*) AS n FROM outbox" },
    /* The prefix-to-time-zone map's size (`batchcall tz-load`), and the
     * tenants whose calling hours read it: a few thousand rows and the
     * tenants, counted at most every few seconds. */
    { "tz_prefixes",
      "SELECT (SELECT count(*) FROM tz_prefixes) AS prefixes,"
      "       (SELECT count(*) FROM tenants WHERE legal_hours) AS legal_tenants" },
    /* Claims a pause could not see (they committed while it waited for the
     * batch row) are never sent, but hold a slot and keep their recipient
     * dispatched: undo them, as the pause did the others. */
    { "unclaim_paused",
      "WITH pb AS (SELECT id FROM batches WHERE region = $1 AND state = 'paused'),"
      BC_SQL_UNCLAIM_CTES
      " SELECT count(*) AS n FROM uc" },
    /* Batches of the region that paused themselves for credits (the
     * worker's credits_pause), once their tenant can pay one of their calls
     * again (a top-up, or holds released) and is not paused itself, are
     * admitted again; their queued recipients go back to the backlog,
     * which the window releases in order. $1 region. Returns the batches
     * resumed: id, tenant_id. */
    { "credits_resume",
      "WITH b AS (UPDATE batches SET state = 'admitted', paused_at = NULL,"
      "                  pause_reason = NULL, updated_at = now()"
      "            WHERE region = $1 AND state = 'paused'"
      "              AND pause_reason = '" BC_CREDITS_SHORT "'"
      "              AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = batches.tenant_id"
      "                              AND t.paused_at IS NOT NULL)"
      "              AND " BC_SQL_CREDITS_BALANCE("batches.tenant_id") " >= "
      BC_SQL_CREDITS_HOLD("(SELECT t.price_per_min_cents FROM tenants t"
                          "                     WHERE t.id = batches.tenant_id)",
                          "batches.max_call_duration_min")
      "           RETURNING id, tenant_id),"
      " pb AS (SELECT id FROM b),"
      BC_SQL_UNCLAIM_CTES ","
      " rr AS (UPDATE recipients SET released = false, updated_at = now() FROM pb"
      "         WHERE recipients.batch_id = pb.id AND recipients.status = 'queued'"
      "           AND recipients.released RETURNING 1)"
      " SELECT id, tenant_id FROM b" },
    /* Calls holding a slot in the region, and the slots its batches
     * reserve (their lease rows, as common/sql/tenant_reserved.sql counts
     * them). */
    { "live_calls",
      "SELECT count(*) FILTER (WHERE l.call_id IS NOT NULL) AS live,"
      "       count(*) FILTER (WHERE l.call_id IS NOT NULL"
      "                           OR b.state IN ('admitted', 'paused')) AS slots"
      "  FROM leases l JOIN batches b ON b.id = l.batch_id WHERE b.region = $1" },
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
    char events[160];

    if (!s)
        return NULL;
    s->ctx = ctx;
    snprintf(s->region, sizeof s->region, "%s", bc_config_str(ctx->cfg, "region"));
    s->relay_after_ms = bc_config_int(ctx->cfg, "relay-after-ms");
    s->quiet_s = bc_config_int(ctx->cfg, "quiet-call-s");
    s->hangup_again_s = bc_config_int(ctx->cfg, "hangup-again-s");
    bc_kafka_topic(s->jobs_topic, sizeof s->jobs_topic, prefix, "jobs", s->region);
    bc_kafka_topic(s->results_topic, sizeof s->results_topic, prefix, "call-results", NULL);
    if (!(s->pg = bc_pg_connect(bc_config_str(ctx->cfg, "pg-dsn"), stmts, err)) ||
        !(s->pub = bc_publisher_new(ctx->cfg, ctx->log, ctx->metrics, err)) ||
        !(s->rec = bc_reconcile_new(ctx, s->pg, s->pub, err)) ||
        !(s->exp = bc_expiry_new(ctx, s->pg, s->pub, err))) {
        bc_scheduler_free(s);
        return NULL;
    }
    /* Its first releases and relays do not wait for their topics' lookup
     * (bc_publisher_warm). */
    bc_kafka_topic(events, sizeof events, prefix, "carrier-events", s->region);
    bc_publisher_warm(s->pub, (const char *const[]){ s->jobs_topic, s->results_topic, events },
                      3, 2000);
#define M(field, type, name, help) \
    s->field = bc_metrics_get(ctx->metrics, type, name, help, NULL, NULL, 0)
    M(m_leader, BC_GAUGE, "scheduler_is_leader", "1 while this process leads its region");
    M(m_ticks, BC_COUNTER, "scheduler_ticks_total",
      "Passes of the leader's tick (admission, expiry, releases, relay, reaping)");
    M(m_admitted, BC_COUNTER, "scheduler_batches_admitted_total", "Batches admitted");
    M(m_released, BC_COUNTER, "scheduler_jobs_released_total", "Jobs released by window top-up");
    M(m_topup_skipped, BC_COUNTER, "scheduler_window_topups_skipped_total",
      "Batches a pass left to the transaction releasing them (a worker's top-up)");
    M(m_relayed, BC_COUNTER, "scheduler_outbox_relayed_total", "Outbox rows republished");
    M(m_reaped, BC_COUNTER, "scheduler_leases_reaped_total", "Expired leases freed");
    M(m_outbox, BC_GAUGE, "outbox_depth", "Outbox rows not yet acknowledged by Kafka");
    M(m_live, BC_GAUGE, "live_calls",
      "Calls holding a concurrency slot in this region (leader only)");
    M(m_live_limit, BC_GAUGE, "live_calls_limit",
      "Concurrency slots this region's batches reserve (leader only)");
    M(m_given_back, BC_COUNTER, "scheduler_slots_given_back_total",
      "Free slots deleted because their batch could no longer use them");
    M(m_grown, BC_COUNTER, "scheduler_slots_added_total",
      "Slots given to admitted batches that could use more (retries, workers back)");
    M(m_waiting_region, BC_GAUGE, "batches_waiting_for_region",
      "Batches with recipients to call, pending or admitted, in this region while it"
      " has no live worker (leader only)");
    M(m_workers, BC_GAUGE, "region_workers_live",
      "Workers of this region whose heartbeat has not expired (leader only)");
    M(m_tz_prefixes, BC_GAUGE, "scheduler_tz_prefixes",
      "Prefixes in the time zone map legal calling hours read (tz_prefixes; 0: not loaded)");
#undef M
    return s;
}

void bc_scheduler_free(bc_scheduler *s)
{
    if (!s)
        return;
    bc_reconcile_free(s->rec);
    bc_expiry_free(s->exp);
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

/* Under the tenant's row lock (taken here; the caller began the
 * transaction): the tenant's limit and the slots it has reserved. */
static int tenant_room(bc_scheduler *s, const char *tenant, long *conc, long *reserved,
                       bc_err *err)
{
    const char *t[] = { tenant };
    PGresult *res;

    if (!(res = bc_pg_exec(s->pg, "tenant_lock", 1, t, err)))
        return -1;
    *conc = bc_pg_int(res, 0, "concurrency", 0);
    PQclear(res);
    if (!(res = bc_pg_exec(s->pg, "tenant_reserved", 1, t, err)))
        return -1;
    *reserved = bc_pg_int(res, 0, "reserved", 0);
    PQclear(res);
    return 0;
}

/* Admits one batch if its tenant has a free slot, and gives it what it
 * can use, min(its limit, recipients still to finish), or as many as are
 * free (grow adds the rest as they free up); 1 admitted, 0 no room (it
 * waits as pending, saying so), -1 error. */
static int admit(bc_scheduler *s, const char *batch, const char *tenant, bc_err *err)
{
    PGresult *res = NULL, *rel = NULL;
    long conc, reserved;
    char slots[24];
    int rc = -1, grant;

    if (bc_pg_begin(s->pg, err) < 0)
        return -1;
    if (tenant_room(s, tenant, &conc, &reserved, err) < 0)
        goto out;
    const char *b[] = { batch };
    if (!(res = bc_pg_exec(s->pg, "batch_need", 1, b, err)) || PQntuples(res) != 1)
        goto out;
    /* need: batch_slots_needed, capped at its limit */
    grant = bc_lease_grant((int)conc, reserved, (int)bc_pg_int(res, 0, "need", 0));
    PQclear(res);
    res = NULL;
    if (grant < 0) {
        const char *w[] = { batch, "concurrency" };
        if (!(res = bc_pg_exec(s->pg, "to_pending", 2, w, err)))
            goto out;
        rc = 0;
        goto commit;
    }
    if (!(res = bc_pg_exec(s->pg, "admit", 1, b, err)))
        goto out;
    if (PQntuples(res) == 0) {   /* paused meanwhile: it waits for the resume */
        rc = 0;
        goto commit;
    }
    PQclear(res);
    snprintf(slots, sizeof slots, "%d", grant);
    const char *l[] = { batch, slots };
    if (!(res = bc_pg_exec(s->pg, "leases_insert", 2, l, err)))
        goto out;
    if (!(rel = bc_sql_release_one(s->pg, batch, s->jobs_topic, err)))
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
        bc_log(s->ctx->log, BC_INFO, "batch.admitted", "{s:s,s:s,s:i}", "batch_id", batch,
               "tenant_id", tenant, "slots", grant);
    }
out:
    if (rc < 0)
        bc_pg_rollback(s->pg);
    PQclear(res);
    PQclear(rel);
    return rc;
}

/* 1 if the region has a live worker; sets the workers gauge. A region
 * without one admits nothing: its due batches wait for a worker, each
 * saying so, counted in batches_waiting_for_region with the admitted
 * batches that still have recipients to call (its alert:
 * deploy/prometheus/batchcall-rules.yaml). */
static int region_live(bc_scheduler *s)
{
    const char *p[] = { s->region };
    PGresult *res = bc_pg_exec(s->pg, "region_live", 1, p, NULL);
    int live;
    long long pending, admitted;

    if (!res)
        return 0;
    live = !strcmp(bc_pg_val(res, 0, "live"), "t");
    bc_metric_set(s->m_workers, (double)bc_pg_int(res, 0, "workers", 0));
    PQclear(res);
    if (live) {
        bc_metric_set(s->m_waiting_region, 0);
        return 1;
    }
    if (!(res = bc_pg_exec(s->pg, "wait_region", 1, p, NULL)))
        return 0;
    pending = bc_pg_int(res, 0, "pending", 0);
    admitted = bc_pg_int(res, 0, "admitted", 0);
    PQclear(res);
    bc_metric_set(s->m_waiting_region, (double)(pending + admitted));
    if (pending + admitted > 0)
        bc_log(s->ctx->log, BC_WARN, "region.no_workers", "{s:s,s:I,s:I,s:I}", "region",
               s->region, "batches_waiting", (json_int_t)(pending + admitted),
               "pending", (json_int_t)pending, "admitted", (json_int_t)admitted);
    return 0;
}

static void admission(bc_scheduler *s)
{
    const char *p[] = { s->region };
    bc_err err = { "" };
    PGresult *res;
    char blocked[100][48];
    int nblocked = 0;

    if (!region_live(s))
        return;
    if (!(res = bc_pg_exec(s->pg, "waiting", 1, p, &err)))
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *tenant = bc_pg_val(res, i, "tenant_id");
        int skip = 0;

        /* Oldest first per tenant: a later batch never jumps the queue. */
        for (int k = 0; k < nblocked && !skip; k++)
            skip = !strcmp(blocked[k], tenant);
        if (skip)
            continue;
        if (admit(s, bc_pg_val(res, i, "id"), tenant, &err) <= 0 && nblocked < 100)
            snprintf(blocked[nblocked++], sizeof blocked[0], "%s", tenant);
    }
    PQclear(res);
}

/* Deletes the free slots batches can no longer use (see "give_back"), so
 * the batches waiting behind them are admitted at once. Returns how many. */
static int give_back(bc_scheduler *s)
{
    const char *p[] = { s->region };
    PGresult *res = bc_pg_exec(s->pg, "give_back", 1, p, NULL);
    int n;

    if (!res)
        return 0;
    if ((n = PQntuples(res)) > 0) {
        bc_metric_add(s->m_given_back, n);
        bc_log(s->ctx->log, BC_DEBUG, "lease.given_back", "{s:i,s:s}", "slots", n,
               "batch_id", bc_pg_val(res, 0, "batch_id"));
    }
    PQclear(res);
    return n;
}

/* Gives admitted batches holding fewer slots than they can use as many
 * more as their tenant has room for, each under its tenant's lock. */
static void grow(bc_scheduler *s)
{
    const char *p[] = { s->region }, *grown[100];
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(s->pg, "short", 1, p, &err), *r;
    int ngrown = 0, jobs;

    if (!res)
        return;
    for (int i = 0; i < PQntuples(res) && i < 100; i++) {
        long conc, reserved, add;
        char n[24];

        if (bc_pg_begin(s->pg, &err) < 0)
            break;
        if (tenant_room(s, bc_pg_val(res, i, "tenant_id"), &conc, &reserved, &err) < 0) {
            bc_pg_rollback(s->pg);
            continue;
        }
        add = bc_pg_int(res, i, "need", 0) - bc_pg_int(res, i, "held", 0);
        if (add > conc - reserved)
            add = conc - reserved;
        snprintf(n, sizeof n, "%ld", add > 0 ? add : 0);
        const char *g[] = { bc_pg_val(res, i, "id"), n, bc_pg_val(res, i, "lim") };
        if (add <= 0 || !(r = bc_pg_exec(s->pg, "leases_grow", 3, g, &err))) {
            bc_pg_rollback(s->pg);
            continue;
        }
        add = atol(PQcmdTuples(r));
        PQclear(r);
        if (bc_pg_commit(s->pg, &err) == 0 && add > 0) {
            bc_metric_add(s->m_grown, (double)add);
            grown[ngrown++] = bc_pg_val(res, i, "id");
        }
    }
    /* A batch's window follows the slots it holds (release.sql): the
     * grown ones get their larger window now, not at their next call's
     * end or the next second's top-up. */
    if (ngrown > 0) {
        jobs = bc_sql_top_up(s->pg, s->pub, s->jobs_topic, grown, ngrown, NULL, NULL, &err);
        if (jobs == BC_SQL_FAILED)
            bc_log(s->ctx->log, BC_WARN, "window.topup_failed", "{s:s}", "error", err.msg);
        else if (jobs > 0)
            bc_metric_add(s->m_released, jobs);
    }
    PQclear(res);
}

/* Tops up the windows of the running batches: at every pass those no
 * worker will (no call live: new, resumed, or between retries), once a
 * second all of them. A batch with live calls is topped up by the workers
 * that end them, 50 ms after; topping it up here too at every pass found
 * what they had just done (B2: 715 of its 1,640 top-ups, each counting
 * the window's in-flight recipients, bench/RESULTS.md). The second's pass
 * covers what no end tops up: a recipient put back for its calling hours,
 * a worker's top-up that failed, a retry coming due. A batch a worker is
 * releasing now is left to it (release_try_lock.sql), not waited for. */
static void top_up(bc_scheduler *s, long long now)
{
    int all = now >= s->next_topup_all;
    const char *p[] = { s->region, all ? "true" : "false" }, **ids;
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(s->pg, "running", 2, p, &err);
    char *skipped;
    int n, jobs;

    if (!res)
        return;
    if (all)
        s->next_topup_all = now + 1000;
    n = PQntuples(res);
    ids = n > 0 ? calloc((size_t)n, sizeof *ids) : NULL;
    skipped = n > 0 ? calloc((size_t)n, 1) : NULL;
    if (!ids || !skipped) {
        free(ids);
        free(skipped);
        PQclear(res);
        return;
    }
    for (int i = 0; i < n; i++)
        ids[i] = bc_pg_val(res, i, "id");
    /* Every batch's top-up in one transaction: one commit (one WAL flush),
     * not one per batch; the jobs are published once it committed. */
    jobs = bc_sql_top_up(s->pg, s->pub, s->jobs_topic, ids, n, skipped, NULL, &err);
    if (jobs == BC_SQL_FAILED) {
        bc_log(s->ctx->log, BC_WARN, "window.topup_failed", "{s:s}", "error", err.msg);
    } else if (jobs >= 0) {
        int left = 0;

        for (int i = 0; i < n; i++)
            left += skipped[i];
        bc_metric_add(s->m_released, jobs);
        bc_metric_add(s->m_topup_skipped, left);
    }
    free(skipped);
    free(ids);
    PQclear(res);
}

static void relay(bc_scheduler *s)
{
    char after[24], upto[24];
    bc_err err = { "" };
    PGresult *res;

    /* Never relay while our own sends are unacknowledged: they would go
     * out twice. */
    if (bc_publisher_inflight(s->pub) > 0)
        return;
    if (!(res = bc_pg_exec(s->pg, "outbox_mark", 0, NULL, &err)))
        return;
    /* The scan ends at the id handed out relay_after_ms ago (bc_marks.h):
     * B2 read the young rows publishers are about to delete, 45-86 ms a
     * relay. A row whose transaction began long before its insert gets a
     * later id; it is relayed once the marks catch up with it. */
    snprintf(upto, sizeof upto, "%lld",
             bc_marks_bound(&s->marks, bc_now_ms(), s->relay_after_ms,
                            strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    PQclear(res);
    snprintf(after, sizeof after, "%ld", s->relay_after_ms);
    const char *p[] = { s->jobs_topic, s->results_topic, s->region, after, upto };
    if (!(res = bc_pg_exec(s->pg, "stragglers", 5, p, &err)))
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

/* Counts the prefix-to-time-zone map for scheduler_tz_prefixes, on every
 * replica (the map is the database's, not the leader's): once a minute,
 * every 5 s while it is empty, so a tz-load shows at once. Without it
 * calling hours read every number on its batch's time zone, UTC unless
 * set: a US number could be called at night. So while it is empty and a
 * tenant has legal hours on, a warning once a minute, and the alert
 * BatchcallTimeZoneMapEmpty (deploy/prometheus/batchcall-rules.yaml). */
static void tz_map_check(bc_scheduler *s, long long now)
{
    PGresult *res;
    long long n, tenants;

    if (now < s->next_tz)
        return;
    s->next_tz = now + 5000;
    if (!(res = bc_pg_exec(s->pg, "tz_prefixes", 0, NULL, NULL)))
        return;
    n = bc_pg_int(res, 0, "prefixes", 0);
    tenants = bc_pg_int(res, 0, "legal_tenants", 0);
    PQclear(res);
    bc_metric_set(s->m_tz_prefixes, (double)n);
    if (n > 0) {
        s->next_tz = now + 60000;
        return;
    }
    if (tenants > 0 && now >= s->next_tz_warn) {
        s->next_tz_warn = now + 60000;
        bc_log(s->ctx->log, BC_WARN, "tz.map_empty", "{s:i,s:I}", "prefixes", 0,
               "legal_hours_tenants", (json_int_t)tenants);
    }
}

/* 1 if pg's connection is up and is the one that listens on the slots
 * channel: a reconnect's new backend has lost the LISTEN. */
static int listening(const bc_scheduler *s, PGconn *c)
{
    return c && PQstatus(c) == CONNECTION_OK && PQbackendPID(c) == s->listen_pid;
}

/* Listens on the slots channel (bc_lease.h) for the passes' waits
 * (bc_scheduler_wait), once per connection. */
static void listen_slots(bc_scheduler *s)
{
    PGresult *res;

    if (listening(s, bc_pg_conn(s->pg)))
        return;
    /* The statement may reconnect first: the backend is read after it. */
    if ((res = bc_pg_exec_sql(s->pg, "LISTEN " BC_LEASE_SLOTS_CHANNEL, 0, NULL, NULL)))
        s->listen_pid = PQbackendPID(bc_pg_conn(s->pg));
    PQclear(res);
}

int bc_scheduler_tick(bc_scheduler *s)
{
    long long now = bc_now_ms();
    bc_err err = { "" };

    s->pass_at = now;

    if (!bc_pg_alive(s->pg) && s->leader) {
        /* The session that held the lock is gone, and the lock with it. */
        s->leader = 0;
        bc_metric_set(s->m_live, 0);   /* the next leader reports them */
        bc_metric_set(s->m_live_limit, 0);
        bc_metric_set(s->m_waiting_region, 0);
        bc_metric_set(s->m_workers, 0);
        bc_log(s->ctx->log, BC_WARN, "scheduler.lost_leadership", NULL);
    }
    tz_map_check(s, now);
    if (!s->leader) {
        if (now < s->next_try)
            return 0;
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
            return 0;
    }
    listen_slots(s);
    /* Slots given back go at once to the batches waiting for them:
     * admitted ones holding fewer than they can use first (grow, oldest
     * first), then those still pending. Else grow runs once a second. */
    int grew = give_back(s) > 0;
    if (grew)
        grow(s);
    admission(s);
    top_up(s, now);
    if (now >= s->next_relay) {
        relay(s);
        s->next_relay = now + 1000;
    }
    /* Once a second: each finds nothing on almost every pass, and each
     * pass cost a scan (B2, pg_stat_statements: expiry 1.6 ms and the
     * credits resume 3 ms, twenty times a second). A second is well
     * inside what a latest_at or a top-up promises. */
    if (now >= s->next_reap) {
        bc_expiry_run(s->exp);
        credits_resume(s);
        reap(s);
        unclaim_paused(s);
        if (!grew)
            grow(s);
        const char *r[] = { s->region };
        if (bc_pg_run(s->pg, "workers_forget", 1, r, &err) < 0)
            bc_log(s->ctx->log, BC_WARN, "workers.forget_failed", "{s:s}", "error", err.msg);
        if (bc_pg_run(s->pg, "idempotency_forget", 0, NULL, &err) < 0)
            bc_log(s->ctx->log, BC_WARN, "idempotency.forget_failed", "{s:s}", "error", err.msg);
        bc_reconcile_run(s->rec);
        bc_reconcile_quiet(s->rec, s->quiet_s);
        bc_reconcile_hangups(s->rec, s->hangup_again_s);
        s->next_reap = now + 1000;
    }
    if (bc_publisher_tick(s->pub, s->pg, &err) < 0)
        bc_log(s->ctx->log, BC_WARN, "outbox.delete_failed", "{s:s}", "error", err.msg);
    /* Last: a pass counted is a pass done, which tests wait on. */
    bc_metric_add(s->m_ticks, 1);
    return grew;
}

/* 1 if a notification for this region's slots is among those received. */
static int slots_notified(bc_scheduler *s, PGconn *c)
{
    PGnotify *n;
    int hit = 0;

    while ((n = PQnotifies(c))) {
        hit |= !strcmp(n->extra, s->region);
        PQfreemem(n);
    }
    return hit;
}

int bc_scheduler_wait(bc_scheduler *s, long ms)
{
    PGconn *c = bc_pg_conn(s->pg);
    long long until = bc_now_ms() + ms, left;

    while ((left = until - bc_now_ms()) > 0) {
        struct pollfd p = { .fd = c ? PQsocket(c) : -1, .events = POLLIN };
        int r;

        /* A standby (or a leader whose connection broke) sleeps it out. */
        if (!s->leader || !listening(s, c) || p.fd < 0) {
            usleep((useconds_t)(left * 1000));
            return 0;
        }
        if (slots_notified(s, c)) {
            /* Ends come in streams: woken, a pass at most every
             * BC_SCHEDULER_HANDOVER_MS (each costs a few ms of queries). */
            left = s->pass_at + BC_SCHEDULER_HANDOVER_MS - bc_now_ms();
            if (left > 0)
                usleep((useconds_t)(left * 1000));
            return 1;
        }
        r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            return 0;      /* a signal: the caller looks at why */
        if (r < 0) {
            usleep((useconds_t)(left * 1000));
            return 0;
        }
        if (r == 0)
            return 0;      /* the time is up */
        if (!PQconsumeInput(c)) {
            /* The connection broke: the next pass reconnects. */
            usleep((useconds_t)(left * 1000));
            return 0;
        }
    }
    return 0;
}
