#include "bc_ends.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_credits.h"
#include "bc_json.h"
#include "bc_lease.h"
#include "bc_retry.h"
#include "bc_topup.h"

/* Outcome labels of worker_calls_finished_total: the carrier's final
 * statuses, and "other" for anything else (the label set stays bounded). */
static const char *const OUTCOMES[BC_OUTCOMES] = { "completed", "busy", "no-answer", "failed",
                                                   "canceled", "other" };

const bc_pg_stmt bc_ends_stmts[] = {
    /* The ends of the attempts of one turn, in one statement: each call's
     * final status, its lease freed (only if the token still matches), its
     * recipient finished or queued for a retry, and its call-result event
     * in the outbox (keyed by batch id). A call already ended returns no
     * row. The retry policy (sql/0011_retry_policy.sql) is the recipient's
     * over the batch's: an attempt is retried when its outcome is in
     * retry_on and retries are left, after the policy's wait (else the
     * default back-off: $3 * 2^(attempt-1), jittered). A voicemail not in
     * retry_on is a completed call; one in it that runs out of retries
     * failed, as a busy one does, so a manual retry dials it again. A
     * paused batch's retries are queued too: only admitted batches are
     * released, so they wait for the resume (a cancelled one's are not).
     * A call's progress and answering-machine verdict that came in the
     * same turn as its end are folded into its row (bc_ends_fold) and
     * written here as their own statements would have written them: the
     * statuses it had not reached ("pre") join its history before its end,
     * in order, with its answer's time; the verdict ("vab"), the first one
     * only, as amd_many records it. The recipient goes straight to its
     * final status. The verdict's hang-up is not asked for: the call has
     * ended.
     * $1 [{"id","status","dur","reason","sid","out" outcome,"ab" answered by,"err",
     *      "pre" [statuses],"vab" the verdict's answered by}]
     * $2 results topic $3 retry base seconds $4 also publish v1 events
     * $5 publish v2 events */
    { "call_end_many",
      "WITH e AS (SELECT e.* FROM list_rows($1::jsonb) x, jsonb_to_record(x)"
      "             AS e(id text, status text, dur int, reason text, sid text, out text,"
      "                  ab text, err text, pre jsonb, vab text)),"
      " c AS (UPDATE calls SET status = e.status, ended_at = now(), duration_s = e.dur,"
      "        history = history || coalesce((SELECT jsonb_agg(jsonb_build_object("
      "                    'status', s, 'at', rfc3339_ms(now())) ORDER BY call_status_rank(s))"
      "                  FROM (SELECT DISTINCT s FROM jsonb_array_elements_text(e.pre) s) p"
      "                 WHERE call_status_rank(s) > call_status_rank(calls.status)), '[]')"
      "                          || jsonb_build_object('status', e.status, 'at', rfc3339_ms(now())),"
      /* A call that ended completed was answered (Twilio's meaning of
       * completed): without the answered callback (--carrier-events
       * completed) its answer is its end less its duration, never before
       * its dial (a duration is whole seconds, rounded up), so
       * batch-call's picked_up and the v3 event count it all the same. */
      "        answered_at = CASE WHEN e.pre ? 'in-progress' AND call_status_rank(calls.status)"
      "                                < call_status_rank('in-progress')"
      "                           THEN now()"
      "                           WHEN calls.answered_at IS NULL AND e.status = 'completed'"
      "                           THEN greatest(calls.created_at,"
      "                                         now() - make_interval(secs => coalesce(e.dur, 0)))"
      "                           ELSE calls.answered_at END,"
      /* With AsyncAmd the verdict came before the end (amd_many, or
       * folded here), not on it: a completed call a machine took is a
       * voicemail either way. */
      "        end_reason = CASE WHEN e.status = 'completed'"
      "                           AND coalesce(e.ab, CASE WHEN calls.amd_at IS NULL THEN e.vab END,"
      "                                        calls.answered_by) LIKE 'machine%'"
      "                          THEN 'voicemail' ELSE e.reason END,"
      "        carrier_call_id = coalesce(carrier_call_id, e.sid),"
      "        answered_by = coalesce(e.ab, CASE WHEN calls.amd_at IS NULL THEN e.vab END,"
      "                               calls.answered_by),"
      "        amd_at = CASE WHEN calls.amd_at IS NULL AND e.vab IS NOT NULL THEN now()"
      "                      ELSE calls.amd_at END,"
      "        voicemail_action = CASE WHEN calls.amd_at IS NOT NULL OR e.vab IS NULL"
      "                                THEN calls.voicemail_action"
      "                                WHEN e.vab LIKE 'machine%'"
      "                                THEN coalesce((SELECT vb.voicemail->>'action' FROM batches vb"
      "                                                WHERE vb.id = calls.batch_id), 'agent') END,"
      /* Its money (bc_credits.h): what an answered call costs, settled
       * below with the release of its hold, in this statement that ends
       * it once. */
      "        billed_min = CASE WHEN calls.hold_cents IS NOT NULL AND e.status = 'completed'"
      "                          THEN " BC_SQL_CREDITS_MINUTES("e.dur") " END,"
      "        cost_cents = CASE WHEN calls.hold_cents IS NOT NULL THEN "
      BC_SQL_CREDITS_COST("e.status", BC_SQL_CREDITS_MINUTES("e.dur"),
                          "calls.price_per_min_cents", "calls.hold_cents")
      "                     END"
      "        FROM e WHERE calls.id = e.id AND call_status_rank(calls.status) < 9"
      "      RETURNING calls.id, calls.recipient_id, calls.batch_id, calls.tenant_id,"
      "                calls.attempt, calls.lease_slot, calls.lease_token, calls.to_number,"
      "                calls.from_number, calls.duration_s, calls.answered_by,"
      "                e.status AS final_status, calls.end_reason AS reason,"
      "                CASE WHEN e.out = 'completed' AND calls.answered_by LIKE 'machine%'"
      "                     THEN 'voicemail' ELSE e.out END AS out, e.err,"
      "                to_jsonb(calls) AS cj, calls.hold_cents, calls.cost_cents,"
      "                calls.billed_min, calls.price_per_min_cents),"
      " l AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL"
      "         FROM c WHERE leases.batch_id = c.batch_id AND leases.slot = c.lease_slot"
      "          AND leases.token = c.lease_token RETURNING c.id),"
      BC_SQL_CREDITS_SETTLE_CTES("c") ","
      " p AS (SELECT c.id, c.recipient_id, c.out, c.reason, c.err, x.policy,"
      "              retry_listed(x.policy, c.out) AS listed,"
      "              rr.attempts <= coalesce(rr.max_retries, b.max_retries)"
      "                AND b.state IN ('admitted', 'paused') AS more"
      "         FROM c JOIN recipients rr ON rr.id = c.recipient_id AND rr.last_call_id = c.id"
      "         JOIN batches b ON b.id = c.batch_id,"
      "         LATERAL (SELECT retry_policy_of(b.retry_policy, rr.retry_policy) AS policy) x),"
      " r AS (UPDATE recipients rr SET"
      "        status = CASE WHEN p.listed AND p.more THEN 'queued'"
      "                      WHEN p.out = 'completed' OR (p.out = 'voicemail' AND NOT p.listed)"
      "                        THEN 'completed' ELSE 'failed' END,"
      "        next_attempt_at = CASE WHEN p.listed AND p.more THEN bc_now() + make_interval("
      "          secs => coalesce(retry_delay_s(p.policy, rr.attempts),"
      "                           $3::float8 * power(2, rr.attempts - 1) * (0.5 + random()))) END,"
        "        released = false, end_reason = p.reason,"
      "        error_message = coalesce(p.err, policy_message(p.reason)), updated_at = now()"
      "        FROM p WHERE rr.id = p.recipient_id AND rr.last_call_id = p.id"
      "       RETURNING rr.id, rr.status, rr.next_attempt_at),"
      " ev AS (SELECT c.*, r.status AS rstatus, r.next_attempt_at,"
      "               EXISTS (SELECT 1 FROM l WHERE l.id = c.id) AS released"
      "          FROM c LEFT JOIN r ON r.id = c.recipient_id)"
      " INSERT INTO outbox (topic, key, payload) "
      BC_SQL_CALL_RESULT_ROWS("ev", "$2", "$4::boolean", "$5::boolean")
      " RETURNING id, topic, key, payload" },
    /* The scheduler's wake-up (bc_lease.h). $1 region */
    { "slots_notify", "SELECT pg_notify('" BC_LEASE_SLOTS_CHANNEL "', $1)" },
    /* Ends call_end_many could not record: each call's lease stops being
     * renewed and lapses shortly, as after dial_unknown, so the reconciler
     * asks the carrier: a call it placed ends with the carrier's status, one
     * it never placed (refused, failed here) is given back with its credit
     * hold. Left renewed, a call the carrier never had stayed open while
     * this worker lived: no sweep finds it at the carrier. Whoever holds
     * the lease: a call's carrier events come to the worker that reads its
     * partition, not always the one that dialed it, and an end lost while
     * the dialer renewed its lease waited for the quiet-call sweep (300 s:
     * test_dispatch's worker-killed test timed out on three such calls).
     * $1 the ends [{"id",...}] */
    { "ends_lapse",
      "UPDATE leases SET holder = NULL, expires_at = now() + interval '2 seconds'"
      " WHERE call_id IN (SELECT e->>'id' FROM jsonb_array_elements($1::jsonb) e)" },
    { 0, 0 },
};

