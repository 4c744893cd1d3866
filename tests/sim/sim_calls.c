/* sim_calls: the Call resource: create, read, update, list. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bc_crypto.h"
#include "bc_e164.h"
#include "bc_twilio.h"
#include "sim_calls.h"
#include "sim_heap.h"
#include "sim_ledger.h"
#include "sim_req.h"
#include "sim_run.h"

static const char *status_of(const call *c)
{
    switch (c->state) {
    case ST_QUEUED: return "queued";
    case ST_RINGING: return "ringing";
    case ST_INPROGRESS: return "in-progress";
    default: return c->outcome;
    }
}

/* Twilio's AnsweredBy for an answered call, if detection was asked for:
 * DetectMessageEnd waits for a voicemail's beep, Enable answers at once. */
const char *sim_calls_answered_by(const call *c)
{
    /* Async detection tells only once it is done (and first by amd_cb). */
    if (!c->amd[0] || strcmp(c->outcome, "completed") || (c->async_amd && !c->amd_done))
        return NULL;
    if (!c->machine)
        return "human";
    return !strcmp(c->amd, "DetectMessageEnd") ? "machine_end_beep" : "machine_start";
}

json_t *sim_calls_resource(sim *s, const call *c)
{
    char created[64];
    struct tm tm;

    gmtime_r(&c->created, &tm);
    strftime(created, sizeof created, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s?}", "sid", c->sid,
                     "date_created", created,
                     "account_sid", s->account, "to", c->to, "from", c->from,
                     "status", status_of(c), "direction", "outbound-api",
                     "api_version", "2010-04-01",
                     "duration", c->state == ST_DONE && !strcmp(c->outcome, "completed")
                                     ? json_sprintf("%d", c->talk_s) : json_null(),
                     "answered_by", c->state >= ST_INPROGRESS ? sim_calls_answered_by(c) : NULL);
}

static int rnd(sim *s, int lo, int hi)
{
    return hi <= lo ? lo : lo + (int)(rand_r(&s->seed) % (unsigned)(hi - lo + 1));
}

/* Sets c's outcome; a voicemail is a completed call a machine answered. */
static void set_outcome(call *c, const char *outcome)
{
    c->machine = !strcmp(outcome, "voicemail");
    snprintf(c->outcome, sizeof c->outcome, "%s", c->machine ? "completed" : outcome);
}

/* Plans the call's life: when it answers or fails, and when it ends. */
static void plan(sim *s, call *c, int timeout_s, int limit_s)
{
    int total = s->w_completed + s->w_busy + s->w_noanswer + s->w_failed + s->w_voicemail;
    int r = rnd(s, 1, total > 0 ? total : 1);
    int ring = rnd(s, s->ring_lo, s->ring_hi);
    script *sc = sim_map_get(&s->scripts, c->to);

    /* Scripted for this number (POST /outcomes): its next outcome. */
    if (sc && sc->next < sc->n) {
        set_outcome(c, sc->out[sc->next++]);
        goto forced;
    }
    /* Magic numbers, as Twilio's test numbers: tests force an outcome. */
    for (int i = 0; i < s->nforce; i++) {
        size_t n = strlen(c->to), k = strlen(s->force_suffix[i]);
        if (n >= k && !strcmp(c->to + n - k, s->force_suffix[i])) {
            set_outcome(c, s->force_outcome[i]);
            goto forced;
        }
    }
    if (r <= s->w_completed && ring <= timeout_s)
        snprintf(c->outcome, sizeof c->outcome, "completed");
    else if (r > total - s->w_voicemail && ring <= timeout_s)
        set_outcome(c, "voicemail");
    else if (r <= s->w_completed + s->w_busy)
        snprintf(c->outcome, sizeof c->outcome, "busy");
    else if (r <= s->w_completed + s->w_busy + s->w_noanswer || ring > timeout_s)
        snprintf(c->outcome, sizeof c->outcome, "no-answer");
    else
        snprintf(c->outcome, sizeof c->outcome, "failed");
forced:
    if (ring > timeout_s)
        ring = timeout_s;
    if (s->talk_spread && s->ms_per_s > 0) {
        /* Anywhere in the range, as people talk: calls that start
         * together do not all end together a whole number of seconds
         * later. The duration told is in whole seconds, rounded up. */
        long long lo = (long long)s->talk_lo * s->ms_per_s, hi = (long long)s->talk_hi * s->ms_per_s;

        c->talk_ms = lo + (hi > lo ? (long long)(rand_r(&s->seed) % (unsigned)(hi - lo + 1)) : 0);
        c->talk_s = (int)((c->talk_ms + s->ms_per_s - 1) / s->ms_per_s);
    } else {
        c->talk_s = rnd(s, s->talk_lo, s->talk_hi);
        c->talk_ms = (long long)c->talk_s * s->ms_per_s;
    }
    if (c->talk_s > limit_s) {
        c->talk_s = limit_s;
        c->talk_ms = (long long)limit_s * s->ms_per_s;
    }
    c->start_ms = now_ms();
    c->answer_ms = c->start_ms + (long long)ring * s->ms_per_s;
    c->end_ms = c->answer_ms + (!strcmp(c->outcome, "completed") ? c->talk_ms : 0);
    c->due = c->start_ms;    /* "initiated" right away */
}

