/* bc_kafka: librdkafka producer, consumer and topic admin, set up the one way
 * batchcall uses them (idempotent acks=all producer; manual offset store and
 * cooperative rebalancing on consumers). */
#ifndef BC_KAFKA_H
#define BC_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "bc_err.h"
#include "bc_log.h"

typedef struct bc_kafka bc_kafka;

/* Delivery report: ok is 1 when the broker acknowledged the message. opaque
 * is what was passed to bc_kafka_produce. Runs inside bc_kafka_poll/flush. */
typedef void (*bc_kafka_dr_fn)(void *ud, void *opaque, int ok, const char *why);

/* Topic names: "<prefix>.jobs.<region>", "<prefix>.carrier-events.<region>",
 * "<prefix>.call-results", "<prefix>.webhooks-dlq". Writes into out (cap bytes). */
void bc_kafka_topic(char *out, size_t cap, const char *prefix, const char *kind,
                    const char *region);

/* A producer that waits up to linger_ms to fill a batch (linger.ms). */
bc_kafka *bc_kafka_producer_new(const char *brokers, int linger_ms, bc_log *log,
                                bc_kafka_dr_fn dr, void *ud, bc_err *err);

/* Consumer subscribed to topics (n of them) in group. Offsets are stored
 * only by bc_kafka_store and committed in the background. */
bc_kafka *bc_kafka_consumer_new(const char *brokers, const char *group,
                                const char *const *topics, int n, bc_log *log,
                                bc_err *err);

/* Closes (consumers leave the group cleanly), flushing producers up to
 * flush_ms. NULL is a no-op. */
void bc_kafka_free(bc_kafka *k, int flush_ms);

/* Looks up topic's partitions and leaders now, so the first message to it
 * does not wait for that lookup: on a new producer the first callbacks'
 * events waited about 1 s for it (bench/RESULTS.md, fifteenth session).
 * Keeps the topic's handle until bc_kafka_free. 0, or -1 with err set
 * (then the first message looks it up, as without this). */
int bc_kafka_warm(bc_kafka *k, const char *topic, int timeout_ms, bc_err *err);

/* Enqueues one message (copied). 0 or -1 with err set (queue full, ...). */
int bc_kafka_produce(bc_kafka *k, const char *topic, const char *key,
                     const void *val, size_t len, void *opaque, bc_err *err);
/* Serves delivery reports and callbacks. */
void bc_kafka_poll(bc_kafka *k, int timeout_ms);
/* Waits until every queued message is delivered or timeout; 0 or -1. */
int bc_kafka_flush(bc_kafka *k, int timeout_ms);
/* Messages not yet acknowledged. */
int bc_kafka_outq_len(bc_kafka *k);

/* Next message or NULL on timeout; caller calls rd_kafka_message_destroy.
 * Messages that carry only an error are logged and skipped (NULL). */
rd_kafka_message_t *bc_kafka_consume(bc_kafka *k, int timeout_ms);
/* Marks the message processed: its offset + 1 will be committed. */
int bc_kafka_store(bc_kafka *k, const rd_kafka_message_t *m);
/* Moves each partition of the n messages back to the earliest of them, so
 * they are consumed again (their effect could not be made durable). The
 * caller still destroys the messages. 0 or -1. */
int bc_kafka_rewind(bc_kafka *k, rd_kafka_message_t *const *msgs, int n);
/* Consumer lag: over this consumer's assigned partitions, the high
 * watermark minus the fetch position (messages not yet fetched), from
 * librdkafka's cached watermarks, so it never waits on the broker.
 * Recomputed at most once a second; 0 before the first assignment. */
long long bc_kafka_lag(bc_kafka *k);
/* Pauses or resumes every assigned partition (back-pressure). */
void bc_kafka_pause(bc_kafka *k, int pause);
/* Has librdkafka write a byte to fd (non-blocking) whenever the consumer's
 * queue goes from empty to holding something to consume, so a loop that
 * waits on other descriptors wakes for it. A queue left non-empty by the
 * last consume writes nothing more: do not wait then. */
void bc_kafka_wake(bc_kafka *k, int fd);

/* Creates topics, names[i] with partitions[i] partitions (replication 1
 * locally), ignoring those that already exist. 0 or -1 with err set. */
int bc_kafka_create_topics(const char *brokers, const char *const *names,
                           const int *partitions, int n, int replication,
                           int timeout_ms, bc_err *err);

rd_kafka_t *bc_kafka_handle(bc_kafka *k);

#endif
