#include "bc_worker.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bc_agent.h"
#include "bc_carrier.h"
#include "bc_credits.h"
#include "bc_crypto.h"
#include "bc_kafka.h"
#include "bc_lease.h"
#include "bc_pg.h"
#include "bc_policy.h"
#include "bc_publisher.h"
#include "bc_retry.h"
#include "bc_sql.h"

#define MAX_PARTS 256
#define NO_SLOT_RETRY_MS 20
/* Window top-ups of one batch are coalesced over this long: one release
 * statement per batch per interval, not one per ended call (each scans the
 * batch's backlog). The window (BC_WINDOW_MULTIPLE x the limit) covers it. */
#define TOPUP_EVERY_MS 50
#define MAX_TOPUPS 256
#define PACED_RETRY_MS 250
static const double DISPATCH_BUCKETS[12] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5, 1, 2.5, 5, 10, 30 };

typedef struct job job;
struct job {
    job *next_wait;           /* in its batch's wait queue */
    job *next_part;           /* in its partition's offset order */
    rd_kafka_message_t *msg;  /* kept until its offset can be stored */
    int done;
    int gone;                 /* taken off its batch's wait queue this turn */
    int tried;                /* offered to a claim once (w->untried counts the rest) */
    int attempt;
    char recipient[48], batch[48], tenant[48];
};

typedef struct wbatch wbatch;
struct wbatch {
    wbatch *next;
    char id[48];
    job *head, *tail;
    long long retry_at;       /* no slot free: try again then */
    /* Slots known free: -1 unknown (try a fair share of jobs), else the
     * ends of this batch's calls seen since a claim found none free. A
     * claim sends no more jobs than that (at least one, a probe: another
     * worker may have ended calls), so jobs that cannot get a slot are not
     * looked up again and again. */
    int free_hint;
    int misses;               /* claims in a row that found no slot */
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
    const char *agent_secret;    /* signs per-call agent tokens */
    long max_in_hand, max_dials, lease_ttl_s, retry_base_ms;
    int result_v1;               /* also publish call-results as v1 */
    double cps, pace_tokens;     /* carrier pace: a token bucket; 0 = none */
    long long pace_at;
    long in_hand;
    long untried;                /* jobs in wait queues never offered to a claim */
    int paused;
    /* Read by the readiness probe's thread: written only by the loop's. */
    atomic_int draining, ready, renewing;
    wbatch *batches;
    part parts[MAX_PARTS];
    int nparts;
    redial *redials;
    json_t *progress;            /* progress events not yet written: [{id,status,sid}] */
    json_t *accepted;            /* accepted dials not yet written: [{c,sid,t}] */
    json_t *amds;                /* AMD verdicts not yet written: [{id,ab,sid}] */
    json_t *ends;                /* ended attempts not yet written (call_end_many) */
    char topups[MAX_TOPUPS][48]; /* batches whose window wants topping up */
    int ntopups;
    long long next_topup;
    long long next_renew, next_outbox;
    long long renewed_at;        /* the last lease renewal that succeeded */
    bc_metric *m_renew_failed;
    bc_metric *m_claimed, *m_stale, *m_noslot, *m_dialed, *m_dial_failed, *m_dial_unknown,
              *m_paced, *m_in_hand, *m_events, *m_dup_events, *m_fenced,
              *m_not_dialed, *m_jobs_lag, *m_events_lag, *m_ctx_fetch, *m_updates,
              *m_update_failed, *m_voicemail_actions;
    bc_metric *m_outcome[6];     /* worker_calls_finished_total by OUTCOMES[i] */
    bc_metric *m_turns, *m_requests, *m_redials, *m_untried;
};

/* Outcome labels of worker_calls_finished_total: the carrier's final
 * statuses, and "other" for anything else (the label set stays bounded). */
static const char *const OUTCOMES[6] = { "completed", "busy", "no-answer", "failed",
                                         "canceled", "other" };

