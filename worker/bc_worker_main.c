/* batchcall-worker: consumes jobs and carrier events of one region, claims
 * recipients under concurrency leases and places their calls. Stateless:
 * everything it knows is also in PostgreSQL or Kafka. */
#include "bc_publisher.h"
#include "bc_worker.h"

static const bc_config_key keys[] = {
    BC_SVC_COMMON_KEYS,
    { "http-port", "BC_WORKER_PORT", BC_INT, "9101", "port of /healthz, /readyz, /metrics (0: any)" },
    { "region", "BC_REGION", BC_STR, "us", "region whose jobs this worker dials" },
    { "pg-dsn", "BC_PG_DSN", BC_STR, "postgresql://batchcall@127.0.0.1:5432/batchcall", "PostgreSQL connection string" },
    BC_PUBLISHER_KEYS("0"),
    { "topic-prefix", "BC_TOPIC_PREFIX", BC_STR, "batchcall", "prefix of every Kafka topic name" },
    { "carrier-url", "BC_CARRIER_URL", BC_STR, "http://127.0.0.1:8090", "base URL of the Twilio-style carrier API" },
    { "carrier-account-sid", "BC_CARRIER_ACCOUNT_SID", BC_STR, "ACsimulator", "carrier account" },
    { "carrier-auth-token", "BC_CARRIER_AUTH_TOKEN", BC_STR, "sim-auth-token", "carrier auth token" },
    { "public-url", "BC_PUBLIC_URL", BC_STR, "http://127.0.0.1:8080", "base URL of batchcall-api: an agent's context and reports, and the carrier's callbacks unless callback-url is set" },
    { "callback-url", "BC_CALLBACK_URL", BC_STR, "", "base URL of batchcall-api's callback port, put in every dial for the carrier's status, answering-machine and recording callbacks (empty: public-url); the API's must be the same" },
    { "agent-token-secret", "BC_AGENT_TOKEN_SECRET", BC_STR, "local-agent-token-secret", "signs the per-call tokens an agent shows to fetch its call's context and report on it; the same on every worker and API of a deployment (set your own)" },
    { "carrier-timeout-ms", "BC_CARRIER_TIMEOUT_MS", BC_INT, "10000", "give up waiting for the carrier's answer to a create after this long (the reconciler then asks it)" },
    { "carrier-cps", "BC_CARRIER_CPS", BC_INT, "0", "calls per second this worker may place (0: no pace); split the account's limit over the region's workers" },
    { "max-in-hand", "BC_WORKER_MAX_IN_HAND", BC_INT, "5000", "jobs held before partitions are paused" },
    { "max-dials-in-flight", "BC_WORKER_MAX_DIALS", BC_INT, "256", "carrier requests in flight at most" },
    { "lease-ttl", "BC_LEASE_TTL", BC_INT, "60", "seconds a lease lives without renewal" },
    { "retry-base-ms", "BC_RETRY_BASE_MS", BC_INT, "60000", "first retry back-off; doubles per attempt, with jitter" },
    { "machine-detection", "BC_CARRIER_MACHINE_DETECTION", BC_STR, "DetectMessageEnd", "answering-machine detection asked of the carrier: DetectMessageEnd, Enable or off (voicemail outcomes need it)" },
    { "carrier-events", "BC_CARRIER_EVENTS", BC_STR, "ringing answered completed", "status callbacks asked of the carrier per call (Twilio's StatusCallbackEvent): initiated, ringing, answered, completed; completed is always asked. Fewer events, less work per call (docs/operations.md); without ringing and answered a call shows no ringing or in-progress status while it lives, and a completed call's answer is its end less its duration" },
    { "call-result-v1", "BC_CALL_RESULT_V1", BC_BOOL, "false", "publish each call-result as v1 too, beside v2, for consumers not yet moved (docs/analytics.md)" },
    { "call-result-v2", "BC_CALL_RESULT_V2", BC_BOOL, "true", "publish each call end as v2 beside its v3 call.ended, for consumers that read v2; false publishes v3 alone, which carries every v2 field, one event and outbox row less per call (docs/analytics.md)" },
    { "drain-ms", "BC_DRAIN_MS", BC_INT, "20000", "grace period on SIGTERM" },
    { "explain-plans", "BC_WORKER_EXPLAIN_PLANS", BC_BOOL, "false", "print the plan of each of the worker's statements (JSON: name -> EXPLAIN lines) on stdout and exit; tests/integration/test_plans.py checks them against an empty database" },
    { 0 },
};

int main(int argc, char **argv)
{
    bc_ctx ctx;
    bc_err err = { "" };
    bc_http_opts o = { 0 };
    bc_worker *w;
    int rc = bc_svc_init(&ctx, "worker", "batchcall-worker: claims and dials.", keys, argc, argv);

    if (rc)
        return rc > 0 ? 0 : 2;
    if (bc_config_bool(ctx.cfg, "explain-plans")) {
        rc = bc_worker_explain(&ctx, stdout, &err);
        if (rc < 0)
            bc_log(ctx.log, BC_ERROR, "worker.explain_failed", "{s:s}", "error", err.msg);
        bc_svc_free(&ctx);
        return rc < 0 ? 1 : 0;
    }
    if (!(w = bc_worker_new(&ctx, &err))) {
        bc_log(ctx.log, BC_ERROR, "worker.start_failed", "{s:s}", "error", err.msg);
        bc_svc_free(&ctx);
        return 1;
    }
    o.ready = bc_worker_ready;
    o.ud = w;
    o.threads = 1;
    if (bc_svc_serve(&ctx, (int)bc_config_int(ctx.cfg, "http-port"), &o) < 0) {
        bc_worker_free(w);
        bc_svc_free(&ctx);
        return 1;
    }
    while (bc_svc_running())
        bc_worker_tick(w);
    bc_worker_drain(w, (int)bc_config_int(ctx.cfg, "drain-ms"));
    bc_http_stop(ctx.http);
    ctx.http = NULL;
    bc_worker_free(w);
    bc_log(ctx.log, BC_INFO, "worker.stopped", NULL);
    bc_svc_free(&ctx);
    return 0;
}
