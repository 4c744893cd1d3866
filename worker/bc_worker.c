#include "bc_worker.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_carrier.h"
#include "bc_crypto.h"
#include "bc_kafka.h"
#include "bc_lease.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_sql.h"

#define MAX_PARTS 256
#define NO_SLOT_RETRY_MS 20
/* Window top-ups of one batch are coalesced over this long: one release
 * statement per batch per interval, not one per ended call (each scans the
 * batch's backlog). The window (BC_WINDOW_MULTIPLE x the limit) covers it. */
#define TOPUP_EVERY_MS 20
#define MAX_TOPUPS 256
#define PACED_RETRY_MS 250

typedef struct job job;
struct job {
    job *next_wait;           /* in its batch's wait queue */
    job *next_part;           /* in its partition's offset order */
    rd_kafka_message_t *msg;  /* kept until its offset can be stored */
    int done;
    int attempt;
    char recipient[48], batch[48], tenant[48];
};

typedef struct wbatch wbatch;
struct wbatch {
    wbatch *next;
    char id[48];
    job *head, *tail;
    long long retry_at;       /* no slot free: try again then */
};

typedef struct part {
    int32_t partition;
    job *head, *tail;
} part;

/* A dial the carrier asked us to pace: the lease is kept, the call retried. */
typedef struct redial redial;
struct redial {
    redial *next;
    long long at;
    bc_dial d;
};

struct bc_worker {
    bc_ctx *ctx;
    bc_pg *pg;
    bc_kafka *jobs, *events;
    bc_publisher *pub;
    bc_carrier *carrier;
    char holder[96];
    char region[16];
    char jobs_topic[160], results_topic[160];
    const char *public_url;
    long max_in_hand, max_dials, lease_ttl_s, retry_base_ms;
    double cps, pace_tokens;     /* carrier pace: a token bucket; 0 = none */
    long long pace_at;
    long in_hand;
    int paused, draining, ready;
    wbatch *batches;
    part parts[MAX_PARTS];
    int nparts;
    redial *redials;
    json_t *progress;            /* progress events not yet written: [{id,status,sid}] */
    char topups[MAX_TOPUPS][48]; /* batches whose window wants topping up */
    int ntopups;
    long long next_topup;
    long long next_renew, next_outbox;
    bc_metric *m_claimed, *m_stale, *m_noslot, *m_dialed, *m_dial_failed, *m_dial_unknown,
              *m_paced, *m_finished, *m_in_hand, *m_events, *m_dup_events, *m_fenced,
              *m_not_dialed;
};