static const bc_pg_stmt stmts[] = {
    /* The turn's statements join a JSON list to calls and recipients by
     * key. A generic plan made while those tables were small keeps its
     * sequential scans as they grow (measured in B2: 5 ms instead of
     * 0.3-1 ms per statement on a fresh database, until autovacuum's next
     * ANALYZE); a plan per execution costs well under that. */
    { "", "SET plan_cache_mode = force_custom_plan" },
    BC_PUBLISHER_STMT,
    /* The claims of one loop turn in one statement. Per job: a slot is
     * taken only if the recipient's attempt is still queued and its batch
     * admitted and in calling hours, and the recipient is claimed only with
     * a slot; the call row records our attempt id before any dial. Jobs of
     * a batch get its free slots in job order. Every job gets one row back:
     * 'claimed' (with what the dial needs), 'noslot' (keep it, try again),
     * 'hours' (outside calling hours: put back in the backlog, the scheduler
     * releases it when they open) or 'stale' (claimed elsewhere, finished,
     * cancelled or a later attempt: drop it).
     * $1 [{"n","r" recipient,"b" batch,"a" attempt,"c" call id}] $2 holder $3 ttl s */
    { "claim_many",
      "WITH j AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS j(n int, r text, b text, a int, c text)),"
      " bs AS MATERIALIZED (SELECT id, state = 'admitted' AS admitted, calling_hours, timezone,"
      "               from_pool, pool_cps, bc_now() AS t, tenant_legal_hours(tenant_id) AS lw"
      "          FROM batches WHERE id IN (SELECT b FROM j)),"
      " bb AS (SELECT id, from_number, ringing_timeout_s, max_call_duration_min, agent_id,"
      "               variables, metadata, record FROM batches"
      "         WHERE id IN (SELECT id FROM bs WHERE admitted)"
      "           AND state = 'admitted' AND (latest_at IS NULL OR latest_at > bc_now())"
      "           FOR SHARE),"
      /* Each recipient by its key. Given batch_id or a plain status test,
       * the planner walked the batch's whole backlog per job through the
       * partial index recipients_active whenever its statistics said few
       * recipients were queued (measured: 46 ms for 14 jobs). OFFSET 0
       * keeps the lookup apart, and coalesce() keeps the updates' status
       * test from matching that index's predicate. A job is claimable when
       * its attempt is still queued, its batch admitted, and the
       * recipient inside calling hours in its own time zone, the batch's
       * and the tenant's legal window (sql/0023_legal_hours.sql). The hours
       * functions run only for batches that have hours: evaluated per job
       * they were most of this statement's time (B2, 0.2 ms a job). */
      " jr AS MATERIALIZED (SELECT j.*, bs.id IN (SELECT id FROM bb) AS admitted,"
      "               CASE WHEN rc.from_number = ANY(bs.from_pool) THEN rc.from_number END AS want,"
      "               CASE WHEN bs.calling_hours IS NULL AND bs.lw IS NULL THEN true"
      "                    ELSE recipient_open(bs.calling_hours, bs.lw, rc.tz, bs.timezone,"
      "                                        rc.to_number, bs.t)"
      "               END AS open,"
      "               CASE WHEN bs.calling_hours IS NOT NULL OR bs.lw IS NOT NULL"
      "                    THEN recipient_opens(bs.calling_hours, bs.lw, rc.tz, bs.timezone,"
      "                                         rc.to_number, bs.t)"
      "               END AS opens"
      "          FROM j JOIN bs ON bs.id = j.b,"
      "          LATERAL (SELECT batch_id, status, attempts, timezone AS tz, from_number, to_number"
      "                     FROM recipients"
      "                    WHERE id = j.r OFFSET 0) rc"
      "         WHERE rc.batch_id = j.b AND rc.status = 'queued' AND rc.attempts = j.a - 1),"
      " q AS MATERIALIZED (SELECT n, r, b, a, c, want FROM jr WHERE admitted AND open),"
      /* Free slots: as many as jobs, or every one of a batch with a
       * caller-ID pool (a slot belongs to the number it dials from). */
      " need AS MATERIALIZED (SELECT q.b, count(*) AS k, bool_or(bs.from_pool IS NOT NULL) AS pooled"
      "            FROM q JOIN bs ON bs.id = q.b GROUP BY q.b),"
      " s0 AS MATERIALIZED (SELECT need.b, f.slot, f.number"
      "          FROM need, LATERAL (SELECT l.slot, l.number FROM leases l"
      "                               WHERE l.batch_id = need.b AND l.call_id IS NULL"
      "                               ORDER BY l.slot"
      "                               LIMIT CASE WHEN need.pooled THEN 100000 ELSE need.k END"
      "                               FOR UPDATE SKIP LOCKED) f),"
      " s1 AS MATERIALIZED (SELECT s0.*, row_number() OVER (PARTITION BY s0.b, s0.number ORDER BY s0.slot) AS nk"
      "          FROM s0),"
      /* A pool number takes no more new calls than its calls per second
       * allow. Counted over the last 1.5 s of claims, not 1 s: a dial
       * leaves some time after its claim, and that jitter must not let the
       * carrier see more than the cap in any second of its own clock. */
      " s AS MATERIALIZED (SELECT s1.* FROM s1 JOIN bs ON bs.id = s1.b"
      "        WHERE bs.pool_cps IS NULL OR s1.number IS NULL"
      "           OR s1.nk <= bs.pool_cps - (SELECT count(*) FROM calls c"
      "                                        WHERE c.from_number = s1.number"
      "                                          AND c.created_at > now() - interval '1.5 seconds')),"
      /* Jobs meet slots by position: the k-th job of a batch (or of a pool
       * number) takes the k-th free slot. The slots of each batch and
       * number are gathered into arrays and indexed, because a join of two
       * lists of a few hundred rows each, which PostgreSQL estimates at one
       * row apiece, ran as a nested loop: a quarter of this statement's
       * time in B2. A recipient with a pool number already (a retry) takes
       * a slot of that number; the others take the rest in turn over the
       * numbers. */
      " qf AS MATERIALIZED (SELECT q.*, row_number() OVER (PARTITION BY q.b, q.want ORDER BY q.n) AS k"
      "          FROM q WHERE q.want IS NOT NULL),"
      " sn AS MATERIALIZED (SELECT s.b, s.number, array_agg(s.slot ORDER BY s.nk) AS slots"
      "          FROM s WHERE s.number IS NOT NULL AND EXISTS (SELECT 1 FROM qf)"
      "         GROUP BY s.b, s.number),"
      " pf AS MATERIALIZED (SELECT qf.n, qf.r, qf.b, qf.a, qf.c, sn.slots[qf.k] AS slot, sn.number"
      "          FROM qf JOIN sn ON sn.b = qf.b AND sn.number = qf.want"
      "         WHERE qf.k <= cardinality(sn.slots)),"
      " qu AS MATERIALIZED (SELECT q.*, row_number() OVER (PARTITION BY q.b ORDER BY q.n) AS k"
      "          FROM q WHERE q.want IS NULL),"
      " sa AS MATERIALIZED (SELECT s.b, array_agg(s.slot ORDER BY s.nk, s.slot) AS slots,"
      "                            array_agg(s.number ORDER BY s.nk, s.slot) AS numbers"
      "          FROM s WHERE NOT EXISTS (SELECT 1 FROM pf WHERE pf.b = s.b AND pf.slot = s.slot)"
      "         GROUP BY s.b),"
      " pu AS MATERIALIZED (SELECT qu.n, qu.r, qu.b, qu.a, qu.c, sa.slots[qu.k] AS slot,"
      "                            sa.numbers[qu.k] AS number"
      "          FROM qu JOIN sa ON sa.b = qu.b WHERE qu.k <= cardinality(sa.slots)),"
      " p AS MATERIALIZED (SELECT * FROM pf UNION ALL SELECT * FROM pu),"
      " r AS (UPDATE recipients SET status = 'dispatched', attempts = p.a, last_call_id = p.c,"
      "              from_number = coalesce(recipients.from_number, p.number), updated_at = now()"
      "         FROM p WHERE recipients.id = p.r"
      "          AND coalesce(recipients.status, '') = 'queued' AND recipients.attempts = p.a - 1"
      "       RETURNING recipients.id, recipients.tenant_id, recipients.to_number,"
      "                 recipients.from_number, p.c, p.b, p.a, p.slot),"
      " l AS (UPDATE leases SET token = nextval('lease_token_seq'), holder = $2,"
      "              call_id = r.c, expires_at = now() + make_interval(secs => $3::int)"
      "         FROM r WHERE leases.batch_id = r.b AND leases.slot = r.slot"
      "       RETURNING leases.slot, leases.token, r.c, r.id, r.b, r.tenant_id, r.a,"
      "                 r.to_number, r.from_number),"
      " ins AS (INSERT INTO calls (id, recipient_id, batch_id, tenant_id, attempt, status,"
      "                            lease_slot, lease_token, to_number, from_number, history,"
      "                            agent_id)"
      "         SELECT l.c, l.id, l.b, l.tenant_id, l.a, 'claimed', l.slot, l.token,"
      "                l.to_number, coalesce(l.from_number, bb.from_number),"
      "                jsonb_build_array(jsonb_build_object('status', 'claimed', 'at', rfc3339_ms(now()))),"
      "                bb.agent_id"
      "           FROM l JOIN bb ON bb.id = l.b"
      "         RETURNING id, tenant_id, to_number, from_number, lease_token),"
      " u AS (UPDATE recipients SET released = false, next_attempt_at = jr.opens,"
      "              window_wait = true, updated_at = now()"
      "         FROM jr WHERE jr.admitted AND NOT jr.open AND recipients.id = jr.r"
      "          AND coalesce(recipients.status, '') = 'queued' AND recipients.attempts = jr.a - 1"
      "       RETURNING recipients.id)"
      " SELECT j.n, CASE WHEN ins.id IS NOT NULL THEN 'claimed'"
      "                  WHEN u.id IS NOT NULL THEN 'hours'"
      "                  WHEN q.n IS NOT NULL THEN 'noslot' ELSE 'stale' END AS outcome,"
      "        ins.tenant_id, ins.to_number, ins.from_number, ins.lease_token,"
      "        bb.ringing_timeout_s AS ring, bb.max_call_duration_min AS max_min,"
      /* The agent leg, for claimed calls only: the agent's endpoint and
       * the recipient's variables and metadata over the batch's. */
      "        bb.agent_id, ag.endpoint, coalesce(bb.record, ag.record) AS record,"
      "        CASE WHEN jsonb_typeof(rv.variables) = 'object' THEN bb.variables || rv.variables"
      "             ELSE bb.variables END::text AS vars,"
      "        CASE WHEN jsonb_typeof(rv.metadata) = 'object' THEN bb.metadata || rv.metadata"
      "             ELSE bb.metadata END::text AS meta"
      "   FROM j LEFT JOIN ins ON ins.id = j.c LEFT JOIN u ON u.id = j.r"
      "          LEFT JOIN q ON q.n = j.n LEFT JOIN bb ON bb.id = j.b"
      "          LEFT JOIN agents ag ON ins.id IS NOT NULL AND ag.id = bb.agent_id"
      "          LEFT JOIN recipients rv ON ins.id IS NOT NULL AND rv.id = j.r" },
    /* The last step before the carrier is asked, for the claims of one
     * turn: only while the batch is still admitted (a cancel waits for this
     * row lock, and a claim it beat is never dialed) and only with the
     * current lease token (a holder whose lease was taken over is fenced
     * off). The tenant's policy is applied here, at the last moment
     * (bc_policy.h): a number listed after its batch was accepted is not
     * dialed; its call stays claimed and comes back with the rule in
     * "blocked", for the worker to end it with that reason. The call's
     * credit hold is taken here too (bc_credits.h), so a hold and a dial
     * never diverge: a call the balance cannot cover stays claimed and
     * comes back blocked "insufficient_credits", for the worker to pause
     * its batch (its recipient stays queued). Returns the calls that may
     * be dialed (blocked NULL) and those the policy or credits stopped.
     * $1 [{"c" call,"b" batch,"t" token}] */
    { "dial_start_many",
      "WITH d AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS d(c text, b text, t bigint)),"
      " b AS (SELECT id FROM batches WHERE id IN (SELECT b FROM d) AND state = 'admitted' FOR SHARE),"
      " g AS MATERIALIZED (SELECT d.c, d.t, d.b, calls.tenant_id, calls.hold_cents, "
      BC_SQL_POLICY_BLOCK("calls.tenant_id", "calls.to_number") " AS blocked"
      "         FROM d JOIN calls ON calls.id = d.c"
      "        WHERE calls.status = 'claimed' AND calls.lease_token = d.t"
      "          AND d.b IN (SELECT id FROM b)"
      "          AND EXISTS (SELECT 1 FROM leases l WHERE l.batch_id = d.b"
      "                      AND l.slot = calls.lease_slot AND l.token = d.t)),"
      BC_SQL_CREDITS_HOLD_CTES
      " u AS (UPDATE calls SET status = 'dialing',"
      "        hold_cents = coalesce(calls.hold_cents, ch.hold),"
      "        price_per_min_cents = coalesce(ch.price, calls.price_per_min_cents),"
      "        history = history || jsonb_build_object('status', 'dialing', 'at', rfc3339_ms(now()))"
      "   FROM g LEFT JOIN ch ON ch.c = g.c WHERE calls.id = g.c AND g.blocked IS NULL"
      "    AND (g.hold_cents IS NOT NULL OR ch.after >= 0)"
      "    AND calls.status = 'claimed' AND calls.lease_token = g.t"
      " RETURNING calls.id, ch.c, ch.tenant_id, ch.b, ch.price, ch.mins, ch.hold, ch.after),"
      " hw AS (SELECT * FROM u WHERE c IS NOT NULL),"
      BC_SQL_CREDITS_HOLD_WRITE("hw")
      " SELECT id, NULL AS blocked FROM u"
      " UNION ALL SELECT c, blocked FROM g WHERE blocked IS NOT NULL"
      " UNION ALL SELECT c, '" BC_CREDITS_SHORT "' FROM ch WHERE after < 0" },
    /* A batch whose next call its tenant cannot pay pauses itself (its
     * refused claims undone with the pause). $1 batch ids (text[]) */
    { "credits_pause", BC_CREDITS_PAUSE_SQL },
    /* A dial the carrier paced (429) goes back to 'claimed' before it is
     * sent again, so it passes dial_start's gate once more: a batch
     * cancelled or paused meanwhile is not dialed (before this, a paced
     * dial went out after the cancel had returned). Only while our lease
     * token is current and the carrier has no call for it. Its credit hold
     * is released with it (a claimed call holds nothing): dial_start takes
     * one again, or pauses the batch if the balance no longer covers it.
     * $1 [{"c" call,"t" token}] */
    { "redial_back",
      "WITH d AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS d(c text, t bigint)),"
      " r AS (UPDATE calls SET status = 'claimed', hold_cents = NULL FROM d, calls o"
      "        WHERE calls.id = d.c AND o.id = d.c AND calls.status = 'dialing'"
      "          AND calls.lease_token = d.t AND calls.carrier_call_id IS NULL"
      "       RETURNING calls.id, calls.tenant_id, calls.batch_id, o.hold_cents,"
      "                 o.price_per_min_cents, NULL::bigint AS cost_cents,"
      "                 NULL::int AS billed_min),"
      BC_SQL_CREDITS_SETTLE_CTES("r")
      " SELECT id FROM r" },
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
     * over records nothing; the reconciler owns that call now. The accepted
     * dials of one turn in one statement. $1 [{"c" call,"sid","t" token}] */
    { "dial_accepted_many",
      "WITH d AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS d(c text, sid text, t bigint))"
      " UPDATE calls SET carrier_call_id = coalesce(calls.carrier_call_id, d.sid),"
      "        status = CASE WHEN calls.status = 'dialing' THEN 'queued' ELSE calls.status END,"
      "        history = CASE WHEN calls.status = 'dialing' THEN calls.history"
      "                       || jsonb_build_object('status', 'queued', 'at', rfc3339_ms(now()))"
      "                       ELSE calls.history END"
      "   FROM d WHERE calls.id = d.c AND calls.lease_token = d.t"
      "    AND EXISTS (SELECT 1 FROM leases l WHERE l.batch_id = calls.batch_id"
      "                AND l.slot = calls.lease_slot AND l.token = d.t)"
      " RETURNING calls.id" },
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
      "    AND coalesce(recipients.status, '') = 'dispatched' AND c.status = 'in-progress'" },
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
     * $1 [{"id","status","dur","reason","sid","out" outcome,"ab" answered by,"err"}]
     * $2 results topic $3 retry base seconds $4 also publish v1 events */
    { "call_end_many",
      "WITH e AS (SELECT * FROM jsonb_to_recordset($1::jsonb)"
      "             AS e(id text, status text, dur int, reason text, sid text, out text,"
      "                  ab text, err text)),"
      " c AS (UPDATE calls SET status = e.status, ended_at = now(), duration_s = e.dur,"
      "        history = history || jsonb_build_object('status', e.status, 'at', rfc3339_ms(now())),"
      /* With AsyncAmd the verdict came before the end (amd_many), not on
       * it: a completed call a machine took is a voicemail either way. */
      "        end_reason = CASE WHEN e.status = 'completed'"
      "                           AND coalesce(e.ab, calls.answered_by) LIKE 'machine%'"
      "                          THEN 'voicemail' ELSE e.reason END,"
      "        carrier_call_id = coalesce(carrier_call_id, e.sid),"
      "        answered_by = coalesce(e.ab, calls.answered_by),"
      /* Its money (bc_credits.h): what an answered call costs, settled
       * below with the release of its hold, in this statement that ends
       * it once. */
      "        billed_min = CASE WHEN calls.hold_cents IS NOT NULL AND e.status = 'completed'"
      "                          THEN " BC_SQL_CREDITS_MINUTES("e.dur") " END,"
      "        cost_cents = CASE WHEN calls.hold_cents IS NOT NULL THEN "
      BC_SQL_CREDITS_COST("e.status", "e.dur", "calls.price_per_min_cents", "calls.hold_cents")
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
      " INSERT INTO outbox (topic, key, payload)"
      " SELECT $2, batch_id, json_build_object('schema', 'batchcall.call-result/v2',"
      "        'call_id', id, 'batch_id', batch_id, 'tenant_id', tenant_id,"
      "        'recipient_id', recipient_id, 'attempt', attempt,"
      "        'carrier_status', final_status, 'end_reason', reason, 'answered_by', answered_by,"
      "        'duration_s', duration_s, 'to_number', to_number, 'from_number', from_number,"
      "        'recipient_status', rstatus, 'final', rstatus <> 'queued',"
      "        'retry_at', rfc3339_ms(next_attempt_at), 'lease_released', released,"
      "        'ended_at', rfc3339(now()))::text"
      "   FROM ev"
      /* v1 as it always was, for consumers not yet reading v2: a voicemail
       * is the agent_hangup it was before answering machines were told. */
      " UNION ALL"
      " SELECT $2, batch_id, json_build_object('schema', 'batchcall.call-result/v1',"
      "        'call_id', id, 'batch_id', batch_id, 'tenant_id', tenant_id,"
      "        'recipient_id', recipient_id, 'attempt', attempt,"
      "        'carrier_status', final_status,"
      "        'end_reason', CASE WHEN reason = 'voicemail' THEN 'agent_hangup'"
      "                           WHEN policy_stop(reason) THEN 'dial_failed' ELSE reason END,"
      "        'duration_s', duration_s, 'to_number', to_number, 'from_number', from_number,"
      "        'recipient_status', rstatus, 'final', rstatus <> 'queued',"
      "        'lease_released', released, 'ended_at', rfc3339(now()))::text"
      "   FROM ev WHERE $4::boolean"
      /* v3 beside v2 (sql/0017), built from this statement's own rows (cj):
       * a function reading calls here would not see this update. */
      " UNION ALL"
      " SELECT $2, batch_id, call_result_v3('call.ended', cj, rstatus, rstatus <> 'queued',"
      "        next_attempt_at, released, now(), NULL)"
      "   FROM ev"
      " RETURNING id, topic, key, payload" },
    /* Answering-machine verdicts (AsyncAmd) of one turn: each call's
     * answered_by, once (a redelivered verdict finds amd_at set and acts
     * on nothing), and what the batch's voicemail policy makes of a
     * machine. Returns the calls still live whose policy asks the carrier
     * for something. $1 [{"id","ab","sid"}] */
    { "amd_many",
      "WITH e AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS e(id text, ab text, sid text)),"
      " c AS (UPDATE calls SET answered_by = e.ab, amd_at = now(),"
      "        carrier_call_id = coalesce(calls.carrier_call_id, e.sid),"
      "        voicemail_action = CASE WHEN e.ab LIKE 'machine%'"
      "                                THEN coalesce(b.voicemail->>'action', 'agent') END"
      "        FROM e, batches b WHERE calls.id = e.id AND b.id = calls.batch_id"
      "         AND calls.amd_at IS NULL"
      "      RETURNING calls.id, calls.carrier_call_id AS sid, calls.status,"
      "                calls.voicemail_action AS action, b.voicemail->>'text' AS text,"
      "                b.voicemail->>'audio_url' AS audio_url)"
      " SELECT * FROM c WHERE action IN ('hangup', 'message')"
      "   AND call_status_rank(status) < 9 AND sid IS NOT NULL" },
    { "release", BC_SQL_RELEASE },
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

