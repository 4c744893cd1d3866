/* bc_worker: the loop of one worker process, and its life. A turn reads
 * top to bottom as a recipient's path: carrier events free slots first
 * (bc_events, their ends written at once), then new jobs come in
 * (bc_intake) and are claimed and dialed (bc_claim, bc_dialing), then the
 * turn's other writes one by one, serving again between them, and
 * bc_events_settle stores the offsets; then the loop's one wait, for
 * the carrier or Kafka, and the periodic work (bc_ends, bc_topup,
 * bc_renewal). bc_worker_int.h names every module. */
#include "bc_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_claim.h"
#include "bc_crypto.h"
#include "bc_dialing.h"
#include "bc_ends.h"
#include "bc_events.h"
#include "bc_renewal.h"
#include "bc_topup.h"
#include "bc_worker_int.h"

/* A carrier event's age when the worker takes it: what the hop from the
 * API through Kafka to the loop costs a freed slot (bench/RESULTS.md,
 * fifteenth session: 4-12 ms mean in B3). */
static const double EVENT_AGE_BUCKETS[11] = { 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                              0.25, 1, 5, 30 };
static const double DISPATCH_BUCKETS[12] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5, 1, 2.5, 5, 10, 30 };

static const bc_pg_stmt stmts[] = {
    /* The turn's statements join a JSON list to calls and recipients by
     * key, and are planned the same whatever the list holds, so they keep
     * one generic plan. History, all in B2 from an empty database
     * (bench/RESULTS.md): force_custom_plan planned every execution (the
     * ends 5.6 ms a call); PostgreSQL's default (auto) planned five custom
     * plans again after each statistics change, which autovacuum makes
     * every few seconds while the tables grow (the ends were planned at 97
     * of 138 executions in one run): the ends still planned 3.1 ms a call,
     * the status updates 0.8 ms. A generic plan is made again at each such
     * change, so one made while the tables were small does not outlive
     * them; no statement ran slower with it, and planning fell to 1.3 ms
     * and 0.02 ms. Said here, not left to a server default. */
    { "", "SET plan_cache_mode = force_generic_plan" },
    /* But a generic plan made while a table is new (never analyzed: 10
     * pages, 110 rows to the planner) lives until autovacuum first analyzes
     * it, and at the default random_page_cost (4) hashing such a table
     * costs less than looking up a turn's keys: the accepted dials hashed
     * every call, 35 ms a statement for 123 rows, for the first ten seconds
     * of a B2 (bench/RESULTS.md, twenty-third session). A turn's pages are
     * in memory, where a random read costs about what a sequential one
     * does; at 1.1 the lookup by key wins at any size, and each statement
     * locks its calls in its list's order, which is call id order. */
    { "", "SET random_page_cost = 1.1" },
    BC_PG_INCLUDE(bc_publisher_stmts),
    BC_PG_INCLUDE(bc_claim_stmts),
    BC_PG_INCLUDE(bc_dialing_stmts),
    BC_PG_INCLUDE(bc_events_stmts),
    BC_PG_INCLUDE(bc_ends_stmts),
    BC_PG_INCLUDE(bc_topup_stmts),
    BC_PG_INCLUDE(bc_renewal_stmts),
    { 0, 0 },
};

int bc_worker_explain(bc_ctx *ctx, FILE *out, bc_err *err)
{
    bc_pg *pg = bc_pg_connect(bc_config_str(ctx->cfg, "pg-dsn"), stmts, err);
    json_t *plans = pg ? bc_pg_explain(pg, err) : NULL;
    int rc = plans && json_dumpf(plans, out, JSON_INDENT(1)) == 0 ? 0 : -1;

    if (plans && rc < 0)
        bc_err_set(err, "explain: write failed");
    json_decref(plans);
    bc_pg_free(pg);
    return rc;
}

/* ---- the loop --------------------------------------------------------- */

/* Times a turn serves again between its writes (bc_worker_tick). */
#define SERVE_ROUNDS 4