static int pace_ok(sim *s)
{
    long long t = now_ms();

    if (s->cps <= 0)
        return 1;
    s->bucket += (double)(t - s->bucket_at) * (double)s->cps / 1000.0;
    if (s->bucket > (double)s->cps)
        s->bucket = (double)s->cps;
    s->bucket_at = t;
    if (s->bucket < 1.0)
        return 0;
    s->bucket -= 1.0;
    return 1;
}


/* An answer given hold_ms later from a thread of its own, the request's
 * connection asleep meanwhile (bc_http_defer). Sleeping in the server
 * thread instead stalled every other connection that thread owns, so
 * ordinary creates timed out beside a held one. */
typedef struct {
    bc_http_later *later;
    int status;
    json_t *body;
    long hold_ms;
} delayed;

static void *answer_after(void *arg)
{
    delayed *d = arg;

    usleep((useconds_t)d->hold_ms * 1000);
    bc_http_answer(d->later, d->status, d->body);
    free(d);
    return NULL;
}

static void answer_later(const bc_http_req *req, int status, json_t *body, long hold_ms)
{
    delayed *d = malloc(sizeof *d);
    pthread_t t;

    if (!d) {
        json_decref(body);
        return;
    }
    d->later = bc_http_defer(req);
    d->status = status;
    d->body = body;
    d->hold_ms = hold_ms;
    if (pthread_create(&t, NULL, answer_after, d) != 0) {
        answer_after(d);   /* no thread: sleep and answer from here */
        return;
    }
    pthread_detach(t);
}

/* Reads a create's or an update's form from body into f, refusing it
 * when malformed or when a parameter is not in known. 0, or -1 answered. */
static int form_known(sim *s, const char *body, size_t len, bc_form *f,
                      const char *const *known, bc_http_resp *resp)
{
    const char *bad;
    char why[200];

    if (bc_form_parse(body, len, f) < 0) {
        sim_ledger_refuse(s, resp, body, len, 400, 21200, "Malformed form body");
        return -1;
    }
    if ((bad = sim_req_unknown_param(f, known))) {
        snprintf(why, sizeof why, "Unknown parameter '%.60s'", bad);
        sim_ledger_refuse(s, resp, body, len, 400, 20001, why);
        return -1;
    }
    return 0;
}

/* Checks a create's form (f, read from body) as Twilio does, and reads
 * what the call runs once answered into ag. 0, or -1 answered (refused). */
static int create_valid(sim *s, const char *body, size_t len, bc_form *f, agent_spec *ag,
                        bc_http_resp *resp)
{
    const char *to, *from, *cb, *amd, *async;

    if (form_known(s, body, len, f, sim_req_create_params, resp) < 0)
        return -1;
    to = bc_form_get(f, "To");
    from = bc_form_get(f, "From");
    cb = bc_form_get(f, "StatusCallback");
    amd = bc_form_get(f, "MachineDetection");
    async = bc_form_get(f, "AsyncAmd");
    if (amd && strcmp(amd, "Enable") && strcmp(amd, "DetectMessageEnd")) {
        sim_ledger_refuse(s, resp, body, len, 400, 21626,
                          "MachineDetection must be Enable or DetectMessageEnd");
        return -1;
    }
    if (sim_req_events(f) < 0) {
        sim_ledger_refuse(s, resp, body, len, 400, 21626, "Invalid 'StatusCallbackEvent'");
        return -1;
    }
    if (!to || !bc_e164_valid(to) || !from || !bc_e164_valid(from) || !cb ||
        strncmp(cb, "http", 4) || strlen(cb) >= 600) {
        sim_ledger_refuse(s, resp, body, len, 400, 21201,
                          !to || !bc_e164_valid(to) ? "Invalid 'To' Phone Number"
                          : !from || !bc_e164_valid(from) ? "Invalid 'From' Phone Number"
                          : "Invalid StatusCallback URL");
        return -1;
    }
    if (async && strcmp(async, "true") && strcmp(async, "false")) {
        sim_ledger_refuse(s, resp, body, len, 400, 21234, "AsyncAmd must be true or false");
        return -1;
    }
    if (sim_req_read_agent(f, 1, ag) < 0) {
        sim_ledger_refuse(s, resp, body, len, 400, ag->code, ag->msg);
        return -1;
    }
    return 0;
}