static long long now_ms(void) { return bc_now_ms(); }

/* Says this worker is alive in its region until a lease TTL from now. */
static int beat(bc_worker *w, bc_err *err)
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
    b->free_hint = -1;
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
    w->untried++;
}

/* ---- dialing ---------------------------------------------------------- */

/* One of the API's carrier callback URLs (status, amd, recording). */
static void callback_url(bc_worker *w, const char *kind, const char *tenant, const char *batch,
                         const char *call, char *out, size_t cap)
{
    /* The API rebuilds exactly this string to check the signature. */
    snprintf(out, cap, "%s/carrier/twilio/%s?region=%s&tenant_id=%s&batch_id=%s&call_id=%s",
             w->public_url, kind, w->region, tenant, batch, call);
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
    bc_err err = { "" };

    if (bc_sql_top_up(w->pg, w->pub, w->jobs_topic, &batch, 1, w->ctx->log, &err) < 0)
        /* The scheduler's periodic top-up covers it. */
        bc_log(w->ctx->log, BC_WARN, "window.topup_failed", "{s:s,s:s}", "batch_id",
               batch, "error", err.msg);
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

/* The top-ups of one interval in one transaction: one commit (one WAL
 * flush) for every batch, not one each; with 200 small batches they were
 * 4,000 commits a second. The jobs are published once it committed. */
static void run_top_ups(bc_worker *w, long long now)
{
    const char *ids[MAX_TOPUPS];
    int n = w->ntopups, rc;
    bc_err err = { "" };

    if (now < w->next_topup || n == 0)
        return;
    w->next_topup = now + TOPUP_EVERY_MS;
    w->ntopups = 0;
    for (int i = 0; i < n; i++)
        ids[i] = w->topups[i];
    rc = n == 1 ? BC_SQL_NO_TXN
                : bc_sql_top_up(w->pg, w->pub, w->jobs_topic, ids, n, w->ctx->log, &err);
    if (rc == BC_SQL_NO_TXN) {
        /* One batch needs no transaction; none could begin: each alone. */
        for (int i = 0; i < n; i++)
            top_up(w, ids[i]);
    } else if (rc == BC_SQL_FAILED) {
        /* The scheduler's periodic top-up covers them. */
        bc_log(w->ctx->log, BC_WARN, "window.topup_failed", "{s:s}", "error", err.msg);
    }
}

/* Appends {key: value ...} to a pending array unless an entry with the
 * same "id"/"c" is there already (a repeat within one turn). */
static int pending_has(json_t *arr, const char *field, const char *id)
{
    size_t i;
    json_t *e;

    json_array_foreach(arr, i, e)
        if (!strcmp(json_string_value(json_object_get(e, field)), id))
            return 1;
    return 0;
}

/* Ends an attempt: gathered, and written with the turn's other ends in one
 * statement (flush_ends): result, lease, recipient, event, window top-up.
 * The outcome class (bc_retry_outcome) is what the retry policy's retry_on
 * is matched against there; answered_by is the carrier's AnsweredBy. */
static void end_call_by(bc_worker *w, const char *call, const char *status, int duration,
                        const char *end_reason, const char *sid, const char *answered_by,
                        const char *error)
{
    if (pending_has(w->ends, "id", call)) {
        bc_metric_add(w->m_dup_events, 1);   /* a repeat in the same turn */
        return;
    }
    json_array_append_new(w->ends, json_pack("{s:s,s:s,s:i,s:s,s:s?,s:s,s:s?,s:s?}", "id", call,
                                             "status", status, "dur", duration, "reason",
                                             end_reason, "sid", sid, "out",
                                             bc_retry_outcome(status, answered_by), "ab",
                                             answered_by, "err", error));
}

static void end_call(bc_worker *w, const char *call, const char *status, int duration,
                     const char *end_reason, const char *sid, const char *error)
{
    end_call_by(w, call, status, duration, end_reason, sid, NULL, error);
}

/* Ends a claimed attempt the tenant's policy stopped before the carrier was
 * asked: 'failed' with the rule as its end reason (and the rule's message,
 * policy_message()), through the same statement as every end, so it frees
 * its slot, ends its recipient, and makes its call-result event and
 * webhook. Its outcome is the rule, which no retry_on lists: never retried. */
static void end_blocked(bc_worker *w, const char *call, const char *batch, const char *reason)
{
    char labels[96];

    if (pending_has(w->ends, "id", call))
        return;
    json_array_append_new(w->ends, json_pack("{s:s,s:s,s:i,s:s,s:s}", "id", call, "status",
                                             "failed", "dur", 0, "reason", reason, "out",
                                             reason));
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    bc_metrics_inc(w->ctx->metrics, "worker_recipients_blocked_total",
                   "Attempts the tenant's policy stopped at dial time, never dialed", labels, 1);
    bc_log(w->ctx->log, BC_INFO, "dial.blocked", "{s:s,s:s,s:s}", "call_id", call, "batch_id",
           batch, "reason", reason);
}

/* Counts one ended attempt by its carrier status (a call-result payload). */
static void count_outcome(bc_worker *w, const char *payload)
{
    json_t *doc = json_loads(payload, 0, NULL);
    const char *st = json_string_value(json_object_get(doc, "carrier_status"));
    int i = 0;

    while (i < 5 && (!st || strcmp(st, OUTCOMES[i])))
        i++;
    bc_metric_add(w->m_outcome[i], 1);
    json_decref(doc);
}

/* Writes the ends gathered so far; a batch whose slot came free tops up. */
static int flush_ends(bc_worker *w)
{
    char base[32];
    bc_err err = { "" };
    PGresult *res;
    char *doc;
    size_t n = json_array_size(w->ends), ended;

    if (n == 0)
        return 0;
    doc = json_dumps(w->ends, JSON_COMPACT);
    snprintf(base, sizeof base, "%.3f", (double)w->retry_base_ms / 1000.0);
    const char *p[] = { doc, w->results_topic, base, w->result_v1 ? "t" : "f" };
    if (!doc || !(res = bc_pg_exec(w->pg, "call_end_many", 4, p, &err))) {
        /* The calls stay open; the reconciler's quiet-call sweep asks the
         * carrier about them, so no slot is held for ever. */
        bc_log(w->ctx->log, BC_ERROR, "call.end_failed", "{s:I,s:s}", "calls", (json_int_t)n,
               "error", doc ? err.msg : "out of memory");
        free(doc);
        json_array_clear(w->ends);
        return -1;
    }
    free(doc);
    json_array_clear(w->ends);
    /* Two event rows per ended call (v2, v3), three when v1 goes out too. */
    ended = (size_t)PQntuples(res) / (w->result_v1 ? 3 : 2);
    bc_metric_add(w->m_dup_events, (double)(n - ended));   /* already ended */
    publish_rows(w, res);
    /* The v2 rows come first, one per ended call. */
    for (int i = 0; i < (int)ended; i++) {
        const char *batch = bc_pg_val(res, i, "key");

        count_outcome(w, bc_pg_val(res, i, "payload"));
        want_top_up(w, batch);
        /* A slot of this batch is free: let its waiting jobs try at once. */
        for (wbatch *b = w->batches; b; b = b->next)
            if (!strcmp(b->id, batch)) {
                b->retry_at = 0;
                b->misses = 0;
                if (b->free_hint >= 0)
                    b->free_hint++;
            }
    }
    PQclear(res);
    return 0;
}

/* Writes the accepted dials gathered so far: the carrier's id, 'queued'. */
static void flush_accepted(bc_worker *w)
{
    bc_err err = { "" };
    PGresult *res;
    size_t i, n = json_array_size(w->accepted);
    json_t *e;
    char *doc;

    if (n == 0)
        return;
    doc = json_dumps(w->accepted, JSON_COMPACT);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "dial_accepted_many", 1, p, &err))) {
        bc_log(w->ctx->log, BC_WARN, "dial.record_failed", "{s:I,s:s}", "calls", (json_int_t)n,
               "error", doc ? err.msg : "out of memory");
    } else {
        if ((size_t)PQntuples(res) < n) {
            json_array_foreach(w->accepted, i, e) {
                const char *c = json_string_value(json_object_get(e, "c"));
                int found = 0;

                for (int k = 0; k < PQntuples(res) && !found; k++)
                    found = !strcmp(PQgetvalue(res, k, 0), c);
                if (!found) {
                    bc_metric_add(w->m_fenced, 1);
                    bc_log(w->ctx->log, BC_WARN, "lease.late_write_refused", "{s:s,s:I}",
                           "call_id", c, "token",
                           json_integer_value(json_object_get(e, "t")));
                }
            }
        }
        PQclear(res);
    }
    free(doc);
    json_array_clear(w->accepted);
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

