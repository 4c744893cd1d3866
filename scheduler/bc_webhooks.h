/* bc_webhooks: delivers call-result events to tenants' webhook endpoints.
 *
 * A thread of its own in the scheduler process, whether that process leads
 * its region or stands by. It consumes the call-results topic in a consumer
 * group of its own and turns each event into one webhook_deliveries row per
 * subscribed endpoint, storing the Kafka offset only after that insert has
 * committed. It then claims due rows (FOR UPDATE SKIP LOCKED, so several
 * senders share the work), POSTs them signed with HMAC-SHA256 through
 * libcurl multi, and records each outcome: delivered, retried later with
 * exponential back-off, or dead-lettered after the last try (status 'dead'
 * and a message on the webhooks-dlq topic). A claim whose sender died falls
 * due again, so delivery is at least once. docs/webhooks.md has the rest. */
#ifndef BC_WEBHOOKS_H
#define BC_WEBHOOKS_H

#include "bc_svc.h"

typedef struct bc_webhooks bc_webhooks;

/* The process's flags for it; a config table that uses bc_webhooks_new
 * includes these (and topic-prefix, pg-dsn, kafka-brokers). */
#define BC_WEBHOOKS_KEYS                                                            \
    { "webhooks", "BC_WEBHOOKS", BC_BOOL, "true",                                   \
      "deliver webhooks from this process (its own consumer group, leader or not)" }, \
    { "webhook-max-attempts", "BC_WEBHOOK_MAX_ATTEMPTS", BC_INT, "12",              \
      "tries of one delivery before it is dead-lettered" },                         \
    { "webhook-backoff-ms", "BC_WEBHOOK_BACKOFF_MS", BC_INT, "10000",               \
      "wait after the first failed try; doubles after each, with +-10% jitter" },   \
    { "webhook-backoff-max-ms", "BC_WEBHOOK_BACKOFF_MAX_MS", BC_INT, "3600000",     \
      "longest wait between two tries" },                                           \
    { "webhook-timeout-ms", "BC_WEBHOOK_TIMEOUT_MS", BC_INT, "10000",               \
      "a try without a whole answer in this long has failed" },                     \
    { "webhook-concurrency", "BC_WEBHOOK_CONCURRENCY", BC_INT, "64",                \
      "webhook requests in flight at most, per process" },                          \
    { "webhook-allow-private", "BC_WEBHOOK_ALLOW_PRIVATE", BC_BOOL, "false",        \
      "deliver to loopback, private and link-local addresses too (receivers on a"   \
      " local network, the tests); off, such a delivery fails without connecting" }, \
    { "webhook-poll-ms", "BC_WEBHOOK_POLL_MS", BC_INT, "100",                       \
      "how often due deliveries (retries) are looked for" }

/* Connects, subscribes and starts the delivery thread. NULL with err set. */
bc_webhooks *bc_webhooks_new(bc_ctx *ctx, bc_err *err);
/* Stops taking work, lets requests in flight finish (up to the request
 * timeout), hands back the claims of any still unanswered, closes the
 * consumer (committing stored offsets) and frees. NULL is a no-op. */
void bc_webhooks_free(bc_webhooks *w);

#endif