static const bc_pg_stmt stmts[] = {
    BC_PUBLISHER_STMT,
    /* Lease and claim in one statement: a slot is taken only if the
     * recipient's attempt is still queued, and the recipient is claimed only
     * if a slot was free; the call row records our attempt id before any
     * dial. $1 recipient $2 batch $3 attempt $4 call id $5 holder $6 ttl s */
    { "claim",
      "WITH b AS (SELECT id, from_number, ringing_timeout_s, max_call_duration_min"
      "             FROM batches WHERE id = $2 AND state = 'admitted'"
      "              AND in_calling_hours(calling_hours, timezone, now()) FOR SHARE),"
      " slot AS (SELECT l.batch_id, l.slot FROM leases l JOIN b ON l.batch_id = b.id"
      "           WHERE l.call_id IS NULL ORDER BY l.slot LIMIT 1"
      "           FOR UPDATE OF l SKIP LOCKED),"
      " r AS (UPDATE recipients SET status = 'dispatched', attempts = $3::int,"
      "              last_call_id = $4, updated_at = now()"
      "        WHERE id = $1 AND batch_id = $2 AND status = 'queued'"
      "          AND attempts = $3::int - 1 AND EXISTS (SELECT 1 FROM slot)"
      "        RETURNING id, tenant_id, to_number, from_number),"
      " l AS (UPDATE leases SET token = nextval('lease_token_seq'), holder = $5,"
      "              call_id = $4, expires_at = now() + make_interval(secs => $6::int)"
      "         FROM slot, r"
      "        WHERE leases.batch_id = slot.batch_id AND leases.slot = slot.slot"
      "        RETURNING leases.slot, leases.token)"
      " INSERT INTO calls (id, recipient_id, batch_id, tenant_id, attempt, status,"
      "                    lease_slot, lease_token, to_number, from_number, history)"
      " SELECT $4, r.id, $2, r.tenant_id, $3::int, 'claimed', l.slot, l.token,"
      "        r.to_number, coalesce(r.from_number, b.from_number),"
      "        jsonb_build_array(jsonb_build_object('status', 'claimed', 'at', rfc3339_ms(now())))"
      "   FROM r, l, b"
      " RETURNING id, tenant_id, to_number, from_number, lease_token,"
      "           (SELECT ringing_timeout_s FROM b) AS ring,"
      "           (SELECT max_call_duration_min FROM b) AS max_min" },
    /* Why a claim did not happen: stale job, or only no free slot. */
    { "claim_why",
      "SELECT r.status = 'queued' AND r.attempts = $2::int - 1"
      "       AND b.state = 'admitted' AS claimable,"
      "       in_calling_hours(b.calling_hours, b.timezone, now()) AS in_hours"
      "  FROM recipients r JOIN batches b ON b.id = r.batch_id WHERE r.id = $1" },
    /* Outside calling hours a job goes back to the backlog: the scheduler
     * releases it again when the hours open, and no worker holds it. */
    { "unrelease",
      "UPDATE recipients SET released = false, updated_at = now()"
      " WHERE id = $1 AND status = 'queued' AND attempts = $2::int - 1" },
    /* The last step before the carrier is asked: only while the batch is
     * still admitted (a cancel waits for this row lock, and a claim it beat
     * is never dialed) and only with the current lease token (a holder whose
     * lease was taken over is fenced off). $1 call $2 batch $3 token */
    { "dial_start",
      "WITH b AS (SELECT id FROM batches WHERE id = $2 AND state = 'admitted' FOR SHARE)"
      " UPDATE calls SET status = 'dialing',"
      "        history = history || jsonb_build_object('status', 'dialing', 'at', rfc3339_ms(now()))"
      "  WHERE id = $1 AND status = 'claimed' AND lease_token = $3::bigint"
      "    AND EXISTS (SELECT 1 FROM b)"
      "    AND EXISTS (SELECT 1 FROM leases l WHERE l.batch_id = $2"
      "                AND l.slot = calls.lease_slot AND l.token = $3::bigint)"
      " RETURNING id" },
    /* A claim dial_start refused while its token is still current: the
     * batch was cancelled after the claim and the cancel's statement could
     * not see it (it read before the claim committed). Settle it here.
     * $1 call $2 token */
    { "claim_cancel",
      "WITH c AS (UPDATE calls SET status = 'canceled', end_reason = 'api_cancelled',"
      "                 ended_at = now()"
      "            WHERE id = $1 AND status = 'claimed' AND lease_token = $2::bigint"
      "              AND EXISTS (SELECT 1 FROM batches b WHERE b.id = calls.batch_id"
      "                          AND b.state = 'cancelled')"
      "           RETURNING recipient_id, batch_id, lease_slot, lease_token),"
      " l AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL FROM c"
      "        WHERE leases.batch_id = c.batch_id AND leases.slot = c.lease_slot"
      "          AND leases.token = c.lease_token RETURNING 1)"
      " UPDATE recipients SET status = 'cancelled', updated_at = now() FROM c"
      "  WHERE recipients.id = c.recipient_id AND recipients.status = 'dispatched'" },
    /* Fenced like dial_start: a late answer of a dial whose lease was taken
     * over records nothing; the reconciler owns that call now. */
    { "dial_accepted",
      "UPDATE calls SET carrier_call_id = coalesce(carrier_call_id, $2),"
      "       status = CASE WHEN status = 'dialing' THEN 'queued' ELSE status END"
      " WHERE id = $1 AND lease_token = $3::bigint"
      "   AND EXISTS (SELECT 1 FROM leases l WHERE l.batch_id = calls.batch_id"
      "               AND l.slot = calls.lease_slot AND l.token = $3::bigint)"
      " RETURNING id" },
    /* The carrier may or may not have the call (5xx, timeout, no answer):
     * stop renewing and let the lease lapse shortly, so the reconciler asks
     * the carrier before anyone dials this attempt again. The grace lets a
     * create still in flight at the carrier land first. */
    { "dial_unknown",
      "UPDATE leases SET holder = NULL, expires_at = now() + interval '2 seconds'"
      " WHERE call_id = $1 AND token = $2::bigint RETURNING slot" },
    /* The progress events of one loop turn in one statement: each call
     * moves to its furthest status, its history gains every status it had
     * not reached, in order. $1 [{"id","status","sid"}] */
    { "call_progress_many",
      "WITH e AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS e(id text, status text, sid text)),"
      " b AS (SELECT id, max(sid) AS sid,"
      "              array_agg(DISTINCT status) AS sts,"
      "              (array_agg(status ORDER BY call_status_rank(status) DESC))[1] AS top"
      "         FROM e GROUP BY id),"
      " c AS (UPDATE calls SET status = b.top,"
      "        history = calls.history || coalesce((SELECT jsonb_agg(jsonb_build_object("
      "                    'status', s, 'at', rfc3339_ms(now())) ORDER BY call_status_rank(s))"
      "                  FROM unnest(b.sts) s"
      "                 WHERE call_status_rank(s) > call_status_rank(calls.status)), '[]'),"
      "        answered_at = CASE WHEN 'in-progress' = ANY(b.sts) THEN now() ELSE answered_at END,"
      "        carrier_call_id = coalesce(carrier_call_id, b.sid)"
      "       FROM b WHERE calls.id = b.id"
      "        AND call_status_rank(calls.status) < call_status_rank(b.top)"
      "      RETURNING calls.id, calls.recipient_id, calls.status)"
      " UPDATE recipients SET status = 'started', updated_at = now() FROM c"
      "  WHERE recipients.id = c.recipient_id AND recipients.last_call_id = c.id"
      "    AND recipients.status = 'dispatched' AND c.status = 'in-progress'" },
    /* The end of an attempt, in one statement: the call's final status, the
     * lease freed (only if the token still matches), the recipient finished
     * or queued for a retry, and the call-result event in the outbox.
     * $1 call $2 carrier status $3 duration $4 end reason $5 carrier sid
     * $6 retryable $7 retry base seconds $8 results topic $9 error message */
    { "call_end",
      "WITH c AS (UPDATE calls SET status = $2, ended_at = now(), duration_s = $3::int,"
      "        history = history || jsonb_build_object('status', $2::text, 'at', rfc3339_ms(now())),"
      "        end_reason = $4, carrier_call_id = coalesce(carrier_call_id, $5)"
      "      WHERE id = $1 AND call_status_rank(status) < 9"
      "      RETURNING id, recipient_id, batch_id, tenant_id, attempt, lease_slot,"
      "                lease_token, to_number, from_number, duration_s),"
      " l AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL"
      "         FROM c WHERE leases.batch_id = c.batch_id AND leases.slot = c.lease_slot"
      "          AND leases.token = c.lease_token RETURNING leases.slot),"
      " r AS (UPDATE recipients rr SET"
      "        status = CASE WHEN $6::bool AND rr.attempts <= coalesce(rr.max_retries, b.max_retries)"
      "                        AND b.state = 'admitted' THEN 'queued'"
      "                      WHEN $2 = 'completed' THEN 'completed' ELSE 'failed' END,"
      "        next_attempt_at = CASE WHEN $6::bool AND rr.attempts <= coalesce(rr.max_retries, b.max_retries)"
      "          THEN now() + make_interval(secs => $7::float8 * power(2, rr.attempts - 1)"
      "                                            * (0.5 + random())) END,"
      "        released = false, end_reason = $4, error_message = $9, updated_at = now()"
      "        FROM c, batches b"
      "       WHERE rr.id = c.recipient_id AND rr.last_call_id = c.id AND b.id = c.batch_id"
      "       RETURNING rr.status)"
      " INSERT INTO outbox (topic, key, payload)"
      " SELECT $8, c.batch_id, json_build_object('schema', 'batchcall.call-result/v1',"
      "        'call_id', c.id, 'batch_id', c.batch_id, 'tenant_id', c.tenant_id,"
      "        'recipient_id', c.recipient_id, 'attempt', c.attempt,"
      "        'carrier_status', $2, 'end_reason', $4, 'duration_s', c.duration_s,"
      "        'to_number', c.to_number, 'from_number', c.from_number,"
      "        'recipient_status', r.status, 'final', r.status <> 'queued',"
      "        'lease_released', EXISTS (SELECT 1 FROM l),"
      "        'ended_at', rfc3339(now()))::text"
      "   FROM c LEFT JOIN r ON true"
      " RETURNING id, topic, key, payload, (SELECT batch_id FROM c) AS batch_id" },
    { "release", BC_SQL_RELEASE },
    { "renew",
      "UPDATE leases SET expires_at = now() + make_interval(secs => $2::int)"
      " WHERE holder = $1 AND call_id IS NOT NULL" },
    { 0, 0 },
};

