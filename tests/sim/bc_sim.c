/* batchcall-carrier-sim: a Twilio-compatible carrier for demos, tests and
 * benchmarks. It accepts calls, plays each through ringing and talking on a
 * scaled clock, sends signed status callbacks in order, and keeps a ledger
 * of every dial (with our attempt id) and of the peak live calls per batch
 * and per tenant, so tests can check what really reached the carrier.
 * POST /faults queues faults for the next creates or callbacks: 5xx, 429,
 * a 4xx refusal (21211), a create that is placed but answered too late, and callbacks duplicated,
 * reordered or lost (see docs/carrier-sim.md). POST /outcomes scripts what
 * the next calls to one number do. A call created with MachineDetection
 * tells who answered (AnsweredBy): a person, or a voicemail's machine.
 * A create must say what the call does once answered, as Twilio requires
 * (Url, Twiml or ApplicationSid); the simulator checks it at least as
 * strictly as Twilio and, on answer, runs the TwiML: it connects Media
 * Streams to the agent over WebSocket (sim_ws.c), fetches the TwiML of a
 * Url, records a <Dial><Sip>, and plays <Say>, <Play>, <Pause>, <Hangup>.
 *
 * This file sets it up and routes requests; the rest lives in sim_*.c:
 * sim_model.h (what it knows), sim_map, sim_heap (its timers), sim_ledger,
 * sim_control (/faults, /outcomes), sim_req (reading a request), sim_calls
 * (the Call resource), sim_run (running the TwiML), sim_callbacks (the
 * callback thread), sim_twiml and sim_ws. */
#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bc_svc.h"
#include "sim_callbacks.h"
#include "sim_calls.h"
#include "sim_control.h"
#include "sim_ledger.h"
#include "sim_model.h"
#include "sim_req.h"
#include "sim_run.h"

static const bc_config_key keys[] = {
    BC_SVC_COMMON_KEYS,
    { "http-port", "BC_SIM_PORT", BC_INT, "8090", "port to serve the carrier API on (0: any)" },
    { "http-threads", "BC_SIM_THREADS", BC_INT, "2", "request-handling threads" },
    { "account-sid", "BC_SIM_ACCOUNT_SID", BC_STR, "ACsimulator", "the one account this carrier knows" },
    { "auth-token", "BC_SIM_AUTH_TOKEN", BC_STR, "sim-auth-token", "its auth token; signs callbacks" },
    { "ms-per-second", "BC_SIM_MS_PER_SECOND", BC_INT, "1000", "real milliseconds per simulated second" },
    { "mix", "BC_SIM_MIX", BC_STR, "completed=80,busy=8,no-answer=7,failed=5",
      "outcome weights (completed, busy, no-answer, failed, voicemail)" },
    { "ring-seconds", "BC_SIM_RING_SECONDS", BC_STR, "1-4", "ringing time range, simulated seconds" },
    { "talk-seconds", "BC_SIM_TALK_SECONDS", BC_STR, "5-60", "talk time range, simulated seconds" },
    { "talk-spread", "BC_SIM_TALK_SPREAD", BC_BOOL, "false",
      "draw talk times to the millisecond over the range (CallDuration rounds up), not in whole seconds" },
    { "cps", "BC_SIM_CPS", BC_INT, "0", "calls per second accepted (0: no limit); more get 429" },
    { "seed", "BC_SIM_SEED", BC_INT, "0", "random seed (0: from the clock)" },
    { "create-delay-ms", "BC_SIM_CREATE_DELAY_MS", BC_INT, "0",
      "answer each accepted create this much later (a slow carrier; the dial counts at once)" },
    { "hang-ms", "BC_SIM_HANG_MS", BC_INT, "12000",
      "how long a create_hang fault holds its answer (the call is placed at once)" },
    { "force", "BC_SIM_FORCE", BC_STR, "0486=busy,0404=no-answer,0500=failed,0555=voicemail",
      "outcomes forced by the callee number's last digits (suffix=outcome, ...)" },
    { "agent-ca", "BC_SIM_AGENT_CA", BC_STR, "",
      "PEM file of the CAs trusted for agents' WebSocket certificates (empty: the system's)" },
    { "media-frames", "BC_SIM_MEDIA_FRAMES", BC_INT, "10",
      "media messages sent on each Media Stream, one each 20 ms" },
    { "amd-seconds", "BC_SIM_AMD_SECONDS", BC_INT, "2",
      "simulated seconds async answering-machine detection takes" },
    { "expect-calls", "BC_SIM_EXPECT_CALLS", BC_INT, "0",
      "room made at the start for this many calls, so that a long run never stops to grow its tables" },
    { "keep-one-in", "BC_SIM_KEEP_ONE_IN", BC_INT, "0",
      "keep the calls and dials of one batch in N (by its id's FNV-1a hash) once they end; "
      "forget the rest (0: keep every call; for long runs)" },
    { 0 },
};

