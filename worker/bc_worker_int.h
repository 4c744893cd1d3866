/* bc_worker_int: the state of one worker process, shared by the modules of
 * worker/ and nothing else (as redis's server.h or PgBouncer's bouncer.h).
 * A recipient's path through them, in order:
 *
 *   bc_intake    its job arrives from Kafka and waits in its batch's queue;
 *                offsets are stored once every job before it is durable
 *   bc_pace      the carrier's calls per second, a token per dial
 *   bc_claim     the turn's claims: attempt, slot, call row and the dial's
 *                gate in one statement (worker/sql/claim.sql)
 *   bc_dialing   the dial, its answer, and a paced dial's way back
 *   bc_events    carrier events: progress, answering machines, hang-ups
 *   bc_ends      the turn's ended attempts in one statement, and their
 *                call-result events
 *   bc_topup     a batch whose slot came free releases its next jobs
 *   bc_renewal   the leases of live calls, and this worker's heartbeat
 *
 * bc_worker.c holds the loop that runs them, and carrier/ what speaks to
 * the carrier: its REST adapter and the agent leg of each call. */
#ifndef BC_WORKER_INT_H
#define BC_WORKER_INT_H

#include <jansson.h>
#include <stdatomic.h>

#include "bc_carrier.h"
#include "bc_intake.h"
#include "bc_kafka.h"
#include "bc_metrics.h"
#include "bc_pace.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_svc.h"
#include "bc_worker.h"

/* Batches whose windows a worker tops up in one interval (bc_topup). */
#define BC_TOPUP_MAX 256
/* A batch whose claim found no slot tries again this long after, times its
 * misses in a row up to five (bc_claim.c). */
#define BC_NO_SLOT_RETRY_MS 20
/* A batch waiting while its tenant's other batch drains tries again this
 * long after each of that batch's ends: the scheduler, woken by the end,
 * grants the slot a few ms after it (bc_wbatch_slot_freed). */
#define BC_HANDOVER_TRY_MS 5

/* Carrier events taken in one turn, at most (bc_events). */
#define BC_EVENTS_MAX 500

/* Outcome labels of worker_calls_finished_total (bc_ends). */
#define BC_OUTCOMES 6

typedef struct bc_redial bc_redial;   /* a paced dial to send again (bc_dialing) */

struct bc_worker {
    bc_ctx *ctx;
    bc_pg *pg;
    bc_kafka *jobs, *events;
    int wake[2];                 /* a pipe both consumers write to (bc_kafka_wake) */
    bc_publisher *pub;
    bc_carrier *carrier;
    bc_intake *intake;
    char holder[96];
    char region[16];
    char jobs_topic[160], results_topic[160];
    const char *public_url;
    const char *callback_url;   /* the carrier's callbacks: public_url unless set */
    const char *agent_secret;    /* signs per-call agent tokens */
    long max_in_hand, max_dials, lease_ttl_s, retry_base_ms;
    int result_v1;               /* also publish call-results as v1 */
    int result_v2;               /* publish call ends as v2 beside v3 */
    bc_pace pace;                /* the carrier's pace */
    /* Read by the readiness probe's thread: written only by the loop's. */
    atomic_int draining, ready, renewing;
    bc_redial *redials;
    /* What a turn gathered, each written in one statement per turn. */
    json_t *progress;            /* progress events: [{id,status,sid}] */
    json_t *accepted;            /* accepted dials: [{c,sid,t}] */
    json_t *amds;                /* AMD verdicts: [{id,ab,sid}] */
    json_t *ends;                /* ended attempts (call_end_many) */
    json_t *ends_by_id;          /* the same entries by call id (bc_ends.c) */
    rd_kafka_message_t *taken[BC_EVENTS_MAX]; /* events whose offsets wait for the turn's writes */
    int ntaken;
    char topups[BC_TOPUP_MAX][48]; /* batches whose window wants topping up */
    int ntopups;
    long long next_topup;
    long long next_renew, next_outbox;
    long long renewed_at;        /* the last lease renewal that succeeded */
    bc_metric *m_renew_failed;
    bc_metric *m_claimed, *m_stale, *m_noslot, *m_dialed, *m_dial_failed, *m_dial_unknown,
              *m_paced, *m_in_hand, *m_events, *m_dup_events, *m_fenced,
              *m_not_dialed, *m_jobs_lag, *m_events_lag, *m_ctx_fetch, *m_updates,
              *m_update_failed, *m_voicemail_actions;
    bc_metric *m_event_age[2];   /* worker_carrier_event_age_seconds: [1] the ends */
    bc_metric *m_outcome[BC_OUTCOMES]; /* worker_calls_finished_total by outcome */
    bc_metric *m_turns, *m_requests, *m_redials, *m_untried;
    bc_metric *m_topup_skipped;  /* top-ups left to the transaction releasing it */
};

#endif