static long long now_ms(void) { return bc_now_ms(); }

/* ---- offsets ---------------------------------------------------------- */

static part *part_of(bc_worker *w, int32_t p)
{
    for (int i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == p)
            return &w->parts[i];
    if (w->nparts == MAX_PARTS)
        return NULL;
    w->parts[w->nparts].partition = p;
    return &w->parts[w->nparts++];
}

/* Stores the offset of every finished job at the front of its partition:
 * an offset is committed only when every job before it is durable too. */
static void advance(bc_worker *w, part *p)
{
    while (p->head && p->head->done) {
        job *j = p->head;

        p->head = j->next_part;
        if (!p->head)
            p->tail = NULL;
        bc_kafka_store(w->jobs, j->msg);
        rd_kafka_message_destroy(j->msg);
        free(j);
        w->in_hand--;
    }
}

static void job_done(bc_worker *w, job *j)
{
    j->done = 1;
    advance(w, part_of(w, j->msg->partition));
}

/* ---- intake ----------------------------------------------------------- */

static wbatch *batch_of(bc_worker *w, const char *id)
{
    wbatch *b;

    for (b = w->batches; b; b = b->next)
        if (!strcmp(b->id, id))
            return b;
    if (!(b = calloc(1, sizeof *b)))
        return NULL;
    snprintf(b->id, sizeof b->id, "%s", id);
    b->next = w->batches;
    w->batches = b;
    return b;
}