static void handle(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    sim *s = ud;
    const char *path = bc_http_path(req), *rest;
    char prefix[128];
    size_t plen;

    if (!strcmp(path, "/faults")) {
        bc_http_set_route(req, "/faults");
        sim_control_faults(s, req, resp);
        return;
    }
    if (!strcmp(path, "/outcomes")) {
        bc_http_set_route(req, "/outcomes");
        sim_control_outcomes(s, req, resp);
        return;
    }
    if (!strncmp(path, "/ledger", 7)) {
        bc_http_set_route(req, "/ledger");
        sim_ledger_route(s, req, path, resp);
        return;
    }
    snprintf(prefix, sizeof prefix, "/2010-04-01/Accounts/");
    plen = strlen(prefix);
    if (strncmp(path, prefix, plen))
        return;   /* 404 */
    bc_http_set_route(req, "/2010-04-01/Accounts/:sid/Calls");
    if (!sim_req_authorized(s, req)) {
        bc_metrics_inc(s->ctx->metrics, "sim_rejected_total", "Creates refused", "reason=\"auth\"", 1);
        sim_req_error(resp, 401, 20003, "Authenticate");
        return;
    }
    rest = path + plen;
    if (strncmp(rest, s->account, strlen(s->account)) || rest[strlen(s->account)] != '/') {
        sim_req_error(resp, 404, 20404, "The requested resource was not found");
        return;
    }
    rest += strlen(s->account);
    if (!strcmp(rest, "/Calls.json") && !strcmp(bc_http_method(req), "POST")) {
        sim_calls_create(s, req, resp);
    } else if (!strcmp(rest, "/Calls.json") && !strcmp(bc_http_method(req), "GET")) {
        sim_calls_list(s, req, resp);
    } else if (!strncmp(rest, "/Calls/", 7) && strlen(rest) > 12 &&
               !strcmp(rest + strlen(rest) - 5, ".json")) {
        char sid[40];
        snprintf(sid, sizeof sid, "%.*s", (int)(strlen(rest) - 12), rest + 7);
        sim_calls_route(s, req, sid, resp);
    } else {
        sim_req_error(resp, 404, 20404, "The requested resource was not found");
    }
}

static int parse_range(const char *v, int *lo, int *hi)
{
    if (sscanf(v, "%d-%d", lo, hi) == 2 && *lo >= 0 && *hi >= *lo)
        return 0;
    if (sscanf(v, "%d", lo) == 1 && *lo >= 0) {
        *hi = *lo;
        return 0;
    }
    return -1;
}

static int parse_mix(sim *s, const char *v)
{
    char *copy = strdup(v), *save = NULL;
    int rc = 0;

    s->w_completed = s->w_busy = s->w_noanswer = s->w_failed = s->w_voicemail = 0;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        int w = eq ? atoi(eq + 1) : -1;

        if (!eq || w < 0) {
            rc = -1;
            break;
        }
        *eq = '\0';
        if (!strcmp(kv, "completed"))
            s->w_completed = w;
        else if (!strcmp(kv, "busy"))
            s->w_busy = w;
        else if (!strcmp(kv, "no-answer"))
            s->w_noanswer = w;
        else if (!strcmp(kv, "failed"))
            s->w_failed = w;
        else if (!strcmp(kv, "voicemail"))
            s->w_voicemail = w;
        else
            rc = -1;
    }
    free(copy);
    return rc;
}

static int parse_force(sim *s, const char *v)
{
    char *copy = strdup(v), *save = NULL;
    int rc = 0;

    for (char *kv = strtok_r(copy, ",", &save); kv && s->nforce < 8;
         kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv || strlen(kv) >= 32) {
            rc = -1;
            break;
        }
        *eq = '\0';
        if (!sim_control_outcome_ok(eq + 1)) {
            rc = -1;
            break;
        }
        snprintf(s->force_suffix[s->nforce], sizeof s->force_suffix[0], "%s", kv);
        snprintf(s->force_outcome[s->nforce], sizeof s->force_outcome[0], "%s", eq + 1);
        s->nforce++;
    }
    free(copy);
    return rc;
}