static void periodic(bc_worker *w)
{
    long long now = bc_now_ms();
    bc_err err = { "" };

    bc_dialing_flush_accepted(w);
    bc_ends_flush(w);
    bc_topup_run(w, now);
    if (now >= w->next_outbox) {
        if (bc_publisher_tick(w->pub, w->pg, &err) < 0)
            bc_log(w->ctx->log, BC_WARN, "outbox.delete_failed", "{s:s}", "error", err.msg);
        w->next_outbox = now + 50;
    }
    bc_renewal_tick(w, now);
    bc_metric_set(w->m_in_hand, (double)bc_intake_in_hand(w->intake));
    bc_metric_set(w->m_requests, (double)bc_carrier_inflight(w->carrier));
    bc_metric_set(w->m_redials, (double)bc_dialing_waiting(w));
    bc_metric_set(w->m_untried, (double)bc_intake_untried(w->intake));
    bc_metric_set(w->m_jobs_lag, (double)bc_kafka_lag(w->jobs));
    bc_metric_set(w->m_events_lag, (double)bc_kafka_lag(w->events));
}

/* Empties the wake pipe: what woke the loop is consumed next turn. */
static void woken(bc_worker *w)
{
    char buf[64];

    while (read(w->wake[0], buf, sizeof buf) > 0)
        ;
}

/* Frees slots and fills them: the events Kafka holds (their ends written
 * at once), then the jobs, claimed and dialed; the dials go out before
 * anything else is written. Returns 1 if a consumer was left holding
 * messages. */
static int serve(bc_worker *w)
{
    int more = bc_events_turn(w);

    if (!w->draining) {
        more |= bc_intake_fetch(w->intake, w->max_in_hand);
        if (atomic_load(&w->renewing)) {
            long long now = bc_now_ms();

            bc_claim_turn(w, now);
            bc_dialing_resend(w, now);
        }
    }
    bc_carrier_perform(w->carrier, 0, -1);
    return more;
}

void bc_worker_tick(bc_worker *w)
{
    int more = serve(w), rounds = 0;

    /* The turn's other writes, one statement at a time, and between two
     * of them whatever came meanwhile: an end that arrived during the
     * turn frees its slot after the statement in progress, not after the
     * whole turn, which took 7 ms where ends came (bench/RESULTS.md,
     * seventeenth session). A few rounds at most, so a steady stream of
     * events cannot keep the loop from its timers and renewals. */
    while (bc_events_write_next(w))
        if (rounds++ < SERVE_ROUNDS)
            more |= serve(w);
    bc_events_settle(w);
    /* The loop's one wait: for the carrier's answers, or for Kafka to bring
     * an event or a job (the pipe), at most 5 ms for the timers, and none
     * while a consumer was left holding messages. Before this the wait
     * was for the carrier alone, so an end that arrived meanwhile waited
     * out the rest of it before its slot was freed (bench/RESULTS.md). */
    bc_carrier_perform(w->carrier, more ? 0 : 5, w->wake[0]);
    woken(w);
    periodic(w);
    /* Last: a scrape that sees this turn counted sees its gauges too. */
    bc_metric_add(w->m_turns, 1);
}

int bc_worker_ready(void *ud)
{
    bc_worker *w = ud;

    return w && atomic_load(&w->ready) && !atomic_load(&w->draining) &&
           atomic_load(&w->renewing) && bc_pg_up(w->pg);
}

void bc_worker_drain(bc_worker *w, int grace_ms)
{
    long long until = bc_now_ms() + grace_ms;

    w->draining = 1;
    bc_log(w->ctx->log, BC_INFO, "worker.draining", "{s:I,s:i}", "jobs_in_hand",
           (json_int_t)bc_intake_in_hand(w->intake), "dials_in_flight",
           bc_carrier_inflight(w->carrier));
    /* Taking no more work: no longer one of the region's live workers. */
    bc_renewal_gone(w);
    /* Jobs not claimed stay unstored: Kafka hands them to another worker.
     * Dials already sent finish here so their outcome is recorded. */
    while (bc_carrier_inflight(w->carrier) > 0 && bc_now_ms() < until) {
        bc_carrier_perform(w->carrier, 10, -1);
        periodic(w);
    }
    /* Wait for the broker to acknowledge what we published, then forget
     * those outbox rows, so the relay does not send them a second time. */
    bc_publisher_flush(w->pub, (int)(until > bc_now_ms() ? until - bc_now_ms() : 0));
    w->next_outbox = 0;
    w->next_topup = 0;
    periodic(w);
}

/* ---- life ------------------------------------------------------------- */

