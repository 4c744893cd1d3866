/* sim_callbacks: status callbacks, TwiML fetches, AMD and recording
 * callbacks, sent from one thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_crypto.h"
#include "bc_twilio.h"
#include "sim_callbacks.h"
#include "sim_calls.h"
#include "sim_heap.h"
#include "sim_ledger.h"
#include "sim_run.h"

#define CB_TIMEOUT_MS 5000
#define CB_TRIES 4
#define SEND_BATCH 8             /* requests made per pass of the loop */
#define FETCH_MAX_BYTES 65536    /* Twilio's limit on fetched TwiML (11750) */

/* The event a status belongs to. */
static int event_of(const char *status)
{
    return !strcmp(status, "initiated") ? BC_EV_INITIATED
         : !strcmp(status, "ringing") ? BC_EV_RINGING
         : !strcmp(status, "in-progress") ? BC_EV_ANSWERED : BC_EV_COMPLETED;
}

/* One request of the callback thread: a status callback, a TwiML fetch
 * or an async AMD result. */
enum { X_STATUS, X_FETCH, X_AMD, X_REC };

typedef struct cbsend {
    int kind;
    call *c;
    char *form;
    struct curl_slist *hdrs;
    char status[16];
    int terminal;
    unsigned gen;            /* X_FETCH: c->gen when it was asked for */
    char *body;              /* X_FETCH: what came back */
    size_t len;
    int too_big;
} cbsend;

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