static void take_job(bc_worker *w, rd_kafka_message_t *m)
{
    json_t *doc = json_loadb(m->payload, m->len, 0, NULL);
    const char *r = json_string_value(json_object_get(doc, "recipient_id"));
    const char *b = json_string_value(json_object_get(doc, "batch_id"));
    const char *t = json_string_value(json_object_get(doc, "tenant_id"));
    json_t *a = json_object_get(doc, "attempt");
    job *j = calloc(1, sizeof *j);
    part *p = part_of(w, m->partition);
    wbatch *wb;

    if (!j || !p) {
        /* Not stored: it comes back after a restart. */
        free(j);
        rd_kafka_message_destroy(m);
        json_decref(doc);
        return;
    }
    j->msg = m;
    if (p->tail)
        p->tail->next_part = j;
    else
        p->head = j;
    p->tail = j;
    w->in_hand++;
    if (!r || !b || !t || !json_is_integer(a) || strlen(r) >= 48 || strlen(b) >= 48 ||
        strlen(t) >= 48 || !(wb = batch_of(w, b))) {
        bc_log(w->ctx->log, BC_WARN, "job.malformed", "{s:i,s:I}", "partition",
               (int)m->partition, "offset", (json_int_t)m->offset);
        json_decref(doc);
        job_done(w, j);
        return;
    }
    snprintf(j->recipient, sizeof j->recipient, "%s", r);
    snprintf(j->batch, sizeof j->batch, "%s", b);
    snprintf(j->tenant, sizeof j->tenant, "%s", t);
    j->attempt = (int)json_integer_value(a);
    json_decref(doc);
    if (wb->tail)
        wb->tail->next_wait = j;
    else
        wb->head = j;
    wb->tail = j;
}

/* ---- dialing ---------------------------------------------------------- */

static void callback_url(bc_worker *w, const char *tenant, const char *batch,
                         const char *call, char *out, size_t cap)
{
    /* The API rebuilds exactly this string to check the signature. */
    snprintf(out, cap, "%s/carrier/twilio/status?region=%s&tenant_id=%s&batch_id=%s&call_id=%s",
             w->public_url, w->region, tenant, batch, call);
}