static void metrics(bc_worker *w)
{
    bc_metrics *m = w->ctx->metrics;

#define M(field, name, help) w->field = bc_metrics_get(m, BC_COUNTER, name, help, NULL, NULL, 0)
    M(m_claimed, "worker_claims_total", "Recipients claimed with a lease");
    M(m_turns, "worker_loop_turns_total", "Turns of the main loop: events, intake, claims, dials");
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
    M(m_topup_skipped, "worker_window_topups_skipped_total",
      "Window top-ups put off to the next interval: another transaction was releasing the batch");
#undef M
    w->m_in_hand = bc_metrics_get(m, BC_GAUGE, "worker_jobs_in_hand",
                                  "Jobs consumed and not yet claimed or dropped", NULL, NULL, 0);
    w->m_requests = bc_metrics_get(m, BC_GAUGE, "worker_carrier_requests_in_flight",
                                   "Carrier requests (dials, updates) sent and not yet answered",
                                   NULL, NULL, 0);
    w->m_untried = bc_metrics_get(m, BC_GAUGE, "worker_jobs_untried",
                                  "Jobs in hand never yet offered to a claim", NULL, NULL, 0);
    w->m_redials = bc_metrics_get(m, BC_GAUGE, "worker_dials_paced_waiting",
                                  "Dials the carrier paced (429), held to be sent again", NULL,
                                  NULL, 0);
    bc_ends_metrics(w);
    w->m_jobs_lag = bc_metrics_get(m, BC_GAUGE, "kafka_consumer_lag",
                                   "Messages on assigned partitions not yet fetched",
                                   "topic=\"jobs\"", NULL, 0);
    w->m_events_lag = bc_metrics_get(m, BC_GAUGE, "kafka_consumer_lag", NULL,
                                     "topic=\"carrier-events\"", NULL, 0);
    bc_carrier_observe(w->carrier, bc_metrics_get(m, BC_HISTOGRAM, "worker_dispatch_seconds",
                                                  "Dispatch latency: from a dial request leaving"
                                                  " the worker to the carrier's answer",
                                                  NULL, DISPATCH_BUCKETS, 12));
    w->m_event_age[0] = bc_metrics_get(m, BC_HISTOGRAM, "worker_carrier_event_age_seconds",
                                       "Age of a carrier event when the worker takes it: from"
                                       " the API's publish (the message's timestamp) to the"
                                       " worker's loop", "kind=\"other\"", EVENT_AGE_BUCKETS, 11);
    w->m_event_age[1] = bc_metrics_get(m, BC_HISTOGRAM, "worker_carrier_event_age_seconds", NULL,
                                       "kind=\"end\"", EVENT_AGE_BUCKETS, 11);
}

/* The carrier adapter, as configured. 0 or -1. */
static int carrier(bc_worker *w, const bc_config *c, bc_err *err)
{
    if (!(w->carrier = bc_carrier_new(bc_config_str(c, "carrier-url"),
                                      bc_config_str(c, "carrier-account-sid"),
                                      bc_config_str(c, "carrier-auth-token"),
                                      bc_config_int(c, "carrier-timeout-ms"), bc_dialing_done,
                                      w, err)))
        return -1;
    bc_carrier_on_update(w->carrier, bc_events_updated);
    if (bc_carrier_events(w->carrier, bc_config_str(c, "carrier-events"), err) < 0) {
        bc_err_wrap(err, "BC_CARRIER_EVENTS");
        return -1;
    }
    if (bc_carrier_machine_detection(w->carrier, bc_config_str(c, "machine-detection"),
                                     err) < 0) {
        bc_err_wrap(err, "BC_CARRIER_MACHINE_DETECTION");
        return -1;
    }
    return 0;
}

/* The consumers of the region's jobs and carrier events. 0 or -1. */
static int consumers(bc_worker *w, const char *brokers, const char *prefix, bc_err *err)
{
    char events_topic[160], group[200];
    const char *topics[1];

    bc_kafka_topic(events_topic, sizeof events_topic, prefix, "carrier-events", w->region);
    topics[0] = w->jobs_topic;
    snprintf(group, sizeof group, "%s.worker.jobs.%s", prefix, w->region);
    if (!(w->jobs = bc_kafka_consumer_new(brokers, group, topics, 1, w->ctx->log, err)))
        return -1;
    topics[0] = events_topic;
    snprintf(group, sizeof group, "%s.worker.events.%s", prefix, w->region);
    if (!(w->events = bc_kafka_consumer_new(brokers, group, topics, 1, w->ctx->log, err)))
        return -1;
    if (!(w->intake = bc_intake_new(w->jobs, w->ctx->log))) {
        bc_err_set(err, "worker: out of memory");
        return -1;
    }
    if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        bc_err_set(err, "worker: pipe: %s", strerror(errno));
        return -1;
    }
    bc_kafka_wake(w->jobs, w->wake[1]);
    bc_kafka_wake(w->events, w->wake[1]);
    return 0;
}