void bc_ends_metrics(bc_worker *w)
{
    for (int i = 0; i < BC_OUTCOMES; i++) {
        char lb[48];

        snprintf(lb, sizeof lb, "outcome=\"%s\"", OUTCOMES[i]);
        w->m_outcome[i] = bc_metrics_get(w->ctx->metrics, BC_COUNTER,
                                         "worker_calls_finished_total",
                                         "Attempts ended, by the carrier's final status", lb,
                                         NULL, 0);
    }
}

/* The end gathered this turn for call id, or NULL. A turn gathers a few
 * hundred ends and looks each call up once per event: by a scan of the
 * array, that was 4 % of a B2 profile of the worker and scheduler. */
static json_t *end_of(bc_worker *w, const char *id)
{
    return id ? json_object_get(w->ends_by_id, id) : NULL;
}

static void end_gather(bc_worker *w, const char *id, json_t *end)
{
    json_object_set(w->ends_by_id, id, end);
    json_array_append_new(w->ends, end);
}

static void ends_clear(bc_worker *w)
{
    json_array_clear(w->ends);
    json_object_clear(w->ends_by_id);
}

/* The carrier's id, where the end came without it. */
static void fill_sid(json_t *end, json_t *from)
{
    json_t *sid = json_object_get(from, "sid");

    if (!json_object_get(end, "sid") && json_is_string(sid))
        json_object_set(end, "sid", sid);
}