static void publish_rows(bc_worker *w, PGresult *res)
{
    bc_err err = { "" };

    if (bc_publisher_outbox_rows(w->pub, res, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "publish.deferred", "{s:s}", "error", err.msg);
}

/* Releases the batch's next jobs now that a slot is free. */
static void top_up(bc_worker *w, const char *batch)
{
    const char *p[] = { batch, BC_WINDOW_MULTIPLE, w->jobs_topic };
    bc_err err = { "" };
    PGresult *res = bc_pg_exec(w->pg, "release", 3, p, &err);

    if (!res) {
        /* The scheduler's periodic top-up covers it. */
        bc_log(w->ctx->log, BC_WARN, "window.topup_failed", "{s:s,s:s}", "batch_id",
               batch, "error", err.msg);
        return;
    }
    publish_rows(w, res);
    PQclear(res);
}

/* Notes that batch's window may top up; done_top_ups() runs them. */
static void want_top_up(bc_worker *w, const char *batch)
{
    for (int i = 0; i < w->ntopups; i++)
        if (!strcmp(w->topups[i], batch))
            return;
    if (w->ntopups == MAX_TOPUPS) {
        top_up(w, batch);   /* more batches than we track: do it now */
        return;
    }
    snprintf(w->topups[w->ntopups++], sizeof w->topups[0], "%s", batch);
}

static void run_top_ups(bc_worker *w, long long now)
{
    if (now < w->next_topup)
        return;
    for (int i = 0; i < w->ntopups; i++)
        top_up(w, w->topups[i]);
    w->ntopups = 0;
    w->next_topup = now + TOPUP_EVERY_MS;
}

/* Ends an attempt: result, lease, recipient, event, window top-up. */
static void end_call(bc_worker *w, const char *call, const char *status, int duration,
                     const char *end_reason, const char *sid, const char *error)
{
    int retryable = !strcmp(status, "busy") || !strcmp(status, "no-answer") ||
                    !strcmp(status, "failed");
    char dur[16], base[32];
    bc_err err = { "" };
    PGresult *res;

    snprintf(dur, sizeof dur, "%d", duration);
    snprintf(base, sizeof base, "%.3f", (double)w->retry_base_ms / 1000.0);
    const char *p[] = { call, status, dur, end_reason, sid, retryable ? "t" : "f", base,
                        w->results_topic, error };
    if (!(res = bc_pg_exec(w->pg, "call_end", 9, p, &err))) {
        bc_log(w->ctx->log, BC_ERROR, "call.end_failed", "{s:s,s:s}", "call_id", call,
               "error", err.msg);
        return;
    }
    if (PQntuples(res) == 0) {
        bc_metric_add(w->m_dup_events, 1);   /* already ended: a repeat */
        PQclear(res);
        return;
    }
    bc_metric_add(w->m_finished, 1);
    publish_rows(w, res);
    char batch[48];
    snprintf(batch, sizeof batch, "%s", bc_pg_val(res, 0, "batch_id"));
    PQclear(res);
    want_top_up(w, batch);
    /* A slot of this batch is free: let its waiting jobs try at once. */
    for (wbatch *b = w->batches; b; b = b->next)
        if (!strcmp(b->id, batch))
            b->retry_at = 0;
}

static const char *end_reason_of(const char *status, int duration, int limit_s)
{
    if (!strcmp(status, "completed"))
        return limit_s > 0 && duration >= limit_s ? "max_duration" : "agent_hangup";
    if (!strcmp(status, "busy"))
        return "dial_busy";
    if (!strcmp(status, "no-answer"))
        return "dial_no_answer";
    if (!strcmp(status, "canceled"))
        return "api_cancelled";
    return "dial_failed";
}

static void on_dial(void *ud, const bc_dial *d, bc_dial_result r, const char *sid,
                    const char *why)
{
    bc_worker *w = ud;
    bc_err err = { "" };
    PGresult *res;
    redial *rd;

    switch (r) {
    case BC_DIAL_ACCEPTED: {
        char tok[24];
        snprintf(tok, sizeof tok, "%lld", d->lease_token);
        const char *p[] = { d->call_id, sid, tok };
        bc_metric_add(w->m_dialed, 1);
        if (!(res = bc_pg_exec(w->pg, "dial_accepted", 3, p, &err))) {
            bc_log(w->ctx->log, BC_WARN, "dial.record_failed", "{s:s,s:s}", "call_id",
                   d->call_id, "error", err.msg);
        } else if (PQntuples(res) == 0) {
            bc_metric_add(w->m_fenced, 1);
            bc_log(w->ctx->log, BC_WARN, "lease.late_write_refused", "{s:s,s:I}", "call_id",
                   d->call_id, "token", (json_int_t)d->lease_token);
        }
        PQclear(res);
        break;
    }
    case BC_DIAL_PACED:
        /* Over the carrier's pace: wait and place it again; costs no retry. */
        bc_metric_add(w->m_paced, 1);
        if ((rd = calloc(1, sizeof *rd))) {
            rd->d = *d;
            rd->at = now_ms() + PACED_RETRY_MS;
            rd->next = w->redials;
            w->redials = rd;
        }
        break;
    case BC_DIAL_REJECTED:
        bc_metric_add(w->m_dial_failed, 1);
        bc_log(w->ctx->log, BC_WARN, "dial.failed", "{s:s,s:s}", "call_id", d->call_id,
               "reason", why ? why : "");
        end_call(w, d->call_id, "failed", 0, "dial_failed", NULL, why);
        break;
    case BC_DIAL_UNKNOWN: {
        /* Never "failed" and never redialed here: the carrier may have placed
         * it. The reconciler looks the call up and adopts or requeues it. */
        char tok[24];
        snprintf(tok, sizeof tok, "%lld", d->lease_token);
        const char *p[] = { d->call_id, tok };
        bc_metric_add(w->m_dial_unknown, 1);
        bc_log(w->ctx->log, BC_WARN, "dial.outcome_unknown", "{s:s,s:s}", "call_id",
               d->call_id, "reason", why ? why : "");
        if (!(res = bc_pg_exec(w->pg, "dial_unknown", 2, p, &err)))
            bc_log(w->ctx->log, BC_WARN, "dial.record_failed", "{s:s,s:s}", "call_id",
                   d->call_id, "error", err.msg);
        PQclear(res);
        break;
    }
    }
}

enum { CLAIM_NO_SLOT = 0, CLAIM_DROPPED, CLAIM_DIALED };

/* Tries to claim the first waiting job of b: CLAIM_DIALED if a call went
 * out, CLAIM_DROPPED if the job was stale or lost its race (try the next),
 * CLAIM_NO_SLOT if the batch has no free slot (or the database failed). */
static int claim_one(bc_worker *w, wbatch *b)
{
    job *j = b->head;
    char call[48], attempt[16], ttl[16];
    bc_err err = { "" };
    PGresult *res;
    bc_dial d = { 0 };

    if (bc_id_new(call, sizeof call, "ac") < 0)
        return CLAIM_NO_SLOT;
    snprintf(attempt, sizeof attempt, "%d", j->attempt);
    snprintf(ttl, sizeof ttl, "%ld", w->lease_ttl_s);
    const char *p[] = { j->recipient, j->batch, attempt, call, w->holder, ttl };
    if (!(res = bc_pg_exec(w->pg, "claim", 6, p, &err))) {
        bc_log(w->ctx->log, BC_WARN, "claim.failed", "{s:s,s:s}", "batch_id", j->batch,
               "error", err.msg);
        return CLAIM_NO_SLOT;   /* database trouble: keep the job, try later */
    }
    if (PQntuples(res) == 0) {
        PGresult *why;
        const char *q[] = { j->recipient, attempt };
        int waiting;

        PQclear(res);
        if (!(why = bc_pg_exec(w->pg, "claim_why", 2, q, &err)))
            return CLAIM_NO_SLOT;
        waiting = PQntuples(why) == 1 && !strcmp(bc_pg_val(why, 0, "claimable"), "t");
        if (waiting && strcmp(bc_pg_val(why, 0, "in_hours"), "t")) {
            PQclear(why);
            PQclear(bc_pg_exec(w->pg, "unrelease", 2, q, NULL));
            b->head = j->next_wait;
            if (!b->head)
                b->tail = NULL;
            job_done(w, j);
            return CLAIM_DROPPED;
        }
        PQclear(why);
        if (waiting) {
            bc_metric_add(w->m_noslot, 1);
            return CLAIM_NO_SLOT;
        }
        /* Stale: claimed elsewhere, finished, cancelled or a later attempt. */
        bc_metric_add(w->m_stale, 1);
        b->head = j->next_wait;
        if (!b->head)
            b->tail = NULL;
        job_done(w, j);
        return CLAIM_DROPPED;
    }
    bc_metric_add(w->m_claimed, 1);
    snprintf(d.call_id, sizeof d.call_id, "%s", call);
    snprintf(d.to, sizeof d.to, "%s", bc_pg_val(res, 0, "to_number"));
    snprintf(d.from, sizeof d.from, "%s", bc_pg_val(res, 0, "from_number"));
    d.timeout_s = (int)bc_pg_int(res, 0, "ring", 60);
    d.time_limit_s = (int)bc_pg_int(res, 0, "max_min", 480) * 60;
    callback_url(w, bc_pg_val(res, 0, "tenant_id"), j->batch, call, d.callback_url,
                 sizeof d.callback_url);
    snprintf(d.batch_id, sizeof d.batch_id, "%s", j->batch);
    d.lease_token = bc_pg_int(res, 0, "lease_token", 0);
    PQclear(res);
    /* The claim is durable, so the job's offset may be committed now. */
    b->head = j->next_wait;
    if (!b->head)
        b->tail = NULL;
    job_done(w, j);
    {
        char tok[24];
        snprintf(tok, sizeof tok, "%lld", d.lease_token);
        const char *q[] = { call, d.batch_id, tok };
        if (!(res = bc_pg_exec(w->pg, "dial_start", 3, q, &err))) {
            /* Not known to be dialable: the reconciler settles the claim. */
            bc_log(w->ctx->log, BC_WARN, "dial.start_failed", "{s:s,s:s}", "call_id", call,
                   "error", err.msg);
            return CLAIM_DROPPED;
        }
        int go = PQntuples(res) == 1;
        PQclear(res);
        if (!go) {
            /* Cancelled since the claim, or our lease was taken over: never
             * dial it. A cancel that raced the claim leaves it to us. */
            const char *c[] = { call, tok };
            PQclear(bc_pg_exec(w->pg, "claim_cancel", 2, c, NULL));
            bc_metric_add(w->m_not_dialed, 1);
            return CLAIM_DROPPED;
        }
    }
    if (bc_carrier_dial(w->carrier, &d, &err) < 0)
        end_call(w, call, "failed", 0, "error", NULL, err.msg);
    return CLAIM_DIALED;
}

/* Takes a dial token from the carrier's pace (calls per second for the
 * account). Over the pace a claim waits in Kafka's order; it is not tried,
 * so the carrier never has to refuse it and no retry is spent. The bucket
 * holds one token: dials go out evenly, never in a burst that the carrier's
 * own bucket, filled on its own clock, might not have room for. */
static int pace_take(bc_worker *w, long long now)
{
    if (w->cps <= 0)
        return 1;
    w->pace_tokens += (double)(now - w->pace_at) * w->cps / 1000.0;
    if (w->pace_tokens > 1.0)
        w->pace_tokens = 1.0;
    w->pace_at = now;
    if (w->pace_tokens < 1.0)
        return 0;
    w->pace_tokens -= 1.0;
    return 1;
}

static void dispatch(bc_worker *w)
{
    long long now = now_ms();
    wbatch **pb = &w->batches;

    while (*pb) {
        wbatch *b = *pb;

        while (b->head && b->retry_at <= now &&
               bc_carrier_inflight(w->carrier) < w->max_dials && pace_take(w, now)) {
            int got = claim_one(w, b);

            if (got != CLAIM_DIALED && w->cps > 0)
                w->pace_tokens += 1.0;       /* nothing was dialed: give it back */
            if (got == CLAIM_NO_SLOT) {
                b->retry_at = now + NO_SLOT_RETRY_MS;
                break;
            }
        }
        if (!b->head) {
            *pb = b->next;
            free(b);
            continue;
        }
        pb = &b->next;
    }
    for (redial **pr = &w->redials; *pr;) {
        redial *rd = *pr;
        bc_err err = { "" };

        if (rd->at > now) {
            pr = &rd->next;
            continue;
        }
        *pr = rd->next;
        if (bc_carrier_dial(w->carrier, &rd->d, &err) < 0)
            end_call(w, rd->d.call_id, "failed", 0, "error", NULL, err.msg);
        free(rd);
    }
}

/* ---- carrier events --------------------------------------------------- */

/* Writes the progress events gathered so far, in one round trip. */
static void flush_progress(bc_worker *w)
{
    bc_err err = { "" };
    char *doc;
    PGresult *res;

    if (!w->progress || json_array_size(w->progress) == 0)
        return;
    doc = json_dumps(w->progress, JSON_COMPACT);
    json_array_clear(w->progress);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "call_progress_many", 1, p, &err)))
        bc_log(w->ctx->log, BC_WARN, "event.apply_failed", "{s:s}", "error",
               doc ? err.msg : "out of memory");
    else
        PQclear(res);
    free(doc);
}

