/* bc_publisher: the Kafka side of the transactional outbox. A process first
 * commits outbox rows with its state change, then hands them here; rows the
 * broker acknowledged are deleted in batches by bc_publisher_tick. A row whose
 * publish failed stays, and the scheduler's relay publishes it again, so no
 * message is lost (consumers are idempotent, so a repeat is harmless). */
#ifndef BC_PUBLISHER_H
#define BC_PUBLISHER_H

#include "bc_config.h"
#include "bc_err.h"
#include "bc_log.h"
#include "bc_metrics.h"
#include "bc_pg.h"

typedef struct bc_publisher bc_publisher;

/* The flags of every process that publishes (bc_config_key entries), with
 * the process's default for --kafka-prompt-below (a string): "1000" in the
 * API, whose carrier events carry a call's end to the worker, "0" in the
 * worker and the scheduler, whose messages wait for nobody (the jobs of a
 * batch's window are released ahead of its free slots). With every process
 * prompt, B3's slots idled ~1 ms longer than with the API alone: more
 * wake-ups on the same two cores (bench/RESULTS.md, twenty-first session).
 * linger.ms is librdkafka's default, 5, unless set. */
#define BC_PUBLISHER_KEYS(prompt_below) \
    { "kafka-brokers", "BC_KAFKA_BROKERS", BC_STR, "127.0.0.1:9092", "Kafka bootstrap servers" }, \
    { "kafka-linger-ms", "BC_KAFKA_LINGER_MS", BC_INT, "5", "milliseconds a message waits for others to share its request to Kafka (librdkafka's linger.ms, 0-900000) while this process publishes at least --kafka-prompt-below messages a second: lower takes each event, a call's end among them, to its consumer sooner; higher makes fewer, larger requests, which cost the broker and this process less CPU" }, \
    { "kafka-prompt-below", "BC_KAFKA_PROMPT_BELOW", BC_INT, prompt_below, "messages a second under which this process sends each message at once, on a second producer with no linger, since at that rate there is little to batch (0-10000000; 0: always wait --kafka-linger-ms)" }

/* Which of a publisher's two producers takes a message. The batched one
 * lingers --kafka-linger-ms; the prompt one sends at once. Batching pays only
 * when there is something to batch: at B3's few hundred events a second the
 * 5 ms linger was most of a call end's way to the worker, while at B2's
 * thousands a second a linger of 1 ms cost 30 % more CPU per attempt
 * (bench/RESULTS.md, seventeenth and twenty-first sessions). So the
 * publisher measures its own rate and picks.
 *
 * The rate is over the mark once a window of 1 s holds prompt_below
 * messages, and under it again after a window with fewer than half that,
 * or a window with none. A second, not less: B3's calls last whole seconds,
 * so their ends come in bursts, and a burst of a few hundred events is
 * carried sooner at no linger (librdkafka batches what comes while five
 * requests are out), at a cost in CPU that only a sustained rate makes
 * worth paying.
 *
 * The route changes producer only when the one it leaves holds no message
 * (outq_cur == 0): everything that producer took is then in the broker's
 * log, so nothing sent on the other can overtake it, for any key. */
enum { BC_PUB_BATCHED = 0, BC_PUB_PROMPT = 1 };

typedef struct bc_pub_route {
    long prompt_below;      /* messages/s; 0: the batched producer only */
    int cur;                /* BC_PUB_BATCHED or BC_PUB_PROMPT */
    int high;               /* the rate is over the mark */
    long long win_start;    /* ms; the window's first moment */
    long win_n;             /* messages counted in the window */
} bc_pub_route;

/* A route for prompt_below (0: never prompt), starting on the prompt
 * producer when there is one. */
void bc_pub_route_init(bc_pub_route *r, long prompt_below);
/* Counts one message at now_ms and returns the producer it goes to;
 * outq_cur is what the current producer (r->cur) still holds. */
int bc_pub_route_next(bc_pub_route *r, long long now_ms, int outq_cur);

/* Creates the producers of cfg's kafka-brokers, kafka-linger-ms and
 * kafka-prompt-below (the prompt one only when both are above 0), and a
 * thread for each that serves its delivery reports. */
bc_publisher *bc_publisher_new(const bc_config *cfg, bc_log *log,
                               bc_metrics *metrics, bc_err *err);
/* Flushes up to flush_ms, stops the thread, frees. NULL is a no-op. */
void bc_publisher_free(bc_publisher *p, int flush_ms);

/* bc_kafka_warm on the publisher's producer for each of topics (n), before
 * any publish, waiting up to timeout_ms for all of them (a start with Kafka
 * away is held that long, no longer). A topic not looked up is logged and
 * left to its first message. Returns how many were looked up. */
int bc_publisher_warm(bc_publisher *p, const char *const *topics, int n, int timeout_ms);

/* Publishes one committed outbox row (copied). Thread-safe. 0 or -1. */
int bc_publisher_outbox(bc_publisher *p, long long id, const char *topic,
                        const char *key, const char *payload, bc_err *err);
/* Publishes every row of res (columns id, topic, key, payload). */
int bc_publisher_outbox_rows(bc_publisher *p, const PGresult *res, bc_err *err);
/* Publishes and waits for the broker's acknowledgement, up to timeout_ms.
 * 0 once acknowledged, -1 with err set otherwise. Thread-safe. */
int bc_publisher_sync(bc_publisher *p, const char *topic, const char *key,
                      const char *payload, int timeout_ms, bc_err *err);
/* Publishes without waiting: then(ud, ok) runs once on the publisher's
 * thread when the broker acknowledged the message (ok = 1) or it was given
 * up (message.timeout.ms). 0, or -1 with err set (then never runs). */
int bc_publisher_async(bc_publisher *p, const char *topic, const char *key,
                       const char *payload, void (*then)(void *ud, int ok), void *ud,
                       bc_err *err);
/* Deletes the outbox rows acknowledged since the last call, in one statement.
 * Returns how many, or -1 (the ids are kept for the next call). */
int bc_publisher_tick(bc_publisher *p, bc_pg *pg, bc_err *err);
/* Waits up to timeout_ms for every message to be acknowledged. 0 or -1. */
int bc_publisher_flush(bc_publisher *p, int timeout_ms);
/* Messages handed over and not yet acknowledged. */
int bc_publisher_inflight(bc_publisher *p);

/* The statement bc_publisher_tick runs: include it in the table of the
 * connection it is given (BC_PG_INCLUDE). */
extern const bc_pg_stmt bc_publisher_stmts[];

#endif