/* Keeps a dial the carrier paced, to send again PACED_RETRY_MS after now
 * (redial_due). Out of memory, it is not kept, as before. */
static void pace_again(bc_worker *w, const bc_dial *d, long long now)
{
    redial *rd = calloc(1, sizeof *rd);

    if (!rd)
        return;
    if (bc_dial_copy(&rd->d, d) < 0) {
        free(rd);
        return;
    }
    rd->at = now + PACED_RETRY_MS;
    rd->next = w->redials;
    w->redials = rd;
}

static void on_dial(void *ud, const bc_dial *d, bc_dial_result r, const char *sid,
                    const char *why)
{
    bc_worker *w = ud;
    bc_err err = { "" };
    PGresult *res;

    switch (r) {
    case BC_DIAL_ACCEPTED:
        bc_metric_add(w->m_dialed, 1);
        /* Written with the turn's other accepted dials (flush_accepted). */
        json_array_append_new(w->accepted, json_pack("{s:s,s:s?,s:I}", "c", d->call_id,
                                                     "sid", sid, "t",
                                                     (json_int_t)d->lease_token));
        break;
    case BC_DIAL_PACED:
        /* Over the carrier's pace: wait and place it again; costs no retry. */
        bc_metric_add(w->m_paced, 1);
        pace_again(w, d, now_ms());
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

/* At most this many jobs are claimed in one statement. */
#define MAX_CLAIM 256

/* The row of a statement's result that names call id in its first
 * column, or -1. */
static int row_of(const PGresult *res, const char *id)
{
    for (int k = 0; k < PQntuples(res); k++)
        if (!strcmp(PQgetvalue(res, k, 0), id))
            return k;
    return -1;
}

/* 1 if a statement's rows name call id in their first column. */
static int returned(const PGresult *res, const char *id)
{
    return row_of(res, id) >= 0;
}

/* Pauses the batches (a JSON array of ids) whose next call their tenant
 * could not pay; the pause undoes the refused claims, so their recipients
 * stay queued. If this fails the claims stay claimed and undialed, and the
 * reaper settles them as any other. */
static void credits_pause(bc_worker *w, json_t *batches)
{
    bc_err err = { "" };
    PGresult *res;
    char *ids = json_dumps(batches, JSON_COMPACT);
    const char *p[] = { ids };

    if (!ids || !(res = bc_pg_exec(w->pg, "credits_pause", 1, p, &err))) {
        bc_log(w->ctx->log, BC_WARN, "credits.pause_failed", "{s:s,s:s}", "batches",
               ids ? ids : "", "error", ids ? err.msg : "out of memory");
        free(ids);
        return;
    }
    for (int k = 0; k < PQntuples(res); k++)
        bc_log(w->ctx->log, BC_INFO, "batch.paused", "{s:s,s:s,s:s}", "batch_id",
               bc_pg_val(res, k, "id"), "tenant_id", bc_pg_val(res, k, "tenant_id"), "reason",
               BC_CREDITS_SHORT);
    bc_metrics_inc(w->ctx->metrics, "worker_batches_paused_for_credits_total",
                   "Batches that paused themselves because their tenant could not pay a call",
                   NULL, PQntuples(res));
    PQclear(res);
    free(ids);
}

/* Takes the claimed calls whose batch is still admitted and whose lease
 * is still ours to 'dialing', in one statement, and dials them; a claim
 * refused there is settled (claim_cancel) and never dialed, one the
 * tenant's policy stopped there ends with the rule (end_blocked), and one
 * its credits could not cover pauses its batch (credits_pause). */
static void start_dials(bc_worker *w, bc_dial *ds, int n)
{
    json_t *arr = json_array(), *short_of = json_array();
    bc_err err = { "" };
    PGresult *res;
    char *doc;

    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:I}", "c", ds[i].call_id, "b",
                                             ds[i].batch_id, "t",
                                             (json_int_t)ds[i].lease_token));
    doc = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "dial_start_many", 1, p, &err))) {
        /* Not known to be dialable: the reconciler settles the claims. */
        bc_log(w->ctx->log, BC_WARN, "dial.start_failed", "{s:i,s:s}", "calls", n, "error",
               doc ? err.msg : "out of memory");
        free(doc);
        json_decref(short_of);
        return;
    }
    free(doc);
    for (int i = 0; i < n; i++) {
        int k = row_of(res, ds[i].call_id);

        if (k >= 0 && bc_pg_val(res, k, "blocked") &&
            !strcmp(bc_pg_val(res, k, "blocked"), BC_CREDITS_SHORT)) {
            if (!json_array_size(short_of) ||
                strcmp(json_string_value(json_array_get(short_of,
                                                        json_array_size(short_of) - 1)),
                       ds[i].batch_id))
                json_array_append_new(short_of, json_string(ds[i].batch_id));
            bc_metric_add(w->m_not_dialed, 1);
            continue;
        }
        if (k >= 0 && bc_pg_val(res, k, "blocked")) {
            end_blocked(w, ds[i].call_id, ds[i].batch_id, bc_pg_val(res, k, "blocked"));
            continue;
        }
        if (k < 0) {
            /* Cancelled since the claim, or our lease was taken over: never
             * dial it. A cancel that raced the claim leaves it to us. */
            char tok[24];
            snprintf(tok, sizeof tok, "%lld", ds[i].lease_token);
            const char *c[] = { ds[i].call_id, tok };
            /* If this fails the claim stays 'claimed' and undialed: its
             * lease expires and the reaper settles it. */
            if (bc_pg_run(w->pg, "claim_cancel", 2, c, &err) < 0)
                bc_log(w->ctx->log, BC_WARN, "claim.cancel_failed", "{s:s,s:s}", "call_id",
                       ds[i].call_id, "error", err.msg);
            bc_metric_add(w->m_not_dialed, 1);
            continue;
        }
        if (bc_carrier_dial(w->carrier, &ds[i], &err) < 0)
            end_call(w, ds[i].call_id, "failed", 0, "error", NULL, err.msg);
    }
    PQclear(res);
    if (json_array_size(short_of))
        credits_pause(w, short_of);
    json_decref(short_of);
}