static int progress_has(const bc_worker *w, const char *call)
{
    size_t i;
    json_t *e;

    json_array_foreach(w->progress, i, e)
        if (!strcmp(json_string_value(json_object_get(e, "id")), call))
            return 1;
    return 0;
}

static void apply_event(bc_worker *w, const rd_kafka_message_t *m)
{
    json_t *ev = json_loadb(m->payload, m->len, 0, NULL);
    const char *call = json_string_value(json_object_get(ev, "call_id"));
    const char *status = json_string_value(json_object_get(ev, "status"));
    const char *sid = json_string_value(json_object_get(ev, "carrier_call_id"));
    int duration = (int)json_integer_value(json_object_get(ev, "duration"));

    bc_metric_add(w->m_events, 1);
    if (!call || !status) {
        bc_log(w->ctx->log, BC_WARN, "event.malformed", NULL);
    } else if (!strcmp(status, "ringing") || !strcmp(status, "in-progress") ||
               !strcmp(status, "queued") || !strcmp(status, "initiated")) {
        /* Gathered and written once per loop turn (flush_progress). */
        json_array_append_new(w->progress,
                              json_pack("{s:s,s:s,s:s?}", "id", call, "status",
                                        !strcmp(status, "initiated") ? "queued" : status,
                                        "sid", sid));
    } else if (!strcmp(status, "completed") || !strcmp(status, "busy") ||
               !strcmp(status, "no-answer") || !strcmp(status, "failed") ||
               !strcmp(status, "canceled")) {
        /* This call's earlier statuses go first, so its history stays whole. */
        if (progress_has(w, call))
            flush_progress(w);
        end_call(w, call, status, duration, end_reason_of(status, duration, 0), sid, NULL);
    }
    json_decref(ev);
}