/* Whether the carrier turns a create away before placing anything (s->mu
 * held): 500 for a create_5xx fault (an outage), 429 for a create_429
 * fault or over BC_SIM_CPS, 400 for a create_4xx fault (Twilio's 21211,
 * a 'To' it will not call), 0 to place the call. */
static int create_turned_away(sim *s)
{
    if (s->pending.create_5xx > 0) {
        s->pending.create_5xx--;
        s->done.create_5xx++;
        return 500;
    }
    if (s->pending.create_429 > 0) {
        s->pending.create_429--;
        s->done.create_429++;
        return 429;
    }
    if (s->pending.create_4xx > 0) {
        s->pending.create_4xx--;
        s->done.create_4xx++;
        return 400;
    }
    if (!pace_ok(s)) {
        s->rejected_cps++;
        return 429;
    }
    return 0;
}

/* Answers a create turned away with status (500, 400 or 429); s->mu not
 * held. */
static void answer_turned_away(sim *s, bc_http_resp *resp, int status)
{
    if (status == 500) {
        bc_metrics_inc(s->ctx->metrics, "sim_faults_total", "Faults played", "kind=\"create_5xx\"", 1);
        sim_req_error(resp, 500, 20500, "Internal Server Error");
        return;
    }
    if (status == 400) {
        /* A fault, not a refusal of what the create said: kept out of
         * /ledger/refused, which lists the simulator's own checks. */
        bc_metrics_inc(s->ctx->metrics, "sim_faults_total", "Faults played", "kind=\"create_4xx\"", 1);
        sim_req_error(resp, 400, 21211, "Invalid 'To' Phone Number");
        return;
    }
    bc_metrics_inc(s->ctx->metrics, "sim_rejected_total", "Creates refused", "reason=\"cps\"", 1);
    bc_http_json(resp, 429, json_pack("{s:i,s:s,s:s,s:i}", "code", 20429, "message",
                                      "Too Many Requests", "more_info",
                                      "https://www.twilio.com/docs/errors/20429",
                                      "status", 429));
}

/* Reads what a create asks of answering-machine detection
 * (MachineDetection, AsyncAmd) and of recording (Record) into c. */
static void read_amd_record(call *c, const bc_form *f)
{
    const char *amd = bc_form_get(f, "MachineDetection"), *async = bc_form_get(f, "AsyncAmd");
    const char *rec = bc_form_get(f, "Record");
    const char *rcb = bc_form_get(f, "RecordingStatusCallback");
    const char *rm = bc_form_get(f, "RecordingStatusCallbackMethod");

    snprintf(c->amd, sizeof c->amd, "%s", amd ? amd : "");
    /* AsyncAmd without MachineDetection detects nothing, as on Twilio. */
    c->async_amd = amd && async && !strcmp(async, "true");
    if (c->async_amd) {
        const char *acb = bc_form_get(f, "AsyncAmdStatusCallback");
        const char *am = bc_form_get(f, "AsyncAmdStatusCallbackMethod");
        c->amd_cb = acb ? strdup(acb) : NULL;
        snprintf(c->amd_method, sizeof c->amd_method, "%s", am && !strcmp(am, "GET") ? "GET" : "POST");
    }
    c->record = rec && !strcmp(rec, "true");
    c->rec_cb = c->record && rcb ? strdup(rcb) : NULL;
    snprintf(c->rec_method, sizeof c->rec_method, "%s", rm && !strcmp(rm, "GET") ? "GET" : "POST");
}

/* A new call as a checked create (f) asks, its life planned; takes what
 * ag runs. Not placed yet (s->mu held). */
