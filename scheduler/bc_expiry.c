#include "bc_expiry.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypto.h"
#include "bc_kafka.h"
#include "bc_sql.h"

/* Why a queued recipient r of batch b (SQL aliases) past its latest_at is
 * stopped rather than expired, or NULL (sql/0031_stop_reasons.sql). */
#define STOP_REASON(b) \
    "expiry_stop_reason(window_wait, legal_opens, " b ".latest_at, " b ".state, " \
    b ".pause_reason)"

const bc_pg_stmt bc_expiry_stmts[] = {
    /* Expiry of a recipient the tenant's policy held back (sql/0031): one
     * waiting for a legal opening at or after its batch's latest_at, or in
     * a batch paused for credits, is stopped for that reason instead of
     * expiring (expire_stop, below). $1 region. Up to 5,000 a pass; the
     * plain expiry leaves the rest for the next. */
    { "expire_stop_find",
      "WITH b AS MATERIALIZED (SELECT id, latest_at, state, pause_reason FROM batches"
      "            WHERE region = $1 AND latest_at IS NOT NULL AND NOT expiry_done"
      "              AND latest_at <= bc_now())"
      " SELECT q.id FROM b,"
      "        LATERAL (SELECT id FROM recipients WHERE batch_id = b.id"
      "                 AND status = 'queued' AND " STOP_REASON("b") " IS NOT NULL"
      "                 OFFSET 0) q"
      " LIMIT 5000" },
    /* Stops those recipients as the worker's dial-time gate stops a listed
     * number (worker/bc_ends.c): the attempt is a call row that never
     * reached the carrier, 'failed' with the reason as its end reason; the
     * recipient ends 'failed' with the reason's message (policy_message);
     * its call-result events (v2 when $4, v1 when $3, v3) go to the outbox, and
     * from them its call.failed webhook. The reason is read again here, so
     * a recipient resumed, cancelled or claimed meanwhile is left alone.
     * $1 [{"r" recipient, "c" call id}] $2 results topic $3 also v1
     * $4 v2 beside v3.
     * Returns the outbox rows. */
    { "expire_stop",
      "WITH j AS (SELECT j.* FROM list_rows($1::jsonb) x,"
      "             jsonb_to_record(x) AS j(r text, c text)),"
      " s AS MATERIALIZED (SELECT j.r, j.c, " STOP_REASON("b") " AS reason,"
      "                           b.from_number AS bfrom, b.agent_id"
      "          FROM j JOIN recipients rr ON rr.id = j.r JOIN batches b ON b.id = rr.batch_id"
      "         WHERE rr.status = 'queued' AND b.latest_at <= bc_now()),"
      " r AS (UPDATE recipients rr SET status = 'failed', end_reason = s.reason,"
      "              error_message = policy_message(s.reason), attempts = rr.attempts + 1,"
      "              last_call_id = s.c, released = false, window_wait = false,"
      "              legal_opens = NULL, next_attempt_at = NULL, updated_at = now()"
      "         FROM s WHERE rr.id = s.r AND s.reason IS NOT NULL"
      "          AND coalesce(rr.status, '') = 'queued'"
      "       RETURNING rr.id, rr.batch_id, rr.tenant_id, rr.attempts, rr.to_number,"
      "                 coalesce(rr.from_number, s.bfrom) AS from_number, s.c, s.reason,"
      "                 s.agent_id),"
      " c AS (INSERT INTO calls (id, recipient_id, batch_id, tenant_id, attempt, status,"
      "                          to_number, from_number, end_reason, duration_s, history,"
      "                          agent_id, ended_at)"
      "       SELECT r.c, r.id, r.batch_id, r.tenant_id, r.attempts, 'failed', r.to_number,"
      "              r.from_number, r.reason, 0, jsonb_build_array(jsonb_build_object("
      "                'status', 'failed', 'at', rfc3339_ms(now()))), r.agent_id, now()"
      "         FROM r"
      "       RETURNING calls.*, to_jsonb(calls) AS cj),"
      " ev AS (SELECT id, batch_id, tenant_id, recipient_id, attempt, status AS final_status,"
      "               end_reason AS reason, answered_by, duration_s, to_number, from_number,"
      "               'failed' AS rstatus, NULL::timestamptz AS next_attempt_at,"
      "               false AS released, cj FROM c)"
      " INSERT INTO outbox (topic, key, payload) "
      BC_SQL_CALL_RESULT_ROWS("ev", "$2", "$3::boolean", "$4::boolean")
      " RETURNING id, topic, key, payload" },
    /* Expiry: every recipient still queued (waiting its turn, a window or
     * a retry) in a batch past its latest_at, and not held by the tenant's
     * policy (above), ends as 'expired', with the reason. Conditional on
     * 'queued', so a claim that won the row first keeps it (its call goes
     * out; the release stopped handing out new ones at latest_at). On the
     * clock calling hours use (bc_now()). */
    /* The recipients are found from the expired batches, by batch_id:
     * joined the other way the planner had walked every active recipient
     * of the region on each sweep (B2: 3.6 ms a tick with none expired;
     * B5, 1,000,000 waiting: 38 ms). The update goes by key (= ANY of the
     * ids found, with coalesce() keeping it off the partial index
     * recipients_active), so with nothing expired it reads nothing. */
    { "expire",
      "WITH b AS MATERIALIZED (SELECT id, latest_at, state, pause_reason FROM batches"
      "            WHERE region = $1 AND latest_at IS NOT NULL AND NOT expiry_done"
      "              AND latest_at <= bc_now()),"
      " q AS MATERIALIZED (SELECT q.id, b.latest_at FROM b,"
      "            LATERAL (SELECT id FROM recipients WHERE batch_id = b.id"
      "                     AND status = 'queued' AND " STOP_REASON("b") " IS NULL"
      "                     OFFSET 0) q),"
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
     * time gets it once. The batches are chosen first (due, behind OFFSET
     * 0, as the scheduler's probes: bc_scheduler.c, "running"); their
     * own conditions are repeated outside, so a batch a retry changed
     * meanwhile is checked again on the row the update locks. */
    { "expiry_done",
      "WITH d AS (UPDATE batches b SET expiry_done = true"
      "   FROM (SELECT c.id FROM (SELECT id FROM batches WHERE region = $1"
      "                             AND latest_at IS NOT NULL AND NOT expiry_done"
      "                             AND latest_at <= bc_now() OFFSET 0) c"
      "          WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.batch_id = c.id"
      "                            AND r.status IN ('queued', 'dispatched', 'started')"
      "                            OFFSET 0)) due"
      "  WHERE b.id = due.id AND b.latest_at IS NOT NULL AND NOT b.expiry_done"
      "    AND b.latest_at <= bc_now()"
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
    { 0, 0 },
};

struct bc_expiry {
    bc_ctx *ctx;
    bc_pg *pg;
    bc_publisher *pub;
    char region[16], results_topic[160];
    int result_v1;   /* also publish call-results as v1 */
    int result_v2;   /* publish call ends as v2 beside v3 */
    bc_metric *m_expired;
};

bc_expiry *bc_expiry_new(bc_ctx *ctx, bc_pg *pg, bc_publisher *pub, bc_err *err)
{
    bc_expiry *x = calloc(1, sizeof *x);

    if (!x) {
        bc_err_set(err, "expiry: out of memory");
        return NULL;
    }
    x->ctx = ctx;
    x->pg = pg;
    x->pub = pub;
    snprintf(x->region, sizeof x->region, "%s", bc_config_str(ctx->cfg, "region"));
    bc_kafka_topic(x->results_topic, sizeof x->results_topic,
                   bc_config_str(ctx->cfg, "topic-prefix"), "call-results", NULL);
    x->result_v1 = bc_config_bool(ctx->cfg, "call-result-v1");
    x->result_v2 = bc_config_bool(ctx->cfg, "call-result-v2");
    x->m_expired = bc_metrics_get(ctx->metrics, BC_COUNTER, "scheduler_recipients_expired_total",
                                  "Recipients not dialed by their batch's latest_at, ended as"
                                  " expired", NULL, NULL, 0);
    return x;
}

void bc_expiry_free(bc_expiry *x)
{
    free(x);
}

/* Counts and logs the recipients expire_stop ended, from its v3 outbox
 * rows (one per stopped recipient, whichever other versions go out): a
 * counter per reason, a log line per batch and reason. */
static void stopped_report(bc_expiry *x, PGresult *res)
{
    json_t *by = json_object(), *v;
    const char *k;

    for (int i = 0; i < PQntuples(res); i++) {
        json_t *ev = json_loads(bc_pg_val(res, i, "payload"), 0, NULL);
        const char *schema = json_string_value(json_object_get(ev, "schema"));
        const char *reason = json_string_value(json_object_get(ev, "end_reason"));
        char labels[96], key[160];

        if (schema && reason && !strcmp(schema, "batchcall.call-result/v3")) {
            snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
            bc_metrics_inc(x->ctx->metrics, "scheduler_recipients_blocked_total",
                           "Recipients the tenant's policy held back until their batch's"
                           " latest_at, ended with its reason, never dialed", labels, 1);
            snprintf(key, sizeof key, "%s %s", bc_pg_val(res, i, "key"), reason);
            json_object_set_new(by, key, json_integer(json_integer_value(
                                             json_object_get(by, key)) + 1));
        }
        json_decref(ev);
    }
    json_object_foreach(by, k, v) {
        const char *sp = strchr(k, ' ');
        bc_log(x->ctx->log, BC_INFO, "batch.expiry_stopped", "{s:s%,s:s,s:I}", "batch_id", k,
               (size_t)(sp - k), "reason", sp + 1, "recipients", json_integer_value(v));
    }
    json_decref(by);
}

/* Stops what the tenant's policy held back until its batch's latest_at
 * (see "expire_stop_find" and "expire_stop"), before the plain expiry. */
static void expire_stop(bc_expiry *x)
{
    const char *p[] = { x->region };
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(x->pg, "expire_stop_find", 1, p, NULL);
    json_t *jobs;
    char *doc = NULL, call[40];
    int n;

    if (!res)
        return;
    n = PQntuples(res);
    jobs = json_array();
    for (int i = 0; i < n; i++) {
        if (bc_id_new(call, sizeof call, "ac") < 0)
            break;
        json_array_append_new(jobs, json_pack("{s:s,s:s}", "r", bc_pg_val(res, i, "id"),
                                              "c", call));
    }
    PQclear(res);
    res = NULL;
    if (json_array_size(jobs) > 0 && (doc = json_dumps(jobs, JSON_COMPACT))) {
        const char *q[] = { doc, x->results_topic, x->result_v1 ? "t" : "f",
                            x->result_v2 ? "t" : "f" };
        if ((res = bc_pg_exec(x->pg, "expire_stop", 4, q, &err))) {
            stopped_report(x, res);
            bc_publisher_outbox_rows(x->pub, res, NULL);
        } else {
            bc_log(x->ctx->log, BC_WARN, "expiry.stop_failed", "{s:s}", "error", err.msg);
        }
    }
    PQclear(res);
    free(doc);
    json_decref(jobs);
}

/* Stops, then expires, what the region's batches past their latest_at
 * left undialed, and marks the batches done (see "expiry_done"). */
void bc_expiry_run(bc_expiry *x)
{
    const char *p[] = { x->region };
    bc_err err = { "" };
    PGresult *res;

    expire_stop(x);
    if (!(res = bc_pg_exec(x->pg, "expire", 1, p, NULL)))
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        bc_metric_add(x->m_expired, (double)bc_pg_int(res, i, "n", 0));
        bc_log(x->ctx->log, BC_INFO, "batch.expired", "{s:s,s:I}", "batch_id",
               bc_pg_val(res, i, "batch_id"), "recipients", (json_int_t)bc_pg_int(res, i, "n", 0));
    }
    PQclear(res);
    /* Not marked done, the next sweep finds the same batches and ends
     * nothing more: only a repeat, so a warning. */
    if (bc_pg_run(x->pg, "expiry_done", 1, p, &err) < 0)
        bc_log(x->ctx->log, BC_WARN, "expiry.mark_failed", "{s:s}", "error", err.msg);
}