/* Sends again the paced dials that are due, through dial_start's gate
 * (redial_back): a dial whose batch was cancelled or paused meanwhile, or
 * whose lease was taken over, is not sent. */
static void redial_due(bc_worker *w, long long now)
{
    bc_dial ds[64];
    int n = 0, m = 0;
    json_t *arr;
    bc_err err = { "" };
    PGresult *res;
    char *doc;

    for (redial **pr = &w->redials; *pr && n < (int)(sizeof ds / sizeof *ds);) {
        redial *rd = *pr;

        if (rd->at > now) {
            pr = &rd->next;
            continue;
        }
        *pr = rd->next;
        ds[n++] = rd->d;
        free(rd);
    }
    if (!n)
        return;
    arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:I}", "c", ds[i].call_id, "t",
                                             (json_int_t)ds[i].lease_token));
    doc = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "redial_back", 1, p, &err))) {
        /* Tried again later, as if paced once more. */
        bc_log(w->ctx->log, BC_WARN, "dial.redial_failed", "{s:i,s:s}", "calls", n, "error",
               doc ? err.msg : "out of memory");
        free(doc);
        for (int i = 0; i < n; i++) {
            pace_again(w, &ds[i], now);
            bc_dial_clear(&ds[i]);
        }
        return;
    }
    free(doc);
    for (int i = 0; i < n; i++) {
        if (returned(res, ds[i].call_id)) {
            ds[m++] = ds[i];
        } else {
            bc_metric_add(w->m_not_dialed, 1);
            bc_dial_clear(&ds[i]);
        }
    }
    PQclear(res);
    if (m)
        start_dials(w, ds, m);
    for (int i = 0; i < m; i++)
        bc_dial_clear(&ds[i]);
}