bc_worker *bc_worker_new(bc_ctx *ctx, bc_err *err)
{
    bc_worker *w = calloc(1, sizeof *w);
    const bc_config *c = ctx->cfg;
    const char *prefix = bc_config_str(c, "topic-prefix");
    const char *brokers = bc_config_str(c, "kafka-brokers");
    char host[64] = "worker", rnd[16];

    if (!w)
        return NULL;
    w->wake[0] = w->wake[1] = -1;
    w->ctx = ctx;
    w->progress = json_array();
    w->accepted = json_array();
    w->amds = json_array();
    w->ends = json_array();
    w->ends_by_id = json_object();
    snprintf(w->region, sizeof w->region, "%s", bc_config_str(c, "region"));
    w->public_url = bc_config_str(c, "public-url");
    w->callback_url = bc_config_str_or(c, "callback-url", w->public_url);
    w->agent_secret = bc_config_str(c, "agent-token-secret");
    w->max_in_hand = bc_config_int(c, "max-in-hand");
    w->max_dials = bc_config_int(c, "max-dials-in-flight");
    w->lease_ttl_s = bc_config_int(c, "lease-ttl");
    w->retry_base_ms = bc_config_int(c, "retry-base-ms");
    w->result_v1 = bc_config_bool(c, "call-result-v1");
    w->result_v2 = bc_config_bool(c, "call-result-v2");
    bc_pace_init(&w->pace, (double)bc_config_int(c, "carrier-cps"), bc_now_ms());
    gethostname(host, sizeof host - 1);
    bc_random_token(rnd, sizeof rnd, "", 6);
    snprintf(w->holder, sizeof w->holder, "%s-%d-%s", host, (int)getpid(), rnd);
    bc_kafka_topic(w->jobs_topic, sizeof w->jobs_topic, prefix, "jobs", w->region);
    bc_kafka_topic(w->results_topic, sizeof w->results_topic, prefix, "call-results", NULL);

    if (!(w->pg = bc_pg_connect(bc_config_str(c, "pg-dsn"), stmts, err)) ||
        !(w->pub = bc_publisher_new(c, ctx->log, ctx->metrics, err)) ||
        carrier(w, c, err) < 0 || consumers(w, brokers, prefix, err) < 0)
        goto fail;
    metrics(w);
    /* Its first top-up and first results do not wait for their topics'
     * lookup (bc_publisher_warm). */
    bc_publisher_warm(w->pub, (const char *const[]){ w->jobs_topic, w->results_topic }, 2, 2000);
    /* Alive before ready: a batch created once /readyz answers is admitted. */
    if (bc_renewal_beat(w, err) < 0)
        goto fail;
    w->renewed_at = bc_now_ms();
    atomic_store(&w->renewing, 1);
    atomic_store(&w->ready, 1);
    bc_log(ctx->log, BC_INFO, "worker.started", "{s:s,s:s}", "region", w->region,
           "holder", w->holder);
    return w;
fail:
    bc_worker_free(w);
    return NULL;
}

void bc_worker_free(bc_worker *w)
{
    if (!w)
        return;
    json_decref(w->progress);
    json_decref(w->accepted);
    json_decref(w->amds);
    json_decref(w->ends);
    json_decref(w->ends_by_id);
    /* Messages go back to librdkafka before its handles are destroyed. */
    for (int i = 0; i < w->ntaken; i++)
        rd_kafka_message_destroy(w->taken[i]);
    bc_intake_free(w->intake);
    /* Closing commits what was stored and leaves the group, so the
     * partitions move to another worker at once. */
    bc_kafka_free(w->jobs, 0);
    bc_kafka_free(w->events, 0);
    for (int i = 0; i < 2; i++)
        if (w->wake[i] >= 0)
            close(w->wake[i]);
    bc_dialing_free(w);
    bc_carrier_free(w->carrier);
    bc_publisher_free(w->pub, 0);
    bc_pg_free(w->pg);
    free(w);
}