/* ---- loop ------------------------------------------------------------- */

bc_worker *bc_worker_new(bc_ctx *ctx, bc_err *err)
{
    bc_worker *w = calloc(1, sizeof *w);
    const bc_config *c = ctx->cfg;
    const char *prefix = bc_config_str(c, "topic-prefix");
    const char *brokers = bc_config_str(c, "kafka-brokers");
    char events_topic[160], group[200], host[64] = "worker", rnd[16];
    const char *topics[1];

    if (!w)
        return NULL;
    w->ctx = ctx;
    w->progress = json_array();
    snprintf(w->region, sizeof w->region, "%s", bc_config_str(c, "region"));
    w->public_url = bc_config_str(c, "public-url");
    w->max_in_hand = bc_config_int(c, "max-in-hand");
    w->max_dials = bc_config_int(c, "max-dials-in-flight");
    w->lease_ttl_s = bc_config_int(c, "lease-ttl");
    w->retry_base_ms = bc_config_int(c, "retry-base-ms");
    w->cps = (double)bc_config_int(c, "carrier-cps");
    w->pace_tokens = 1.0;
    w->pace_at = bc_now_ms();
    gethostname(host, sizeof host - 1);
    bc_random_token(rnd, sizeof rnd, "", 6);
    snprintf(w->holder, sizeof w->holder, "%s-%d-%s", host, (int)getpid(), rnd);
    bc_kafka_topic(w->jobs_topic, sizeof w->jobs_topic, prefix, "jobs", w->region);
    bc_kafka_topic(w->results_topic, sizeof w->results_topic, prefix, "call-results", NULL);
    bc_kafka_topic(events_topic, sizeof events_topic, prefix, "carrier-events", w->region);

    if (!(w->pg = bc_pg_connect(bc_config_str(c, "pg-dsn"), stmts, err)) ||
        !(w->pub = bc_publisher_new(brokers, ctx->log, ctx->metrics, err)) ||
        !(w->carrier = bc_carrier_new(bc_config_str(c, "carrier-url"),
                                      bc_config_str(c, "carrier-account-sid"),
                                      bc_config_str(c, "carrier-auth-token"),
                                      bc_config_int(c, "carrier-timeout-ms"), on_dial, w,
                                      err)))
        goto fail;
    topics[0] = w->jobs_topic;
    snprintf(group, sizeof group, "%s.worker.jobs.%s", prefix, w->region);
    if (!(w->jobs = bc_kafka_consumer_new(brokers, group, topics, 1, ctx->log, err)))
        goto fail;
    topics[0] = events_topic;
    snprintf(group, sizeof group, "%s.worker.events.%s", prefix, w->region);
    if (!(w->events = bc_kafka_consumer_new(brokers, group, topics, 1, ctx->log, err)))
        goto fail;
#define M(field, name, help) \
    w->field = bc_metrics_get(ctx->metrics, BC_COUNTER, name, help, NULL, NULL, 0)
    M(m_claimed, "worker_claims_total", "Recipients claimed with a lease");
    M(m_stale, "worker_stale_jobs_total", "Jobs dropped: already claimed, finished or cancelled");
    M(m_noslot, "worker_lease_waits_total", "Claims that found no free concurrency slot");
    M(m_dialed, "worker_calls_started_total", "Calls the carrier accepted");
    M(m_dial_failed, "worker_dial_failures_total", "Dials the carrier refused or that failed");
    M(m_dial_unknown, "worker_dial_unknown_total",
      "Dials whose outcome the carrier did not tell (5xx, timeout); left to the reconciler");
    M(m_paced, "worker_dials_paced_total", "Dials the carrier asked to slow down (429)");
    M(m_finished, "worker_calls_finished_total", "Attempts ended");
    M(m_events, "worker_carrier_events_total", "Carrier events consumed");
    M(m_dup_events, "worker_duplicate_events_total", "Terminal carrier events already applied");
    M(m_fenced, "worker_late_writes_refused_total",
      "Writes refused because the lease was taken over (fencing token no longer current)");
    M(m_not_dialed, "worker_claims_not_dialed_total",
      "Claims dropped before dialing: batch cancelled or lease taken over");
#undef M
    w->m_in_hand = bc_metrics_get(ctx->metrics, BC_GAUGE, "worker_jobs_in_hand",
                                  "Jobs consumed and not yet claimed or dropped", NULL, NULL, 0);
    w->ready = 1;
    bc_log(ctx->log, BC_INFO, "worker.started", "{s:s,s:s}", "region", w->region,
           "holder", w->holder);
    return w;
fail:
    bc_worker_free(w);
    return NULL;
}