/* Drops the jobs marked gone from b's wait queue. */
static void unlink_gone(wbatch *b)
{
    job **pj = &b->head, *last = NULL;

    while (*pj) {
        if ((*pj)->gone) {
            *pj = (*pj)->next_wait;
            continue;
        }
        last = *pj;
        pj = &(*pj)->next_wait;
    }
    b->tail = last;
}

/* Fills d's agent leg from claim row k: the TwiML or URL that connects the
 * answered call to its agent, with a token good for the whole call and an
 * hour after it (the agent's report comes after the hang-up). 0 or -1. */
static int agent_leg(bc_worker *w, bc_dial *d, const PGresult *res, int k, const job *j)
{
    char token[BC_AGENT_TOKEN_MAX], ctx_url[512];
    long long exp = (long long)time(NULL) + d->timeout_s + d->time_limit_s + 3600;
    json_t *vars = json_loads(bc_pg_val(res, k, "vars") ? bc_pg_val(res, k, "vars") : "{}", 0,
                              NULL);
    json_t *meta = json_loads(bc_pg_val(res, k, "meta") ? bc_pg_val(res, k, "meta") : "{}", 0,
                              NULL);
    bc_agent_call c = { .call_id = d->call_id, .batch_id = j->batch,
                        .tenant_id = bc_pg_val(res, k, "tenant_id"),
                        .agent_id = bc_pg_val(res, k, "agent_id"), .recipient_id = j->recipient,
                        .to = d->to, .from = d->from, .attempt = j->attempt, .token = token,
                        .context_url = ctx_url, .variables = vars, .metadata = meta };
    bc_err err = { "" };
    int inl = 0, rc;

    snprintf(ctx_url, sizeof ctx_url, "%s/v1/calls/%s/context", w->public_url, d->call_id);
    rc = bc_agent_token(w->agent_secret, d->call_id, exp, token, sizeof token);
    if (rc == 0)
        rc = bc_agent_instructions(bc_pg_val(res, k, "endpoint"), &c, &d->twiml, &d->url, &inl,
                                   &err);
    if (rc < 0)
        bc_log(w->ctx->log, BC_WARN, "dial.no_agent_leg", "{s:s,s:s}", "call_id", d->call_id,
               "error", err.msg[0] ? err.msg : "token");
    else if (!inl && d->twiml)
        bc_metric_add(w->m_ctx_fetch, 1);
    json_decref(vars);
    json_decref(meta);
    return rc;
}

/* Claims the jobs js[0..n) (bs[i] is js[i]'s batch) in one statement and
 * dials those claimed. Returns how many were dialed. */