/* A progress event's status joins its end's "pre" (its history before the
 * end). */
static void fold_progress(json_t *end, json_t *p)
{
    json_t *pre = json_object_get(end, "pre");

    if (!pre)
        json_object_set_new(end, "pre", pre = json_array());
    json_array_append(pre, json_object_get(p, "status"));
}

/* A verdict becomes its end's "vab": the first one counts, as in amd_many. */
static void fold_amd(json_t *end, json_t *a)
{
    if (!json_object_get(end, "vab"))
        json_object_set(end, "vab", json_object_get(a, "ab"));
}

/* Moves each entry of arr (keyed by "id") whose call has a gathered end
 * into that end, by fold. */
static void fold_into_ends(bc_worker *w, json_t *arr, void (*fold)(json_t *end, json_t *ev))
{
    size_t i = 0;

    while (i < json_array_size(arr)) {
        json_t *ev = json_array_get(arr, i);
        json_t *e = end_of(w, json_string_value(json_object_get(ev, "id")));

        if (!e) {
            i++;
            continue;
        }
        fold(e, ev);
        fill_sid(e, ev);
        json_array_remove(arr, i);
    }
}

void bc_ends_fold(bc_worker *w)
{
    if (!json_array_size(w->ends))
        return;
    fold_into_ends(w, w->progress, fold_progress);
    fold_into_ends(w, w->amds, fold_amd);
}

int bc_ends_touch(bc_worker *w, json_t *arr, const char *field)
{
    size_t i;
    json_t *e;

    if (json_array_size(w->ends) == 0)
        return 0;
    json_array_foreach(arr, i, e)
        if (end_of(w, json_string_value(json_object_get(e, field))))
            return 1;
    return 0;
}

void bc_ends_add(bc_worker *w, const char *call, const char *status, int duration,
                 const char *end_reason, const char *sid, const char *answered_by,
                 const char *error)
{
    if (end_of(w, call)) {
        bc_metric_add(w->m_dup_events, 1);   /* a repeat in the same turn */
        return;
    }
    end_gather(w, call, json_pack("{s:s,s:s,s:i,s:s,s:s?,s:s,s:s?,s:s?}", "id", call, "status",
                                  status, "dur", duration, "reason", end_reason, "sid", sid,
                                  "out", bc_retry_outcome(status, answered_by), "ab",
                                  answered_by, "err", error));
}

void bc_ends_failed(bc_worker *w, const char *call, const char *end_reason, const char *error)
{
    bc_ends_add(w, call, "failed", 0, end_reason, NULL, NULL, error);
}