int bc_worker_ready(void *ud)
{
    bc_worker *w = ud;

    return w && w->ready && !w->draining && bc_pg_alive(w->pg);
}

static void periodic(bc_worker *w)
{
    long long now = now_ms();
    bc_err err = { "" };

    run_top_ups(w, now);
    if (now >= w->next_outbox) {
        if (bc_publisher_tick(w->pub, w->pg, &err) < 0)
            bc_log(w->ctx->log, BC_WARN, "outbox.delete_failed", "{s:s}", "error", err.msg);
        w->next_outbox = now + 50;
    }
    if (now >= w->next_renew) {
        char ttl[16];
        snprintf(ttl, sizeof ttl, "%ld", w->lease_ttl_s);
        const char *p[] = { w->holder, ttl };
        PQclear(bc_pg_exec(w->pg, "renew", 2, p, NULL));
        w->next_renew = now + bc_lease_renew_ms(w->lease_ttl_s);
    }
    bc_metric_set(w->m_in_hand, (double)w->in_hand);
}

void bc_worker_tick(bc_worker *w)
{
    rd_kafka_message_t *m;
    int n;

    /* Events first: they free slots. */
    rd_kafka_message_t *done[500];
    for (n = 0; n < 500 && (m = bc_kafka_consume(w->events, 0)); n++) {
        apply_event(w, m);
        done[n] = m;
    }
    /* Offsets are stored only once their effect is written. */
    flush_progress(w);
    for (int i = 0; i < n; i++) {
        bc_kafka_store(w->events, done[i]);
        rd_kafka_message_destroy(done[i]);
    }
    if (!w->draining) {
        for (n = 0; n < 500 && w->in_hand < w->max_in_hand &&
                    (m = bc_kafka_consume(w->jobs, 0)); n++)
            take_job(w, m);
        /* Back-pressure: stop fetching instead of buffering without bound. */
        if (!w->paused && w->in_hand >= w->max_in_hand) {
            bc_kafka_pause(w->jobs, 1);
            w->paused = 1;
        } else if (w->paused && w->in_hand < w->max_in_hand / 2) {
            bc_kafka_pause(w->jobs, 0);
            w->paused = 0;
        }
        dispatch(w);
    }
    bc_carrier_perform(w->carrier, 5);
    periodic(w);
}

void bc_worker_drain(bc_worker *w, int grace_ms)
{
    long long until = now_ms() + grace_ms;

    w->draining = 1;
    bc_log(w->ctx->log, BC_INFO, "worker.draining", "{s:I,s:i}", "jobs_in_hand",
           (json_int_t)w->in_hand, "dials_in_flight", bc_carrier_inflight(w->carrier));
    /* Jobs not claimed stay unstored: Kafka hands them to another worker.
     * Dials already sent finish here so their outcome is recorded. */
    while (bc_carrier_inflight(w->carrier) > 0 && now_ms() < until) {
        bc_carrier_perform(w->carrier, 10);
        periodic(w);
    }
    /* Wait for the broker to acknowledge what we published, then forget
     * those outbox rows, so the relay does not send them a second time. */
    bc_publisher_flush(w->pub, (int)(until > now_ms() ? until - now_ms() : 0));
    w->next_outbox = 0;
    w->next_topup = 0;
    periodic(w);
}

void bc_worker_free(bc_worker *w)
{
    if (!w)
        return;
    json_decref(w->progress);
    /* Messages go back to librdkafka before its handles are destroyed. */
    for (int i = 0; i < w->nparts; i++) {
        for (job *j = w->parts[i].head, *n; j; j = n) {
            n = j->next_part;
            rd_kafka_message_destroy(j->msg);
            free(j);
        }
    }
    /* Closing commits what was stored and leaves the group, so the
     * partitions move to another worker at once. */
    bc_kafka_free(w->jobs, 0);
    bc_kafka_free(w->events, 0);
    for (wbatch *b = w->batches, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    for (redial *r = w->redials, *n; r; r = n) {
        n = r->next;
        free(r);
    }
    bc_carrier_free(w->carrier);
    bc_publisher_free(w->pub, 0);
    bc_pg_free(w->pg);
    free(w);
}