static int claim_many(bc_worker *w, job **js, wbatch **bs, int n, long long now)
{
    json_t *arr = json_array();
    char calls[MAX_CLAIM][48], ttl[16];
    bc_dial ds[MAX_CLAIM];
    job *gone[MAX_CLAIM];
    int nd = 0, ngone = 0;
    bc_err err = { "" };
    PGresult *res;
    char *doc;

    for (int i = 0; i < n; i++) {
        char attempt[16];

        if (bc_id_new(calls[i], sizeof calls[i], "ac") < 0) {
            json_decref(arr);
            return 0;
        }
        snprintf(attempt, sizeof attempt, "%d", js[i]->attempt);
        json_array_append_new(arr, json_pack("{s:i,s:s,s:s,s:i,s:s}", "n", i, "r",
                                             js[i]->recipient, "b", js[i]->batch, "a",
                                             js[i]->attempt, "c", calls[i]));
    }
    doc = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    snprintf(ttl, sizeof ttl, "%ld", w->lease_ttl_s);
    const char *p[] = { doc, w->holder, ttl };
    if (!doc || !(res = bc_pg_exec(w->pg, "claim_many", 3, p, &err))) {
        /* Database trouble: keep the jobs, try again shortly. */
        bc_log(w->ctx->log, BC_WARN, "claim.failed", "{s:i,s:s}", "jobs", n, "error",
               doc ? err.msg : "out of memory");
        free(doc);
        for (int i = 0; i < n; i++)
            bs[i]->retry_at = now + NO_SLOT_RETRY_MS;
        return 0;
    }
    free(doc);
    for (int i = 0; i < n; i++)
        if (!js[i]->tried) {
            js[i]->tried = 1;
            w->untried--;
        }
    for (int k = 0; k < PQntuples(res); k++) {
        int i = (int)bc_pg_int(res, k, "n", -1);
        const char *outcome = bc_pg_val(res, k, "outcome");
        job *j;

        if (i < 0 || i >= n)
            continue;
        j = js[i];
        if (!strcmp(outcome, "noslot")) {
            bc_metric_add(w->m_noslot, 1);
            if (bs[i]->free_hint != 0) {
                /* Every slot is taken: wait for ends, probing now and then,
                 * less often while none comes free (at most 5 x the base). */
                bs[i]->free_hint = 0;
                bs[i]->misses++;
            }
            bs[i]->retry_at = now + NO_SLOT_RETRY_MS * (bs[i]->misses < 5 ? bs[i]->misses : 5);
            continue;
        }
        if (!strcmp(outcome, "claimed")) {
            bc_dial *d = &ds[nd++];

            memset(d, 0, sizeof *d);
            bc_metric_add(w->m_claimed, 1);
            snprintf(d->call_id, sizeof d->call_id, "%s", calls[i]);
            snprintf(d->to, sizeof d->to, "%s", bc_pg_val(res, k, "to_number"));
            snprintf(d->from, sizeof d->from, "%s", bc_pg_val(res, k, "from_number"));
            d->timeout_s = (int)bc_pg_int(res, k, "ring", 60);
            d->time_limit_s = (int)bc_pg_int(res, k, "max_min", 480) * 60;
            callback_url(w, "status", bc_pg_val(res, k, "tenant_id"), j->batch, calls[i],
                         d->callback_url, sizeof d->callback_url);
            callback_url(w, "amd", bc_pg_val(res, k, "tenant_id"), j->batch, calls[i],
                         d->amd_url, sizeof d->amd_url);
            d->record = !strcmp(bc_pg_val(res, k, "record") ? bc_pg_val(res, k, "record") : "",
                                "t");
            if (d->record)
                callback_url(w, "recording", bc_pg_val(res, k, "tenant_id"), j->batch, calls[i],
                             d->recording_url, sizeof d->recording_url);
            snprintf(d->batch_id, sizeof d->batch_id, "%s", j->batch);
            d->lease_token = bc_pg_int(res, k, "lease_token", 0);
            if (agent_leg(w, d, res, k, j) < 0) {
                /* Claimed, so it ends now, undialed, with the reason. */
                end_call(w, d->call_id, "failed", 0, "error", NULL,
                         "the agent has no endpoint the call can reach");
                bc_dial_clear(d);
                nd--;
            }
        } else if (!strcmp(outcome, "stale")) {
            bc_metric_add(w->m_stale, 1);
        }
        /* Claimed (durable now), stale, or back in the backlog until its
         * calling hours: the job's offset may be committed. */
        j->gone = 1;
        gone[ngone++] = j;
    }
    PQclear(res);
    for (int i = 0; i < n; i++)
        if (i == 0 || bs[i] != bs[i - 1])
            unlink_gone(bs[i]);
    for (int i = 0; i < ngone; i++)
        job_done(w, gone[i]);
    if (nd)
        start_dials(w, ds, nd);
    for (int i = 0; i < nd; i++)
        bc_dial_clear(&ds[i]);
    return nd;
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

/* One claim statement per turn for the waiting jobs of every batch that
 * may have a free slot, a fair share of each, within the dials the carrier
 * may take and its pace. */
static void dispatch(bc_worker *w)
{
    long long now = now_ms();
    job *js[MAX_CLAIM];
    wbatch *bs[MAX_CLAIM];
    int n = 0, eligible = 0, share;
    long room = w->max_dials - bc_carrier_inflight(w->carrier);

    for (wbatch *b = w->batches; b; b = b->next)
        eligible += b->head && b->retry_at <= now;
    /* Every eligible batch gets its share of one statement (at least one
     * job); with more batches than that, the rest go first next turn. */
    share = eligible ? MAX_CLAIM / eligible : 0;
    if (share < 1)
        share = 1;
    for (wbatch *b = w->batches; b && n < MAX_CLAIM && n < room; b = b->next) {
        int taken = 0, want = share;

        if (b->retry_at > now || !b->head)
            continue;
        if (b->free_hint >= 0 && b->free_hint + 1 < want)
            want = b->free_hint + 1;
        b->free_hint = -1;    /* the claim's outcome sets it again */
        for (job *j = b->head; j && taken < want && n < MAX_CLAIM && n < room; j = j->next_wait) {
            if (!pace_take(w, now))
                goto full;
            js[n] = j;
            bs[n++] = b;
            taken++;
        }
    }
full:
    if (n > 0) {
        int dialed = claim_many(w, js, bs, n, now);

        if (w->cps > 0)
            w->pace_tokens += n - dialed;    /* nothing dialed for those: give back */
        /* The batches served this turn go last next turn. */
        wbatch *last = bs[n - 1];
        if (last->next) {
            wbatch *t = last->next;

            while (t->next)
                t = t->next;
            t->next = w->batches;
            w->batches = last->next;
            last->next = NULL;
        }
    }
    for (wbatch **pb = &w->batches; *pb;) {
        wbatch *b = *pb;

        if (!b->head) {
            *pb = b->next;
            free(b);
            continue;
        }
        pb = &b->next;
    }
    redial_due(w, now);
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

/* Asks the carrier to change a live call: form is one pair (key, value). */
static void update_call(bc_worker *w, const char *sid, const char *call, const char *key,
                        const char *value)
{
    bc_form f = { 0 };
    bc_err err = { "" };

    bc_form_add(&f, key, value);
    if (bc_carrier_update(w->carrier, sid, call, &f, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "call.update_failed", "{s:s,s:s}", "call_id", call,
               "error", err.msg);
    bc_form_free(&f);
}

static void on_update(void *ud, const char *call, int ok, const char *why)
{
    bc_worker *w = ud;

    bc_metric_add(ok ? w->m_updates : w->m_update_failed, 1);
    if (!ok)
        bc_log(w->ctx->log, BC_WARN, "call.update_refused", "{s:s,s:s}", "call_id", call,
               "reason", why);
}

/* Writes the turn's AMD verdicts and applies the voicemail policy where a
 * machine answered: hang up, or play the message and hang up (the stream
 * to the agent stops; the callee's machine records it). amd_many acts on a
 * call's first verdict only, so a message is played once. */
static void flush_amds(bc_worker *w)
{
    bc_err err = { "" };
    PGresult *res;
    char *doc;

    if (json_array_size(w->amds) == 0)
        return;
    doc = json_dumps(w->amds, JSON_COMPACT);
    json_array_clear(w->amds);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "amd_many", 1, p, &err))) {
        bc_log(w->ctx->log, BC_WARN, "amd.record_failed", "{s:s}", "error",
               doc ? err.msg : "out of memory");
        free(doc);
        return;
    }
    free(doc);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *call = bc_pg_val(res, i, "id"), *sid = bc_pg_val(res, i, "sid");
        char *twiml = NULL;

        bc_metric_add(w->m_voicemail_actions, 1);
        if (!strcmp(bc_pg_val(res, i, "action"), "hangup")) {
            update_call(w, sid, call, "Status", "completed");
        } else if ((twiml = bc_agent_voicemail_twiml(bc_pg_val(res, i, "text"),
                                                     bc_pg_val(res, i, "audio_url")))) {
            update_call(w, sid, call, "Twiml", twiml);
            free(twiml);
        }
    }
    PQclear(res);
}