void bc_ends_blocked(bc_worker *w, const char *call, const char *batch, const char *reason)
{
    char labels[96];

    if (end_of(w, call))
        return;
    end_gather(w, call, json_pack("{s:s,s:s,s:i,s:s,s:s}", "id", call, "status", "failed",
                                  "dur", 0, "reason", reason, "out", reason));
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    bc_metrics_inc(w->ctx->metrics, "worker_recipients_blocked_total",
                   "Attempts the tenant's policy stopped at dial time, never dialed", labels, 1);
    bc_log(w->ctx->log, BC_INFO, "dial.blocked", "{s:s,s:s,s:s}", "call_id", call, "batch_id",
           batch, "reason", reason);
}

/* Counts the outcome of an ended call's v2 event and frees its slot for
 * the jobs waiting here (bc_wbatch_slot_freed). Returns 1 if its batch is
 * draining: no job of it waits here. */
static int ended(bc_worker *w, const char *batch, const char *payload, long long now)
{
    json_t *doc = json_loads(payload, 0, NULL);
    const char *st = json_string_value(json_object_get(doc, "carrier_status"));
    int i = 0, draining;

    while (i < BC_OUTCOMES - 1 && (!st || strcmp(st, OUTCOMES[i])))
        i++;
    bc_metric_add(w->m_outcome[i], 1);
    draining = bc_wbatch_slot_freed(bc_intake_batches(w->intake), batch,
                                    json_string_value(json_object_get(doc, "tenant_id")),
                                    now + BC_HANDOVER_TRY_MS);
    json_decref(doc);
    return draining;
}

/* The calls of ends (a JSON array) that could not be recorded go to the
 * reconciler (ends_lapse). If this fails too (the database is away), their
 * leases lapse only if renewals fail as well; the quiet-call sweep still
 * ends those the carrier placed. */
static void lapse(bc_worker *w, const char *ends)
{
    bc_err err = { "" };
    const char *p[] = { ends };

    if (bc_pg_run(w->pg, "ends_lapse", 1, p, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "call.lapse_failed", "{s:s}", "error", err.msg);
}

int bc_ends_flush(bc_worker *w)
{
    char base[32];
    bc_err err = { "" };
    PGresult *res;
    char *doc;
    size_t n = json_array_size(w->ends), nended, per;
    long long now;
    int draining = 0;

    if (n == 0)
        return 0;
    /* In call id order, as every statement of the worker's that writes
     * several calls: another worker's may hold some of the same calls. */
    bc_json_sort_by(w->ends, "id");
    doc = json_dumps(w->ends, JSON_COMPACT);
    snprintf(base, sizeof base, "%.3f", (double)w->retry_base_ms / 1000.0);
    const char *p[] = { doc, w->results_topic, base, w->result_v1 ? "t" : "f",
                        w->result_v2 ? "t" : "f" };
    res = doc ? bc_pg_exec(w->pg, "call_end_many", 5, p, &err) : NULL;
    if (!res && doc && !strcmp(bc_pg_sqlstate(w->pg), "40P01"))
        /* A deadlock: the other statement went on, so once more. */
        res = bc_pg_exec(w->pg, "call_end_many", 5, p, &err);
    if (!res) {
        bc_log(w->ctx->log, BC_ERROR, "call.end_failed", "{s:I,s:s}", "calls", (json_int_t)n,
               "error", doc ? err.msg : "out of memory");
        if (doc)
            lapse(w, doc);
        free(doc);
        ends_clear(w);
        return -1;
    }
    free(doc);
    ends_clear(w);
    /* An event row per ended call for each version published: v3 always,
     * v2 and v1 as configured. */
    per = 1 + (size_t)w->result_v1 + (size_t)w->result_v2;
    nended = (size_t)PQntuples(res) / per;
    bc_metric_add(w->m_dup_events, (double)(n - nended));   /* already ended */
    if (bc_publisher_outbox_rows(w->pub, res, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "publish.deferred", "{s:s}", "error", err.msg);
    /* The v3 rows come last, one per ended call. */
    now = bc_now_ms();
    for (int i = (int)(nended * (per - 1)); i < PQntuples(res); i++) {
        const char *batch = bc_pg_val(res, i, "key");

        draining |= ended(w, batch, bc_pg_val(res, i, "payload"), now);
        bc_topup_want(w, batch);
    }
    PQclear(res);
    /* A draining batch's slots go to its tenant's other batches at the
     * scheduler's next pass: tell it to come now, not in up to tick-ms. */
    if (draining && bc_pg_run(w->pg, "slots_notify", 1, (const char *[]){ w->region }, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "slots.notify_failed", "{s:s}", "error", err.msg);
    return 0;
}