static call *new_call(sim *s, const bc_form *f, agent_spec *ag)
{
    const char *cb = bc_form_get(f, "StatusCallback");
    const char *t = bc_form_get(f, "Timeout"), *lim = bc_form_get(f, "TimeLimit");
    call *c = calloc(1, sizeof *c);
    unsigned char r[16];

    c->heap_idx = -1;
    bc_random_bytes(r, sizeof r);
    snprintf(c->sid, sizeof c->sid, "CA");
    for (int i = 0; i < 16; i++)
        snprintf(c->sid + 2 + 2 * i, 3, "%02x", r[i]);
    snprintf(c->to, sizeof c->to, "%s", bc_form_get(f, "To"));
    snprintf(c->from, sizeof c->from, "%s", bc_form_get(f, "From"));
    snprintf(c->callback, sizeof c->callback, "%s", cb);
    c->events = sim_req_events(f);
    c->doc = ag->doc;
    c->url = ag->url;
    ag->doc = NULL;
    ag->url = NULL;
    snprintf(c->method, sizeof c->method, "%s", ag->method);
    if (c->url)
        sim_run_target(c, "url", c->url);
    read_amd_record(c, f);
    sim_req_url_param(cb, "call_id", c->call_id, sizeof c->call_id);
    sim_req_url_param(cb, "batch_id", c->batch, sizeof c->batch);
    sim_req_url_param(cb, "tenant_id", c->tenant, sizeof c->tenant);
    plan(s, c, t ? atoi(t) : 60, lim ? atoi(lim) : 14400);
    return c;
}

/* Places c, created by body (len bytes): it is live, in the ledger and on
 * the clock (s->mu held). */
static void place_call(sim *s, call *c, const char *body, size_t len)
{
    c->live = 1;
    c->created = time(NULL);
    sim_map_put(&s->calls, c->sid, c);
    sim_ledger_record_dial(s, c, body, len);
    sim_ledger_live_add(s, c, 1);
    sim_heap_push(s, c);
    pthread_cond_signal(&s->cv);
    /* Its first status is due now, and the callback loop may be asleep
     * for up to 50 ms: Twilio sends it as the call starts. */
    curl_multi_wakeup(s->multi);
}

/* How long the answer to a placed create is held (s->mu held): a slow
 * carrier's BC_SIM_CREATE_DELAY_MS, or a create_hang fault's longer hold. */
static long create_hold(sim *s)
{
    if (s->pending.create_hang > 0) {
        /* Placed, but the answer comes too late for the caller to see it. */
        s->pending.create_hang--;
        s->done.create_hang++;
        return s->hang_ms;
    }
    return s->create_delay_ms;
}

void sim_calls_create(sim *s, const bc_http_req *req, bc_http_resp *resp)
{
    size_t len;
    const char *body = bc_http_body(req, &len);
    bc_form f = { 0 };
    agent_spec ag = { 0 };
    json_t *made;
    long hold;
    int away;
    call *c;

    if (create_valid(s, body, len, &f, &ag, resp) < 0)
        goto out;
    pthread_mutex_lock(&s->mu);
    if ((away = create_turned_away(s))) {
        pthread_mutex_unlock(&s->mu);
        answer_turned_away(s, resp, away);
        goto out;
    }
    c = new_call(s, &f, &ag);
    place_call(s, c, body, len);
    made = sim_calls_resource(s, c);
    hold = create_hold(s);
    pthread_mutex_unlock(&s->mu);
    bc_metrics_inc(s->ctx->metrics, "sim_dials_total", "Calls accepted", NULL, 1);
    if (hold > 0)
        answer_later(req, 201, made, hold);
    else
        bc_http_json(resp, 201, made);
out:
    sim_twiml_free(ag.doc);
    free(ag.url);
    bc_form_free(&f);
}

void sim_calls_end_now(sim *s, call *c, const char *outcome)
{
    snprintf(c->outcome, sizeof c->outcome, "%s", outcome);
    c->talk_s = c->state == ST_INPROGRESS
                    ? (int)((now_ms() - c->answer_ms) / (s->ms_per_s > 0 ? s->ms_per_s : 1)) : 0;
    c->state = c->state < ST_INPROGRESS ? ST_RINGING : ST_INPROGRESS;
    c->answer_ms = c->end_ms = now_ms();
    c->due = now_ms();
    if (c->heap_idx >= 0)
        sim_heap_fix(s, c);
    pthread_cond_signal(&s->cv);
}

/* Checks an update's form before the call is looked at: known parameters,
 * and TwiML by the create's rules. 0, or -1 answered. */
static int update_valid(sim *s, const bc_http_req *req, bc_form *f, agent_spec *a,
                        bc_http_resp *resp)
{
    size_t len;
    const char *body = bc_http_body(req, &len);

    if (form_known(s, body, len, f, sim_req_update_params, resp) < 0)
        return -1;
    if (!bc_form_get(f, "Status") && sim_req_read_agent(f, 0, a) < 0) {
        sim_ledger_refuse(s, resp, body, len, 400, a->code, a->msg);
        return -1;
    }
    return 0;
}