static void apply_event(bc_worker *w, const rd_kafka_message_t *m)
{
    json_t *ev = json_loadb(m->payload, m->len, 0, NULL);
    const char *call = json_string_value(json_object_get(ev, "call_id"));
    const char *status = json_string_value(json_object_get(ev, "status"));
    const char *sid = json_string_value(json_object_get(ev, "carrier_call_id"));
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    int duration = (int)json_integer_value(json_object_get(ev, "duration"));

    bc_metric_add(w->m_events, 1);
    if (call && kind && !strcmp(kind, "amd")) {
        const char *by = json_string_value(json_object_get(ev, "answered_by"));

        if (by)
            json_array_append_new(w->amds, json_pack("{s:s,s:s,s:s?}", "id", call, "ab", by,
                                                     "sid", sid));
    } else if (call && kind && !strcmp(kind, "hangup")) {
        /* Ending a live call (a cancel with hang-up): the carrier ends it
         * and its final status callback frees the slot, never before. A
         * call not yet answered is cancelled, one talking hung up. */
        if (sid)
            update_call(w, sid, call, "Status",
                        status && !strcmp(status, "in-progress") ? "completed" : "canceled");
    } else if (!call || !status) {
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
        /* Written after this turn's progress (bc_worker_tick), so a call's
         * history stays whole. An answering machine that took a completed
         * call (AnsweredBy machine_...) makes it a voicemail. */
        const char *by = json_string_value(json_object_get(ev, "answered_by"));
        int machine = !strcmp(bc_retry_outcome(status, by), "voicemail");

        end_call_by(w, call, status, duration,
                    machine ? "voicemail" : end_reason_of(status, duration, 0), sid, by, NULL);
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
    w->accepted = json_array();
    w->amds = json_array();
    w->ends = json_array();
    snprintf(w->region, sizeof w->region, "%s", bc_config_str(c, "region"));
    w->public_url = bc_config_str(c, "public-url");
    w->agent_secret = bc_config_str(c, "agent-token-secret");
    w->max_in_hand = bc_config_int(c, "max-in-hand");
    w->max_dials = bc_config_int(c, "max-dials-in-flight");
    w->lease_ttl_s = bc_config_int(c, "lease-ttl");
    w->retry_base_ms = bc_config_int(c, "retry-base-ms");
    w->result_v1 = bc_config_bool(c, "call-result-v1");
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
    bc_carrier_on_update(w->carrier, on_update);
    if (bc_carrier_events(w->carrier, bc_config_str(c, "carrier-events"), err) < 0) {
        bc_err_wrap(err, "BC_CARRIER_EVENTS");
        goto fail;
    }
    if (bc_carrier_machine_detection(w->carrier, bc_config_str(c, "machine-detection"),
                                     err) < 0) {
        bc_err_wrap(err, "BC_CARRIER_MACHINE_DETECTION");
        goto fail;
    }
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
    M(m_turns, "worker_loop_turns_total",
      "Turns of the main loop: events, intake, claims, dials");
    M(m_renew_failed, "worker_lease_renewals_failed_total",
      "Lease renewals that failed; after half a lease's life without one the worker stops dialing");
    M(m_stale, "worker_stale_jobs_total", "Jobs dropped: already claimed, finished or cancelled");
    M(m_noslot, "worker_lease_waits_total", "Claims that found no free concurrency slot");
    M(m_dialed, "worker_calls_started_total", "Calls the carrier accepted");
    M(m_dial_failed, "worker_dial_failures_total", "Dials the carrier refused or that failed");
    M(m_dial_unknown, "worker_dial_unknown_total",
      "Dials whose outcome the carrier did not tell (5xx, timeout); left to the reconciler");
    M(m_paced, "worker_dials_paced_total", "Dials the carrier asked to slow down (429)");
    M(m_events, "worker_carrier_events_total", "Carrier events consumed");
    M(m_dup_events, "worker_duplicate_events_total", "Terminal carrier events already applied");
    M(m_fenced, "worker_late_writes_refused_total",
      "Writes refused because the lease was taken over (fencing token no longer current)");
    M(m_not_dialed, "worker_claims_not_dialed_total",
      "Claims dropped before dialing: batch cancelled or lease taken over");
    M(m_updates, "worker_call_updates_total",
      "Live calls the carrier changed for us (hang-ups, voicemail messages)");
    M(m_update_failed, "worker_call_update_failures_total",
      "Changes of a live call the carrier refused or did not answer");
    M(m_voicemail_actions, "worker_voicemail_actions_total",
      "Machines answered where the batch's voicemail policy hung up or left a message");
    M(m_ctx_fetch, "worker_agent_context_by_route_total",
      "Calls whose variables did not fit in the TwiML: the agent fetches them by token");
#undef M
    w->m_in_hand = bc_metrics_get(ctx->metrics, BC_GAUGE, "worker_jobs_in_hand",
                                  "Jobs consumed and not yet claimed or dropped", NULL, NULL, 0);
    w->m_requests = bc_metrics_get(ctx->metrics, BC_GAUGE, "worker_carrier_requests_in_flight",
                                   "Carrier requests (dials, updates) sent and not yet answered",
                                   NULL, NULL, 0);
    w->m_untried = bc_metrics_get(ctx->metrics, BC_GAUGE, "worker_jobs_untried",
                                  "Jobs in hand never yet offered to a claim", NULL, NULL, 0);
    w->m_redials = bc_metrics_get(ctx->metrics, BC_GAUGE, "worker_dials_paced_waiting",
                                  "Dials the carrier paced (429), held to be sent again", NULL,
                                  NULL, 0);
    for (int i = 0; i < 6; i++) {
        char lb[48];

        snprintf(lb, sizeof lb, "outcome=\"%s\"", OUTCOMES[i]);
        w->m_outcome[i] = bc_metrics_get(ctx->metrics, BC_COUNTER, "worker_calls_finished_total",
                                         "Attempts ended, by the carrier's final status", lb,
                                         NULL, 0);
    }
    w->m_jobs_lag = bc_metrics_get(ctx->metrics, BC_GAUGE, "kafka_consumer_lag",
                                   "Messages on assigned partitions not yet fetched",
                                   "topic=\"jobs\"", NULL, 0);
    w->m_events_lag = bc_metrics_get(ctx->metrics, BC_GAUGE, "kafka_consumer_lag", NULL,
                                     "topic=\"carrier-events\"", NULL, 0);
    bc_carrier_observe(w->carrier, bc_metrics_get(ctx->metrics, BC_HISTOGRAM,
                                                  "worker_dispatch_seconds",
                                                  "Dispatch latency: from a dial request leaving"
                                                  " the worker to the carrier's answer",
                                                  NULL, DISPATCH_BUCKETS, 12));
    /* Alive before ready: a batch created once /readyz answers is admitted. */
    if (beat(w, err) < 0)
        goto fail;
    w->renewed_at = now_ms();
    atomic_store(&w->renewing, 1);
    atomic_store(&w->ready, 1);
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

    return w && atomic_load(&w->ready) && !atomic_load(&w->draining) &&
           atomic_load(&w->renewing) && bc_pg_up(w->pg);
}

/* Renews every lease this worker holds. Leases it cannot renew expire
 * after lease-ttl, and the reaper then gives their slots to other calls
 * while ours may still be live: after half of that without a renewal the
 * worker dials no more (renewing goes to 0, readiness with it) until one
 * succeeds. */
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

static int redials_waiting(const bc_worker *w)
{
    int n = 0;

    for (const redial *r = w->redials; r; r = r->next)
        n++;
    return n;
}

static void periodic(bc_worker *w)
{
    long long now = now_ms();
    bc_err err = { "" };

    flush_accepted(w);
    flush_ends(w);
    run_top_ups(w, now);
    if (now >= w->next_outbox) {
        if (bc_publisher_tick(w->pub, w->pg, &err) < 0)
            bc_log(w->ctx->log, BC_WARN, "outbox.delete_failed", "{s:s}", "error", err.msg);
        w->next_outbox = now + 50;
    }
    if (now >= w->next_renew) {
        renew(w, now);
        if (!w->draining && beat(w, &err) < 0)
            bc_log(w->ctx->log, BC_WARN, "worker.beat_failed", "{s:s}", "error", err.msg);
        w->next_renew = now + bc_lease_renew_ms(w->lease_ttl_s);
    }
    bc_metric_set(w->m_in_hand, (double)w->in_hand);
    bc_metric_set(w->m_requests, (double)bc_carrier_inflight(w->carrier));
    bc_metric_set(w->m_redials, (double)redials_waiting(w));
    bc_metric_set(w->m_untried, (double)w->untried);
    bc_metric_set(w->m_jobs_lag, (double)bc_kafka_lag(w->jobs));
    bc_metric_set(w->m_events_lag, (double)bc_kafka_lag(w->events));
}

void bc_worker_tick(bc_worker *w)
{
    rd_kafka_message_t *m;
    int n;

    /* Events first: they free slots. With no dial in flight nothing else
     * would make this loop wait (bc_carrier_perform waits only on dials):
     * wait here for an event, briefly, instead of spinning. */
    rd_kafka_message_t *done[500];
    int idle = bc_carrier_inflight(w->carrier) == 0;
    for (n = 0; n < 500 && (m = bc_kafka_consume(w->events, idle && n == 0 ? 5 : 0)); n++) {
        apply_event(w, m);
        done[n] = m;
    }
    /* Offsets are stored only once their effect is written: progress
     * first, so each call's history is in order, then the ends. */
    flush_accepted(w);
    flush_progress(w);
    flush_amds(w);
    flush_ends(w);
    for (int i = 0; i < n; i++) {
        bc_kafka_store(w->events, done[i]);
        rd_kafka_message_destroy(done[i]);
    }
    if (!w->draining) {
        for (n = 0; n < 500 && w->in_hand < w->max_in_hand &&
                    (m = bc_kafka_consume(w->jobs, 0)); n++)
            take_job(w, m);
        /* Back-pressure: stop fetching instead of buffering without bound,
         * and fetch again below half of it: 2 * in_hand < max, not in_hand
         * < max / 2, which with a maximum of 1 never holds (0 < 0). */
        if (!w->paused && w->in_hand >= w->max_in_hand) {
            bc_kafka_pause(w->jobs, 1);
            w->paused = 1;
        } else if (w->paused && 2 * w->in_hand < w->max_in_hand) {
            bc_kafka_pause(w->jobs, 0);
            w->paused = 0;
        }
        if (atomic_load(&w->renewing))
            dispatch(w);
    }
    bc_carrier_perform(w->carrier, 5);
    periodic(w);
    /* Last: a scrape that sees this turn counted sees its gauges too. */
    bc_metric_add(w->m_turns, 1);
}

void bc_worker_drain(bc_worker *w, int grace_ms)
{
    long long until = now_ms() + grace_ms;

    w->draining = 1;
    bc_log(w->ctx->log, BC_INFO, "worker.draining", "{s:I,s:i}", "jobs_in_hand",
           (json_int_t)w->in_hand, "dials_in_flight", bc_carrier_inflight(w->carrier));
    /* Taking no more work: no longer one of the region's live workers. */
    const char *h[] = { w->holder };
    bc_err err = { "" };
    /* If this fails the heartbeat simply expires. */
    if (bc_pg_run(w->pg, "worker_gone", 1, h, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "worker.gone_failed", "{s:s}", "error", err.msg);
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
    json_decref(w->accepted);
    json_decref(w->amds);
    json_decref(w->ends);
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
        bc_dial_clear(&r->d);
        free(r);
    }
    bc_carrier_free(w->carrier);
    bc_publisher_free(w->pub, 0);
    bc_pg_free(w->pg);
    free(w);
}
