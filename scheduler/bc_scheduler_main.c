/* batchcall-scheduler: admission, scheduled and retried releases, window
 * top-up, outbox relay and lease reaping for one region; and, in a thread of
 * its own, webhook delivery. */
#include <unistd.h>

#include "bc_publisher.h"
#include "bc_scheduler.h"
#include "bc_webhooks.h"

static const bc_config_key keys[] = {
    BC_SVC_COMMON_KEYS,
    { "http-port", "BC_SCHEDULER_PORT", BC_INT, "9102", "port of /healthz, /readyz, /metrics (0: any)" },
    { "region", "BC_REGION", BC_STR, "us", "region this scheduler serves" },
    { "pg-dsn", "BC_PG_DSN", BC_STR, "postgresql://batchcall@127.0.0.1:5432/batchcall", "PostgreSQL connection string" },
    BC_PUBLISHER_KEYS("0"),
    { "topic-prefix", "BC_TOPIC_PREFIX", BC_STR, "batchcall", "prefix of every Kafka topic name" },
    { "tick-ms", "BC_SCHEDULER_TICK_MS", BC_INT, "100", "milliseconds between scheduling passes (at most 20 after a pass that gave back slots, so a draining batch's slots reach its tenant's next batch sooner)" },
    { "relay-after-ms", "BC_RELAY_AFTER_MS", BC_INT, "3000", "age of an unacknowledged outbox row before it is republished" },
    { "quiet-call-s", "BC_QUIET_CALL_S", BC_INT, "300", "ask the carrier about a call not ended that has heard nothing for this long (a lost callback)" },
    { "hangup-again-s", "BC_HANGUP_AGAIN_S", BC_INT, "5", "send a cancel's hang-up command again to a call still live this long after the last one" },
    { "call-result-v1", "BC_CALL_RESULT_V1", BC_BOOL, "false", "publish the call-results the scheduler makes (recipients its expiry stops for a policy reason) as v1 too, beside v2, as the worker does (docs/analytics.md)" },
    { "call-result-v2", "BC_CALL_RESULT_V2", BC_BOOL, "true", "publish the call ends the scheduler makes as v2 beside v3, as the worker does (docs/analytics.md)" },
    { "lease-ttl", "BC_LEASE_TTL", BC_INT, "60", "seconds a taken-over lease lives before it is checked again" },
    { "carrier-url", "BC_CARRIER_URL", BC_STR, "http://127.0.0.1:8090", "base URL of the Twilio-style carrier API" },
    { "carrier-account-sid", "BC_CARRIER_ACCOUNT_SID", BC_STR, "ACsimulator", "carrier account" },
    { "carrier-auth-token", "BC_CARRIER_AUTH_TOKEN", BC_STR, "sim-auth-token", "carrier auth token" },
    BC_WEBHOOKS_KEYS,
    { 0 },
};

int main(int argc, char **argv)
{
    bc_ctx ctx;
    bc_err err = { "" };
    bc_http_opts o = { 0 };
    bc_scheduler *s;
    bc_webhooks *wh = NULL;
    long tick;
    int rc = bc_svc_init(&ctx, "scheduler", "batchcall-scheduler: releases work.", keys, argc, argv);

    if (rc)
        return rc > 0 ? 0 : 2;
    tick = bc_config_int(ctx.cfg, "tick-ms");
    if (!(s = bc_scheduler_new(&ctx, &err))) {
        bc_log(ctx.log, BC_ERROR, "scheduler.start_failed", "{s:s}", "error", err.msg);
        bc_svc_free(&ctx);
        return 1;
    }
    if (bc_config_bool(ctx.cfg, "webhooks") && !(wh = bc_webhooks_new(&ctx, &err))) {
        bc_log(ctx.log, BC_ERROR, "scheduler.start_failed", "{s:s}", "error", err.msg);
        bc_scheduler_free(s);
        bc_svc_free(&ctx);
        return 1;
    }
    o.ready = bc_scheduler_ready;
    o.ud = s;
    o.threads = 1;
    if (bc_svc_serve(&ctx, (int)bc_config_int(ctx.cfg, "http-port"), &o) < 0) {
        bc_webhooks_free(wh);
        bc_scheduler_free(s);
        bc_svc_free(&ctx);
        return 1;
    }
    while (bc_svc_running()) {
        /* While a batch drains, each of its calls that ends frees a slot
         * that goes to the tenant's waiting batch only at a pass: every
         * tick-ms of delay was a slot idle for half of it on average, a
         * hundred at a time when one 5,000-recipient batch followed
         * another (the soak's refill stalls, bench/RESULTS.md). So a pass
         * that gave back slots is followed soon, and the workers' word
         * that a draining batch's call ended wakes the wait. */
        long wait = bc_scheduler_tick(s) && tick > BC_SCHEDULER_HANDOVER_MS
                        ? BC_SCHEDULER_HANDOVER_MS : tick;

        bc_scheduler_wait(s, wait);
    }
    bc_http_stop(ctx.http);
    ctx.http = NULL;
    bc_webhooks_free(wh);
    bc_scheduler_free(s);
    bc_log(ctx.log, BC_INFO, "scheduler.stopped", NULL);
    bc_svc_free(&ctx);
    return 0;
}