int main(int argc, char **argv)
{
    bc_ctx ctx;
    sim s = { 0 };
    bc_http_opts o = { 0 };
    pthread_condattr_t ca;
    int rc = bc_svc_init(&ctx, "carrier-sim",
                         "batchcall-carrier-sim: a Twilio-compatible carrier simulator.",
                         keys, argc, argv);

    if (rc)
        return rc > 0 ? 0 : 2;
    s.ctx = &ctx;
    s.account = bc_config_str(ctx.cfg, "account-sid");
    s.token = bc_config_str(ctx.cfg, "auth-token");
    s.ms_per_s = bc_config_int(ctx.cfg, "ms-per-second");
    s.cps = bc_config_int(ctx.cfg, "cps");
    s.create_delay_ms = bc_config_int(ctx.cfg, "create-delay-ms");
    s.hang_ms = bc_config_int(ctx.cfg, "hang-ms");
    s.seed = (unsigned)bc_config_int(ctx.cfg, "seed");
    s.media_frames = bc_config_int(ctx.cfg, "media-frames");
    s.amd_ms = bc_config_int(ctx.cfg, "amd-seconds") * s.ms_per_s;
    s.talk_spread = bc_config_bool(ctx.cfg, "talk-spread");
    s.keep_one_in = bc_config_int(ctx.cfg, "keep-one-in");
    if (!s.seed)
        s.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    if (parse_mix(&s, bc_config_str(ctx.cfg, "mix")) < 0 ||
        parse_force(&s, bc_config_str(ctx.cfg, "force")) < 0 ||
        parse_range(bc_config_str(ctx.cfg, "ring-seconds"), &s.ring_lo, &s.ring_hi) < 0 ||
        parse_range(bc_config_str(ctx.cfg, "talk-seconds"), &s.talk_lo, &s.talk_hi) < 0 ||
        s.ms_per_s < 0 || s.keep_one_in < 0) {
        fprintf(stderr, "%s: BC_SIM_MIX, BC_SIM_RING_SECONDS, BC_SIM_TALK_SECONDS, "
                        "BC_SIM_MS_PER_SECOND, BC_SIM_KEEP_ONE_IN or BC_SIM_FORCE is malformed (see --help)\n", argv[0]);
        bc_svc_free(&ctx);
        return 2;
    }
    {
        bc_err err = { { 0 } };

        xmlInitParser();
        s.agent_ca = bc_config_str(ctx.cfg, "agent-ca");
        s.ws = sim_ws_new(s.agent_ca, sim_run_on_stream, &s, &err);
        if (!s.ws) {
            fprintf(stderr, "%s: BC_SIM_AGENT_CA: %s\n", argv[0], bc_err_msg(&err));
            bc_svc_free(&ctx);
            return 2;
        }
    }
    s.duplicates = json_array();
    if (bc_config_int(ctx.cfg, "expect-calls") > 0) {
        size_t n = (size_t)bc_config_int(ctx.cfg, "expect-calls");

        sim_map_reserve(&s.calls, n);
        sim_idset_reserve(&s.per_call_id, n);
    }
    s.bucket = (double)s.cps;
    s.bucket_at = now_ms();
    pthread_mutex_init(&s.mu, NULL);
    pthread_condattr_init(&ca);
    pthread_cond_init(&s.cv, &ca);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s.multi = curl_multi_init();
    curl_multi_setopt(s.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    pthread_create(&s.thread, NULL, sim_callbacks_loop, &s);
    o.threads = (unsigned)bc_config_int(ctx.cfg, "http-threads");
    o.handler = handle;
    o.ud = &s;
    o.max_body = 64 * 1024;
    if (bc_svc_serve(&ctx, (int)bc_config_int(ctx.cfg, "http-port"), &o) < 0) {
        rc = 1;
        bc_svc_stop();
    }
    while (bc_svc_running())
        usleep(50000);
    bc_http_stop(ctx.http);
    ctx.http = NULL;
    s.stop = 1;
    pthread_join(s.thread, NULL);
    {
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(s.multi, &left)))
            ;
    }
    /* Streams tell calls what happened: stop them before calls go. */
    sim_ws_free(s.ws);
    sim_callbacks_free(&s);
    curl_multi_cleanup(s.multi);
    curl_global_cleanup();
    sim_map_free(&s.calls, sim_calls_free);
    sim_ledger_free(&s);
    free(s.tev);
    xmlCleanupParser();
    sim_map_free(&s.scripts, free);
    free(s.heap);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    bc_log(ctx.log, BC_INFO, "sim.stopped", NULL);
    bc_svc_free(&ctx);
    return rc;
}