static void rfc2822(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static void advance(sim *s, call *c);

/* An easy handle for the next request: a finished one, reset, else a new
 * one. Making and freeing one per callback was about a fifth of the
 * simulator's CPU (perf, B2: libcurl's and libc's allocator). */
static CURL *easy_get(sim *s)
{
    return s->nidle ? s->idle[--s->nidle] : curl_easy_init();
}

static void easy_put(sim *s, CURL *e)
{
    if (s->nidle < SIM_IDLE_EASY) {
        curl_easy_reset(e);
        s->idle[s->nidle++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

void sim_callbacks_free(sim *s)
{
    while (s->nidle)
        curl_easy_cleanup(s->idle[--s->nidle]);
}

/* Builds and starts the callback of c's next status (mutex held). */
static void start_send(sim *s, call *c)
{
    const char *st;
    bc_form f = { 0 };
    char num[24], sig[64], ts[64], hdr[128];
    cbsend *x = calloc(1, sizeof *x);
    CURL *e;

    if (!x) {
        c->due = now_ms() + 10;     /* try again in a moment */
        sim_heap_push(s, c);
        return;
    }
    if (c->resend[0]) {
        st = c->resend;
        x->terminal = c->resend_terminal;
    } else if (c->seq == 0) {
        st = "initiated";
    } else if (c->state == ST_QUEUED) {
        c->state = ST_RINGING;
        st = "ringing";
    } else if (c->state == ST_RINGING && !strcmp(c->outcome, "completed")) {
        c->state = ST_INPROGRESS;
        st = "in-progress";
        sim_run_answered(s, c);
    } else {
        /* A recorded call that was answered: its recording is ready a
         * moment after the end, and told on its own callback. */
        if (c->record && c->state == ST_INPROGRESS)
            sim_heap_tev_push(s, c, now_ms() + sim_ms(s, 1), EV_REC);
        c->state = ST_DONE;
        st = c->outcome;
        x->terminal = 1;
        sim_run_hangup(s, c);
        /* The call is over the moment it ends, before anyone hears of it. */
        if (c->live) {
            c->live = 0;
            sim_ledger_live_add(s, c, -1);
        }
    }
    if (!x->terminal && !c->resend[0] && !(c->events & event_of(st))) {
        /* Not asked for: the call moves on, nobody is told. */
        free(x);
        advance(s, c);
        return;
    }
    if (x->terminal && !c->resend[0] && s->pending.callback_drop > 0) {
        /* The final callback is lost: the call is over, nobody is told. */
        s->pending.callback_drop--;
        s->done.callback_drop++;
        c->seq++;
        free(x);
        return;
    }
    snprintf(x->status, sizeof x->status, "%s", st);
    bc_form_add(&f, "CallSid", c->sid);
    bc_form_add(&f, "AccountSid", s->account);
    bc_form_add(&f, "From", c->from);
    bc_form_add(&f, "To", c->to);
    bc_form_add(&f, "CallStatus", st);
    bc_form_add(&f, "Direction", "outbound-api");
    bc_form_add(&f, "ApiVersion", "2010-04-01");
    rfc2822(ts, sizeof ts);
    bc_form_add(&f, "Timestamp", ts);
    snprintf(num, sizeof num, "%d", c->stale_seq ? c->stale_seq - 1 : c->seq);
    bc_form_add(&f, "SequenceNumber", num);
    if (x->terminal && !strcmp(st, "completed")) {
        snprintf(num, sizeof num, "%d", c->talk_s);
        bc_form_add(&f, "CallDuration", num);
        bc_form_add(&f, "Duration", num);
    }
    /* Who answered, once the call was answered, as Twilio reports it with
     * answering-machine detection: a voicemail ends as completed with
     * AnsweredBy=machine_end_beep. */
    if ((!strcmp(st, "in-progress") || (x->terminal && !strcmp(st, "completed"))) &&
        sim_calls_answered_by(c))
        bc_form_add(&f, "AnsweredBy", sim_calls_answered_by(c));
    bc_twilio_sign(s->token, c->callback, &f, sig, sizeof sig);
    x->c = c;
    c->refs++;
    x->form = bc_form_encode(&f);
    bc_form_free(&f);
    snprintf(hdr, sizeof hdr, "X-Twilio-Signature: %s", sig);
    x->hdrs = curl_slist_append(NULL, hdr);
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/x-www-form-urlencoded");
    c->sending = 1;
    e = easy_get(s);
    curl_easy_setopt(e, CURLOPT_URL, c->callback);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->form);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)CB_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_multi_add_handle(s->multi, e);
}

/* Schedules the next status of c after the one just sent. */
static void advance(sim *s, call *c)
{
    c->sending = 0;
    c->seq++;
    if (c->state == ST_DONE)
        return;
    if (c->state == ST_QUEUED)
        c->due = c->start_ms + (c->answer_ms - c->start_ms) / 3;   /* ringing */
    else if (c->state == ST_RINGING)
        c->due = c->answer_ms;
    else
        c->due = c->end_ms;
    sim_heap_push(s, c);
}

static size_t keep_body(char *p, size_t sz, size_t n, void *ud)
{
    cbsend *x = ud;
    size_t add = sz * n;
    char *b;

    if (x->len + add > FETCH_MAX_BYTES) {
        x->too_big = 1;
        return 0;            /* libcurl aborts the transfer */
    }
    if (!(b = realloc(x->body, x->len + add + 1)))
        return 0;
    memcpy(b + x->len, p, add);
    x->body = b;
    x->len += add;
    b[x->len] = '\0';
    return add;
}

/* Starts a signed request to url (mutex held, callback thread): a POST of
 * form, or a GET with form in the query string, signed over the full URL
 * alone, as Twilio signs GETs. Takes x; frees f. */
static void send_signed(sim *s, cbsend *x, const char *url, const char *method, bc_form *f)
{
    CURL *e = easy_get(s);
    char sig[64], hdr[128];
    char *full = NULL;
    bc_form none = { 0 };

    x->c->refs++;

    x->form = bc_form_encode(f);
    if (!strcmp(method, "GET")) {
        if (asprintf(&full, "%s%s%s", url, strchr(url, '?') ? "&" : "?", x->form) < 0)
            full = NULL;
        bc_twilio_sign(s->token, full ? full : url, &none, sig, sizeof sig);
    } else {
        bc_twilio_sign(s->token, url, f, sig, sizeof sig);
    }
    bc_form_free(f);
    snprintf(hdr, sizeof hdr, "X-Twilio-Signature: %s", sig);
    x->hdrs = curl_slist_append(NULL, hdr);
    curl_easy_setopt(e, CURLOPT_URL, full ? full : url);
    if (strcmp(method, "GET")) {
        x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/x-www-form-urlencoded");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->form);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)CB_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    /* An agent's https TwiML URL is trusted as its wss:// streams are. */
    if (*s->agent_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, s->agent_ca);
    if (x->kind == X_FETCH) {
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    } else {
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    }
    curl_multi_add_handle(s->multi, e);
    free(full);
}

/* Url mode, once answered or redirected: fetch the TwiML with Twilio's
 * request parameters. */
static void fetch_twiml(sim *s, call *c)
{
    cbsend *x = calloc(1, sizeof *x);
    bc_form f = { 0 };

    if (!x)
        return;
    x->kind = X_FETCH;
    x->c = c;
    x->gen = c->gen;
    bc_form_add(&f, "CallSid", c->sid);
    bc_form_add(&f, "AccountSid", s->account);
    bc_form_add(&f, "From", c->from);
    bc_form_add(&f, "To", c->to);
    bc_form_add(&f, "CallStatus", "in-progress");
    bc_form_add(&f, "Direction", "outbound-api");
    bc_form_add(&f, "ApiVersion", "2010-04-01");
    if (sim_calls_answered_by(c))
        bc_form_add(&f, "AnsweredBy", sim_calls_answered_by(c));
    s->ag.twiml_fetches++;
    send_signed(s, x, c->url, c->method, &f);
}

/* Async detection is done: tell AsyncAmdStatusCallback who answered. */
static void amd_send(sim *s, call *c)
{
    cbsend *x;
    bc_form f = { 0 };
    char ms[24];

    c->amd_done = 1;
    if (!c->amd_cb || !(x = calloc(1, sizeof *x)))
        return;              /* nowhere to tell (Twilio warns 21262) */
    x->kind = X_AMD;
    x->c = c;
    snprintf(ms, sizeof ms, "%ld", s->amd_ms * 1000 / (s->ms_per_s > 0 ? s->ms_per_s : 1));
    bc_form_add(&f, "AccountSid", s->account);
    bc_form_add(&f, "CallSid", c->sid);
    bc_form_add(&f, "AnsweredBy", sim_calls_answered_by(c) ? sim_calls_answered_by(c) : "unknown");
    bc_form_add(&f, "MachineDetectionDuration", ms);
    send_signed(s, x, c->amd_cb, c->amd_method, &f);
}

/* The call's recording is ready: tell RecordingStatusCallback, with
 * Twilio's fields. */
static void rec_send(sim *s, call *c)
{
    cbsend *x;
    bc_form f = { 0 };
    unsigned char r[16];
    char rsid[40], url[256], dur[16], ts[64];

    if (!c->rec_cb || !(x = calloc(1, sizeof *x)))
        return;              /* recorded, but nobody asked to hear of it */
    x->kind = X_REC;
    x->c = c;
    bc_random_bytes(r, sizeof r);
    snprintf(rsid, sizeof rsid, "RE");
    for (int i = 0; i < 16; i++)
        snprintf(rsid + 2 + 2 * i, 3, "%02x", r[i]);
    snprintf(url, sizeof url, "https://api.twilio.com/2010-04-01/Accounts/%s/Recordings/%s",
             s->account, rsid);
    snprintf(dur, sizeof dur, "%d", c->talk_s);
    rfc2822(ts, sizeof ts);
    bc_form_add(&f, "AccountSid", s->account);
    bc_form_add(&f, "CallSid", c->sid);
    bc_form_add(&f, "RecordingSid", rsid);
    bc_form_add(&f, "RecordingUrl", url);
    bc_form_add(&f, "RecordingStatus", "completed");
    bc_form_add(&f, "RecordingDuration", dur);
    bc_form_add(&f, "RecordingChannels", "1");
    bc_form_add(&f, "RecordingSource", "OutboundAPI");
    bc_form_add(&f, "RecordingStartTime", ts);
    send_signed(s, x, c->rec_cb, c->rec_method, &f);
}

/* A timer of the TwiML or of detection is due (mutex held). */
static void run_tev(sim *s, const struct tev *e)
{
    call *c = e->c;

    if (e->kind == EV_REC) {
        rec_send(s, c);
        return;
    }
    if (e->kind == EV_AMD) {
        if (c->live && c->state == ST_INPROGRESS && !c->amd_done)
            amd_send(s, c);
        return;
    }
    if (e->gen != c->gen || !sim_run_running(c))
        return;
    if (e->kind == EV_FETCH)
        fetch_twiml(s, c);
    else
        sim_run_step(s, c);
}

/* A fetch or an AMD callback is over (mutex held). */
static void other_finished(sim *s, cbsend *x, CURLcode code, long status)
{
    call *c = x->c;
    int ok = code == CURLE_OK && status >= 200 && status < 300;
    sim_tw_err err = { 0 };

    if (x->kind == X_AMD) {
        if (ok)
            s->ag.amd_callbacks++;
        return;
    }
    if (x->kind == X_REC) {
        if (ok)
            s->ag.recordings++;
        else
            bc_log(s->ctx->log, BC_WARN, "sim.recording_callback_failed", "{s:s,s:i}",
                   "call_sid", c->sid, "http_status", (int)status);
        return;
    }
    if (x->gen != c->gen || !sim_run_running(c))
        return;              /* redirected or hung up meanwhile */
    if (ok && !x->too_big) {
        sim_twiml *doc = sim_twiml_parse(x->body ? x->body : "", x->len, &err);
        if (doc) {
            sim_twiml_free(c->doc);
            c->doc = doc;
            c->pc = 0;
            c->ag_connected = 1;
            sim_run_step(s, c);
            return;
        }
    }
    /* Twilio would play its "application error" and hang up. */
    c->ag_error = !ok ? 11200 : x->too_big ? 11750 : err.code;
    s->ag.errors++;
    bc_log(s->ctx->log, BC_WARN, "sim.twiml_fetch_failed", "{s:s,s:i,s:i}", "call_sid", c->sid,
           "code", c->ag_error, "http_status", (int)status);
    sim_run_end(s, c);
}

static void finished(sim *s, CURL *e, CURLcode code)
{
    cbsend *x = NULL;
    long status = 0;
    call *c;

    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(s->multi, e);
    easy_put(s, e);
    c = x->c;
    pthread_mutex_lock(&s->mu);
    c->refs--;
    if (x->kind != X_STATUS) {
        other_finished(s, x, code, status);
        sim_calls_forget_maybe(s, c);
        pthread_mutex_unlock(&s->mu);
        curl_slist_free_all(x->hdrs);
        free(x->form);
        free(x->body);
        free(x);
        return;
    }
    if (code == CURLE_OK && status >= 200 && status < 300) {
        s->cb_ok++;
        bc_metrics_inc(s->ctx->metrics, "sim_callbacks_total", "Status callbacks", "result=\"ok\"", 1);
        c->tries = 0;
        c->stale_seq = 0;
        if (x->terminal && !c->dupped && s->pending.callback_dup > 0) {
            /* Deliver the final status once more, as a retrying carrier may. */
            s->pending.callback_dup--;
            s->done.callback_dup++;
            c->dupped = 1;
            snprintf(c->resend, sizeof c->resend, "%s", x->status);
            c->resend_terminal = x->terminal;
            c->sending = 0;
            c->due = now_ms() + 20;
            sim_heap_push(s, c);
        } else if (x->terminal && !c->reordered && c->seq > 1 && s->pending.callback_reorder > 0) {
            /* An earlier status arrives after the final one. */
            s->pending.callback_reorder--;
            s->done.callback_reorder++;
            c->reordered = 1;
            snprintf(c->resend, sizeof c->resend, "%s",
                     !strcmp(c->outcome, "completed") ? "in-progress" : "ringing");
            c->resend_terminal = 0;
            c->stale_seq = c->seq;   /* SequenceNumber c->seq - 1 */
            c->sending = 0;
            c->due = now_ms() + 20;
            sim_heap_push(s, c);
        } else {
            c->resend[0] = '\0';
            advance(s, c);
        }
    } else if (c->tries + 1 < CB_TRIES && !s->stop) {
        /* Send the same status again later, as Twilio retries. */
        c->tries++;
        snprintf(c->resend, sizeof c->resend, "%s", x->status);
        c->resend_terminal = x->terminal;
        c->sending = 0;
        c->due = now_ms() + 200LL * (1LL << c->tries);
        sim_heap_push(s, c);
    } else {
        s->cb_failed++;
        bc_metrics_inc(s->ctx->metrics, "sim_callbacks_total", "Status callbacks", "result=\"failed\"", 1);
        c->resend[0] = '\0';
        c->tries = 0;
        advance(s, c);
    }
    sim_calls_forget_maybe(s, c);
    pthread_mutex_unlock(&s->mu);
    curl_slist_free_all(x->hdrs);
    free(x->form);
    free(x);
}

void *sim_callbacks_loop(void *arg)
{
    sim *s = arg;
    int running, left;
    CURLMsg *m;

    while (!s->stop) {
        long long now = now_ms(), wait = 50;
        int n = 0, k = 0;

        /* At most SEND_BATCH callbacks, and as many timed events, are made
         * before libcurl sends them: when many calls end at once, the
         * first callback goes out at once, not after all of them are
         * built. A carrier tells each call on its own; a slot's idle time
         * is counted from the moment its call is over here (gone_ms). */
        pthread_mutex_lock(&s->mu);
        while (n < SEND_BATCH && s->nheap && s->heap[0]->due <= now) {
            call *c = sim_heap_pop(s);

            if (c->sending || (c->state == ST_DONE && !c->resend[0]))
                continue;   /* in flight (it reschedules itself) or over */
            start_send(s, c);
            n++;
        }
        while (k++ < SEND_BATCH && s->ntev && s->tev[0].due <= now) {
            struct tev e = sim_heap_tev_pop(s);
            run_tev(s, &e);
            e.c->refs--;
            sim_calls_forget_maybe(s, e.c);
        }
        if (s->nheap)
            wait = s->heap[0]->due - now;
        if (s->ntev && s->tev[0].due - now < wait)
            wait = s->tev[0].due - now;
        pthread_mutex_unlock(&s->mu);
        if (wait > 50)
            wait = 50;
        if (wait < 0)
            wait = 0;
        curl_multi_poll(s->multi, NULL, 0, (int)wait, NULL);
        curl_multi_perform(s->multi, &running);
        while ((m = curl_multi_info_read(s->multi, &left)))
            if (m->msg == CURLMSG_DONE)
                finished(s, m->easy_handle, m->data.result);
    }
    return NULL;
}