/* GET reads a call. POST updates it: Status=completed ends a live call,
 * answered or not ("will attempt to hang up a call even if it's already
 * in progress", Twilio's live-call update; one not yet answered ends
 * canceled, the status Twilio gives a call ended by the API before it was
 * answered), Status=canceled only one not yet answered (either is a no-op
 * otherwise, as the reconciler expects); Twiml or Url replaces what an
 * in-progress call runs, and is 21220 on any other call. An update_5xx
 * fault answers 500 and changes nothing. */
void sim_calls_route(sim *s, const bc_http_req *req, const char *sid, bc_http_resp *resp)
{
    int post = !strcmp(bc_http_method(req), "POST");
    bc_form f = { 0 };
    agent_spec a = { 0 };
    const char *st = NULL, *bad = NULL;   /* why a POST is refused (21220) */
    call *c;

    if (post && update_valid(s, req, &f, &a, resp) < 0)
        goto out;
    st = bc_form_get(&f, "Status");
    pthread_mutex_lock(&s->mu);
    if (!(c = sim_map_get(&s->calls, sid))) {
        pthread_mutex_unlock(&s->mu);
        sim_req_error(resp, 404, 20404, "The requested resource was not found");
        goto out;
    }
    if (post && s->pending.update_5xx > 0) {
        s->pending.update_5xx--;
        s->done.update_5xx++;
        pthread_mutex_unlock(&s->mu);
        bc_metrics_inc(s->ctx->metrics, "sim_faults_total", "Faults played", "kind=\"update_5xx\"", 1);
        sim_req_error(resp, 500, 20500, "Internal Server Error");
        goto out;
    }
    if (post && st) {
        if (!strcmp(st, "completed") && c->state == ST_INPROGRESS && c->live) {
            sim_run_hangup(s, c);
            sim_calls_end_now(s, c, "completed");
        } else if (!strcmp(st, "completed") && c->live) {
            sim_calls_end_now(s, c, "canceled");
        } else if (!strcmp(st, "canceled") && c->state < ST_INPROGRESS && c->live) {
            sim_calls_end_now(s, c, "canceled");
        } else if (strcmp(st, "completed") && strcmp(st, "canceled")) {
            bad = "Invalid call state: Status must be completed or canceled";
        }
    } else if (post && (a.doc || a.url)) {
        if (!sim_run_running(c))
            bad = "Call is not in-progress. Cannot redirect.";
        else
            sim_run_replace(s, c, &a);
    } else if (post) {
        bad = "Invalid call state: Status must be completed or canceled";
    }
    if (bad) {
        size_t len;
        const char *body = bc_http_body(req, &len);

        pthread_mutex_unlock(&s->mu);
        sim_ledger_refuse(s, resp, body, len, 400, 21220, bad);
        goto out;
    }
    if (post)
        s->ag.updates++;
    bc_http_json(resp, 200, sim_calls_resource(s, c));
    pthread_mutex_unlock(&s->mu);
out:
    sim_twiml_free(a.doc);
    free(a.url);
    bc_form_free(&f);
}

void sim_calls_free(void *v)
{
    call *c = v;

    sim_twiml_free(c->doc);
    free(c->url);
    free(c->ag_target);
    free(c->amd_cb);
    free(c->rec_cb);
    json_decref(c->played);
    json_decref(c->sip_headers);
    free(c);
}

void sim_calls_forget_maybe(sim *s, call *c)
{
    if (c->state != ST_DONE || c->live || c->sending || c->resend[0] || c->heap_idx >= 0 ||
        c->refs || c->pinned || sim_ledger_kept(s, c->batch))
        return;
    if (sim_map_del(&s->calls, c->sid) != c)
        return;   /* cannot happen: sids are unique */
    s->forgotten++;
    sim_calls_free(c);
}

/* Filtered by To: the only filter the reconciler needs. */
void sim_calls_list(sim *s, const bc_http_req *req, bc_http_resp *resp)
{
    const char *to = bc_http_query(req, "To");
    json_t *arr = json_array();

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->calls.nb; i++)
        for (sim_map_ent *e = s->calls.b[i]; e; e = e->next) {
            call *c = e->val;
            if (!to || !strcmp(c->to, to))
                json_array_append_new(arr, sim_calls_resource(s, c));
            if (json_array_size(arr) >= 1000)
                goto out;
        }
out:
    pthread_mutex_unlock(&s->mu);
    bc_http_json(resp, 200, json_pack("{s:o,s:i,s:i}", "calls", arr, "page", 0, "page_size", 1000));
}
