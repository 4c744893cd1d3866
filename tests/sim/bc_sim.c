/* batchcall-carrier-sim: a Twilio-compatible carrier for demos, tests and
 * benchmarks. It accepts calls, plays each through ringing and talking on a
 * scaled clock, sends signed status callbacks in order, and keeps a ledger
 * of every dial (with our attempt id) and of the peak live calls per batch
 * and per tenant, so tests can check what really reached the carrier.
 * POST /faults queues faults for the next creates or callbacks: 5xx, 429,
 * a create that is placed but answered too late, and callbacks duplicated,
 * reordered or lost (see docs/carrier-sim.md). POST /outcomes scripts what
 * the next calls to one number do. A call created with MachineDetection
 * tells who answered (AnsweredBy): a person, or a voicemail's machine.
 * A create must say what the call does once answered, as Twilio requires
 * (Url, Twiml or ApplicationSid); the simulator checks it at least as
 * strictly as Twilio and, on answer, runs the TwiML: it connects Media
 * Streams to the agent over WebSocket (sim_ws.c), fetches the TwiML of a
 * Url, records a <Dial><Sip>, and plays <Say>, <Play>, <Pause>, <Hangup>. */
#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bc_crypto.h"
#include "bc_e164.h"
#include "bc_svc.h"
#include "bc_twilio.h"
#include "sim_twiml.h"
#include "sim_ws.h"

#define MAX_DIALS_LISTED 100000
#define CB_TIMEOUT_MS 5000
#define CB_TRIES 4
/* How long an answered call waits for its agent's stream to open. */
#define STREAM_WAIT_MS 15000
#define TWIML_MAX_CHARS 4000     /* Twilio's limit on a create's Twiml (32018) */
#define FETCH_MAX_BYTES 65536    /* Twilio's limit on fetched TwiML (11750) */
#define REFUSED_MAX 10000        /* refused requests kept for /ledger/refused */
#define REFUSED_BODY_MAX 16384

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
    { 0 },
};

/* ---- a small string-keyed map ------------------------------------------ */

typedef struct ent {
    struct ent *next;
    char *key;
    void *val;
} ent;

typedef struct map {
    ent **b;
    size_t nb, n;
} map;

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static void *map_get(map *m, const char *k)
{
    if (!m->nb)
        return NULL;
    for (ent *e = m->b[hash(k) % m->nb]; e; e = e->next)
        if (!strcmp(e->key, k))
            return e->val;
    return NULL;
}

static void map_put(map *m, const char *k, void *v)
{
    ent *e;

    if (m->n >= m->nb) {   /* grow at load factor 1 */
        size_t nb = m->nb ? m->nb * 2 : 1024;
        ent **b = calloc(nb, sizeof *b);
        for (size_t i = 0; i < m->nb; i++)
            for (ent *x = m->b[i], *n; x; x = n) {
                n = x->next;
                x->next = b[hash(x->key) % nb];
                b[hash(x->key) % nb] = x;
            }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    e = calloc(1, sizeof *e);
    e->key = strdup(k);
    e->val = v;
    e->next = m->b[hash(k) % m->nb];
    m->b[hash(k) % m->nb] = e;
    m->n++;
}

static void map_free(map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->nb; i++)
        for (ent *e = m->b[i], *n; e; e = n) {
            n = e->next;
            if (free_val)
                free_val(e->val);
            free(e->key);
            free(e);
        }
    free(m->b);
    memset(m, 0, sizeof *m);
}

/* ---- model --------------------------------------------------------------- */

typedef struct counts {
    long dials, live, peak;
} counts;

typedef struct dial {
    char sid[40], call_id[48], to[20], from[20], batch[48], tenant[48];
    long long at_ms;
    char *form;              /* the create's body, as it came */
} dial;

typedef struct blist {       /* dials of one batch, for /ledger/dials */
    dial *v;
    size_t n, cap;
} blist;

enum { ST_QUEUED, ST_RINGING, ST_INPROGRESS, ST_DONE };

typedef struct call {
    char sid[40], to[20], from[20], callback[600], outcome[16];
    char batch[48], tenant[48], call_id[48];
    long long start_ms, answer_ms, end_ms;  /* planned, real ms */
    time_t created;          /* wall clock, for date_created */
    int talk_s, seq, state, sending, live;
    int tries;               /* failed sends of the current status */
    char resend[16];         /* status to send again after a failure */
    int resend_terminal;
    int dupped, reordered;   /* faults already played on this call */
    int machine;             /* answered by a voicemail, not a person */
    char amd[24];            /* the MachineDetection asked for, or "" */
    int stale_seq;           /* 1 + SequenceNumber of a stale resend, or 0 */
    int events;              /* StatusCallbackEvent asked for: BC_EV_* bits */
    long long due;           /* next event due (real ms) */
    int heap_idx;            /* -1: not in the heap */
    /* What runs once the call is answered, and what it did (the ledger's
     * "agent"). gen changes whenever what runs is replaced or over, so a
     * late event of the old one (a timer, a stream, a fetch) is ignored. */
    sim_twiml *doc;          /* verbs to run; NULL in Url mode until fetched */
    size_t pc;               /* next verb */
    unsigned gen;
    int ag_over;             /* the TwiML ended or the call is hanging up */
    char *url;               /* Url mode: where the TwiML comes from */
    char method[8];          /* ... and how it is fetched */
    unsigned long ws_id;     /* the Media Stream open now, or 0 */
    const char *ag_kind;     /* "stream", "sip", "url" or NULL */
    char *ag_target;
    int ag_connected, ag_error;
    json_t *played, *sip_headers;
    int async_amd, amd_done; /* AsyncAmd=true: AnsweredBy comes by amd_cb */
    char *amd_cb;
    char amd_method[8];
    int record;              /* Record=true: a recording, once the answered call ends */
    char *rec_cb;            /* RecordingStatusCallback, or NULL */
    char rec_method[8];
} call;

/* What the next calls to one number do, in order (POST /outcomes); when
 * it runs out, BC_SIM_FORCE and BC_SIM_MIX decide again. */
#define SCRIPT_MAX 16
typedef struct script {
    char out[SCRIPT_MAX][16];
    int n, next;
} script;

typedef struct sim {
    bc_ctx *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    atomic_int stop;
    const char *account, *token;
    const char *agent_ca;      /* PEM CAs trusted for agents (wss, https); "" system */
    long ms_per_s, cps, create_delay_ms;
    int ring_lo, ring_hi, talk_lo, talk_hi;
    int w_completed, w_busy, w_noanswer, w_failed, w_voicemail;
    unsigned int seed;
    char force_suffix[8][16];
    char force_outcome[8][16];
    int nforce;
    map calls, batches, tenants, per_call_id, lists;
    map scripts;             /* number -> script: its next calls' outcomes */
    long dials, live, peak, cb_ok, cb_failed, rejected_cps, dups;
    /* Faults asked for through POST /faults (pending) and played (done). */
    struct { long create_5xx, create_429, create_hang, callback_dup, callback_reorder, callback_drop; }
        pending, done;
    long hang_ms;
    json_t *duplicates;
    call **heap;
    size_t nheap, capheap;
    double bucket;           /* cps token bucket */
    long long bucket_at;
    CURLM *multi;
    char cburl_prefix[8];
    /* The agent side: TwiML timers (a min-heap by due), the Media Streams
     * client, what the agents saw, and what was refused. */
    struct tev { long long due; call *c; unsigned gen; int kind; } *tev;
    size_t ntev, captev;
    sim_ws *ws;
    long media_frames, amd_ms;
    struct {
        long connections, stream_starts, stream_stops, errors, twiml_fetches, amd_callbacks,
            plays, updates, recordings;
    } ag;
    struct refusal { char *form; int status, code; char msg[200]; } *refused;
    size_t nrefused;         /* ever refused; the last REFUSED_MAX are kept */
} sim;

static long long now_ms(void) { return bc_now_ms(); }

static int rnd(sim *s, int lo, int hi)
{
    return hi <= lo ? lo : lo + (int)(rand_r(&s->seed) % (unsigned)(hi - lo + 1));
}

/* ---- timed events: a min-heap of calls by next due time ----------------- */

static void heap_swap(sim *s, size_t a, size_t b)
{
    call *t = s->heap[a];

    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_idx = (int)a;
    s->heap[b]->heap_idx = (int)b;
}

static void heap_up(sim *s, size_t i)
{
    while (i && s->heap[(i - 1) / 2]->due > s->heap[i]->due) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(sim *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && s->heap[l]->due < s->heap[m]->due)
            m = l;
        if (r < s->nheap && s->heap[r]->due < s->heap[m]->due)
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_push(sim *s, call *c)
{
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 1024;
        s->heap = realloc(s->heap, s->capheap * sizeof *s->heap);
    }
    c->heap_idx = (int)s->nheap;
    s->heap[s->nheap++] = c;
    heap_up(s, s->nheap - 1);
}

static call *heap_pop(sim *s)
{
    call *c = s->heap[0];

    heap_swap(s, 0, s->nheap - 1);
    s->nheap--;
    if (s->nheap)
        heap_down(s, 0);
    c->heap_idx = -1;
    return c;
}

static void heap_fix(sim *s, call *c)
{
    heap_up(s, (size_t)c->heap_idx);
    heap_down(s, (size_t)c->heap_idx);
}

/* ---- ledger ---------------------------------------------------------- */

static counts *counts_of(map *m, const char *k)
{
    counts *c = map_get(m, k);

    if (!c) {
        c = calloc(1, sizeof *c);
        map_put(m, k, c);
    }
    return c;
}

static void live_add(sim *s, call *c, int d)
{
    s->live += d;
    if (s->live > s->peak)
        s->peak = s->live;
    if (c->batch[0]) {
        counts *b = counts_of(&s->batches, c->batch);
        b->live += d;
        if (b->live > b->peak)
            b->peak = b->live;
    }
    if (c->tenant[0]) {
        counts *t = counts_of(&s->tenants, c->tenant);
        t->live += d;
        if (t->live > t->peak)
            t->peak = t->live;
    }
}

static void record_dial(sim *s, call *c, const char *body, size_t len)
{
    long *n;

    s->dials++;
    if (c->batch[0]) {
        counts_of(&s->batches, c->batch)->dials++;
        blist *l = map_get(&s->lists, c->batch);
        if (!l) {
            l = calloc(1, sizeof *l);
            map_put(&s->lists, c->batch, l);
        }
        if (l->n < MAX_DIALS_LISTED) {
            if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 64;
                l->v = realloc(l->v, l->cap * sizeof *l->v);
            }
            dial *d = &l->v[l->n++];
            memset(d, 0, sizeof *d);
            snprintf(d->sid, sizeof d->sid, "%s", c->sid);
            snprintf(d->call_id, sizeof d->call_id, "%s", c->call_id);
            snprintf(d->to, sizeof d->to, "%s", c->to);
            snprintf(d->from, sizeof d->from, "%s", c->from);
            snprintf(d->batch, sizeof d->batch, "%s", c->batch);
            snprintf(d->tenant, sizeof d->tenant, "%s", c->tenant);
            d->at_ms = now_ms();
            d->form = strndup(body, len);
        }
    }
    if (c->tenant[0])
        counts_of(&s->tenants, c->tenant)->dials++;
    if (c->call_id[0]) {
        /* The evidence that matters most: our attempt id dialed twice. */
        if ((n = map_get(&s->per_call_id, c->call_id))) {
            if (++*n == 2)
                json_array_append_new(s->duplicates, json_string(c->call_id));
        } else {
            n = calloc(1, sizeof *n);
            *n = 1;
            map_put(&s->per_call_id, c->call_id, n);
        }
    }
}

/* ---- call resource --------------------------------------------------- */

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
static const char *answered_by(const call *c)
{
    /* Async detection tells only once it is done (and first by amd_cb). */
    if (!c->amd[0] || strcmp(c->outcome, "completed") || (c->async_amd && !c->amd_done))
        return NULL;
    if (!c->machine)
        return "human";
    return !strcmp(c->amd, "DetectMessageEnd") ? "machine_end_beep" : "machine_start";
}

static json_t *resource(sim *s, const call *c)
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
                     "answered_by", c->state >= ST_INPROGRESS ? answered_by(c) : NULL);
}

static void twilio_error(bc_http_resp *resp, int status, int code, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:i,s:s,s:s,s:i}", "code", code, "message", msg,
                                         "more_info", "https://www.twilio.com/docs/errors",
                                         "status", status));
}

/* Reads one query parameter from a URL ("...?a=1&b=2"); only [A-Za-z0-9_]. */
static void url_param(const char *url, const char *name, char *out, size_t cap)
{
    const char *q = strchr(url, '?');
    size_t n = strlen(name);

    out[0] = '\0';
    while (q && *q) {
        q++;
        if (!strncmp(q, name, n) && q[n] == '=') {
            size_t i = 0;
            for (q += n + 1; *q && *q != '&' && i + 1 < cap; q++)
                out[i++] = *q;
            out[i] = '\0';
            return;
        }
        q = strchr(q, '&');
    }
}

static int authorized(sim *s, const bc_http_req *req)
{
    const char *h = bc_http_header(req, "Authorization");
    unsigned char dec[256];
    char want[256];
    int n;

    if (!h || strncasecmp(h, "Basic ", 6) || strlen(h + 6) > 200)
        return 0;
    n = EVP_DecodeBlock(dec, (const unsigned char *)h + 6, (int)strlen(h + 6));
    if (n < 0)
        return 0;
    dec[n] = '\0';
    snprintf(want, sizeof want, "%s:%s", s->account, s->token);
    return bc_ct_streq((const char *)dec, want);
}

/* Plans the call's life: when it answers or fails, and when it ends. */
/* Sets c's outcome; a voicemail is a completed call a machine answered. */
static void set_outcome(call *c, const char *outcome)
{
    c->machine = !strcmp(outcome, "voicemail");
    snprintf(c->outcome, sizeof c->outcome, "%s", c->machine ? "completed" : outcome);
}

static void plan(sim *s, call *c, int timeout_s, int limit_s)
{
    int total = s->w_completed + s->w_busy + s->w_noanswer + s->w_failed + s->w_voicemail;
    int r = rnd(s, 1, total > 0 ? total : 1);
    int ring = rnd(s, s->ring_lo, s->ring_hi);
    script *sc = map_get(&s->scripts, c->to);

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
    c->talk_s = rnd(s, s->talk_lo, s->talk_hi);
    if (c->talk_s > limit_s)
        c->talk_s = limit_s;
    c->start_ms = now_ms();
    c->answer_ms = c->start_ms + (long long)ring * s->ms_per_s;
    c->end_ms = c->answer_ms + (!strcmp(c->outcome, "completed")
                                    ? (long long)c->talk_s * s->ms_per_s : 0);
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


/* The events a create asks for: every StatusCallbackEvent parameter, each
 * one event or a space-separated list (as TwiML writes it). None asked:
 * completed only, as Twilio does. -1 for an unknown event. */
static int events_asked(const bc_form *f)
{
    int bits = 0;
    char bad[64];

    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->key[i], "StatusCallbackEvent") &&
            bc_twilio_events(f->val[i], " ", &bits, bad, sizeof bad) < 0)
            return -1;
    return bits ? bits : BC_EV_COMPLETED;
}

/* The event a status belongs to. */
static int event_of(const char *status)
{
    return !strcmp(status, "initiated") ? BC_EV_INITIATED
         : !strcmp(status, "ringing") ? BC_EV_RINGING
         : !strcmp(status, "in-progress") ? BC_EV_ANSWERED : BC_EV_COMPLETED;
}

/* ---- what a create or an update asks the call to run ------------------- */

/* The create's (or update's) form as JSON for the ledger: key -> string,
 * or an array of strings when the key repeats (StatusCallbackEvent). */
static json_t *form_json(const char *body)
{
    bc_form f = { 0 };
    json_t *o = json_object();

    if (!body || bc_form_parse(body, strlen(body), &f) < 0) {
        json_object_set_new(o, "_unparsed", json_string(body ? body : ""));
        return o;
    }
    for (size_t i = 0; i < f.n; i++) {
        json_t *v = json_object_get(o, f.key[i]);

        if (!v) {
            json_object_set_new(o, f.key[i], json_string(f.val[i]));
        } else if (json_is_array(v)) {
            json_array_append_new(v, json_string(f.val[i]));
        } else {
            json_object_set_new(o, f.key[i], json_pack("[O,s]", v, f.val[i]));
        }
    }
    bc_form_free(&f);
    return o;
}

/* Answers a refused create or update with Twilio's error body and keeps it
 * for /ledger/refused (the last REFUSED_MAX). */
static void refuse(sim *s, bc_http_resp *resp, const char *body, size_t len, int status,
                   int code, const char *msg)
{
    struct refusal *r;

    pthread_mutex_lock(&s->mu);
    if (!s->refused)
        s->refused = calloc(REFUSED_MAX, sizeof *s->refused);
    if (s->refused) {
        r = &s->refused[s->nrefused % REFUSED_MAX];
        free(r->form);
        r->form = strndup(body ? body : "", len < REFUSED_BODY_MAX ? len : REFUSED_BODY_MAX);
        r->status = status;
        r->code = code;
        snprintf(r->msg, sizeof r->msg, "%s", msg);
        s->nrefused++;
    }
    pthread_mutex_unlock(&s->mu);
    bc_metrics_inc(s->ctx->metrics, "sim_rejected_total", "Creates refused", "reason=\"invalid\"", 1);
    twilio_error(resp, status, code, msg);
}

/* The parameters of Twilio's create and update (API 2010-04-01); any other
 * is refused, where Twilio only warns (20001) and ignores it: a typo in
 * what the worker sends must not pass unseen. */
static const char *const create_params[] = {
    "To", "From", "Url", "Twiml", "ApplicationSid", "Method", "FallbackUrl", "FallbackMethod",
    "StatusCallback", "StatusCallbackEvent", "StatusCallbackMethod", "SendDigits", "Timeout",
    "Record", "RecordingChannels", "RecordingStatusCallback", "RecordingStatusCallbackMethod",
    "RecordingStatusCallbackEvent", "RecordingTrack", "SipAuthUsername", "SipAuthPassword",
    "MachineDetection", "MachineDetectionTimeout", "MachineDetectionSpeechThreshold",
    "MachineDetectionSpeechEndThreshold", "MachineDetectionSilenceTimeout", "AsyncAmd",
    "AsyncAmdStatusCallback", "AsyncAmdStatusCallbackMethod", "Trim", "CallerId", "Byoc",
    "CallReason", "CallToken", "TimeLimit", NULL,
};
static const char *const update_params[] = {
    "Url", "Twiml", "Method", "Status", "FallbackUrl", "FallbackMethod", "StatusCallback",
    "StatusCallbackMethod", "TimeLimit", NULL,
};

/* The first parameter of f not in known, or NULL. */
static const char *unknown_param(const bc_form *f, const char *const *known)
{
    for (size_t i = 0; i < f->n; i++) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], f->key[i]))
            k++;
        if (!known[k])
            return f->key[i];
    }
    return NULL;
}

/* 1 if url is an absolute http(s) URL with a host, as libcurl reads it. */
static int http_url_ok(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok;

    ok = u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
         !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
         !curl_url_get(u, CURLUPART_HOST, &host, 0) && host[0] &&
         (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

typedef struct agent_spec {
    sim_twiml *doc;          /* inline TwiML, parsed */
    char *url;               /* or a Url to fetch it from */
    char method[8];
    int code;                /* why it was refused (Twilio's code), or 0 */
    char msg[200];
} agent_spec;

/* Reads Url / Twiml / ApplicationSid as Twilio does: Url wins over Twiml
 * (Twilio warns 32019 and uses the Url); the simulator knows no
 * applications. required: a create, where one of them must be there.
 * 0 (spec filled, or empty for an update without them) or -1 (code set). */
static int read_agent(const bc_form *f, int required, agent_spec *a)
{
    const char *url = bc_form_get(f, "Url"), *twiml = bc_form_get(f, "Twiml");
    const char *app = bc_form_get(f, "ApplicationSid"), *method = bc_form_get(f, "Method");
    sim_tw_err err;

    memset(a, 0, sizeof *a);
    if (method && strcmp(method, "GET") && strcmp(method, "POST")) {
        a->code = 21200;
        snprintf(a->msg, sizeof a->msg, "Method must be GET or POST");
        return -1;
    }
    snprintf(a->method, sizeof a->method, "%s", method ? method : "POST");
    if (url) {
        if (!http_url_ok(url)) {
            a->code = 21205;
            snprintf(a->msg, sizeof a->msg, "Url is not a valid URL: %.120s", url);
            return -1;
        }
        a->url = strdup(url);
        return 0;
    }
    if (twiml) {
        if (sim_twiml_chars(twiml) > TWIML_MAX_CHARS) {
            a->code = 32018;
            snprintf(a->msg, sizeof a->msg,
                     "Twiml size exceeded maximum allowed value of %d characters", TWIML_MAX_CHARS);
            return -1;
        }
        if (!(a->doc = sim_twiml_parse(twiml, strlen(twiml), &err))) {
            a->code = err.code;
            snprintf(a->msg, sizeof a->msg, "%s", err.msg);
            return -1;
        }
        return 0;
    }
    if (app) {
        a->code = 21218;
        snprintf(a->msg, sizeof a->msg, "Invalid ApplicationSid: this carrier has no applications");
        return -1;
    }
    if (required) {
        a->code = 21205;
        snprintf(a->msg, sizeof a->msg, "A 'Url', 'Twiml', or 'ApplicationSid' parameter is required");
        return -1;
    }
    return 0;
}

/* ---- running the TwiML (mutex held) ------------------------------------ */

enum { EV_VERB, EV_FETCH, EV_AMD, EV_REC };

static void tev_swap(sim *s, size_t a, size_t b)
{
    struct tev t = s->tev[a];

    s->tev[a] = s->tev[b];
    s->tev[b] = t;
}

static void tev_push(sim *s, call *c, long long due, int kind)
{
    size_t i;

    if (s->ntev == s->captev) {
        size_t cap = s->captev ? s->captev * 2 : 256;
        struct tev *v = realloc(s->tev, cap * sizeof *v);
        if (!v)
            return;
        s->tev = v;
        s->captev = cap;
    }
    i = s->ntev++;
    s->tev[i] = (struct tev){ due, c, c->gen, kind };
    while (i && s->tev[(i - 1) / 2].due > s->tev[i].due) {
        tev_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    /* The loop may be asleep for up to 50 ms; a Say at 5 ms/s is shorter. */
    curl_multi_wakeup(s->multi);
}

static struct tev tev_pop(sim *s)
{
    struct tev top = s->tev[0];
    size_t i = 0;

    s->tev[0] = s->tev[--s->ntev];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->ntev && s->tev[l].due < s->tev[m].due)
            m = l;
        if (r < s->ntev && s->tev[r].due < s->tev[m].due)
            m = r;
        if (m == i)
            break;
        tev_swap(s, i, m);
        i = m;
    }
    return top;
}

static long long sim_ms(const sim *s, long long secs) { return secs * s->ms_per_s; }

static void end_call_now(sim *s, call *c, const char *outcome);

/* Tears down what runs: the stream gets stop, timers and fetches of it
 * are ignored from now on. */
static void agent_detach(sim *s, call *c)
{
    c->gen++;
    if (c->ws_id) {
        sim_ws_stop(s->ws, c->ws_id);
        c->ws_id = 0;
    }
}

/* The call is hanging up (the callee, an update, the end of its TwiML). */
static void agent_hangup(sim *s, call *c)
{
    if (c->ag_over)
        return;
    c->ag_over = 1;
    agent_detach(s, c);
}

/* The TwiML ended the call: completed, lasting what it lasted so far. */
static void agent_end(sim *s, call *c)
{
    agent_hangup(s, c);
    end_call_now(s, c, "completed");
}

static int agent_running(const call *c)
{
    return c->live && c->state == ST_INPROGRESS && !c->ag_over;
}

static void agent_target(call *c, const char *kind, const char *target)
{
    c->ag_kind = kind;
    free(c->ag_target);
    c->ag_target = target ? strdup(target) : NULL;
    c->ag_connected = 0;
}

static void agent_played(call *c, const char *what, const char *arg)
{
    char *s = NULL;

    if (!c->played)
        c->played = json_array();
    if (asprintf(&s, "%s:%s", what, arg ? arg : "") >= 0)
        json_array_append_new(c->played, json_string(s));
    free(s);
}

/* Moves an answered call's planned hang-up to at (s->mu held). */
static void end_at(sim *s, call *c, long long at)
{
    c->end_ms = at;
    if (c->state == ST_INPROGRESS && c->heap_idx >= 0) {
        c->due = at;
        heap_fix(s, c);
        pthread_cond_signal(&s->cv);
    }
}

static void agent_connect_stream(sim *s, call *c, const sim_tw_verb *v)
{
    sim_ws_stream st = { v->arg, s->account, c->sid, v->extra, (int)s->media_frames, c, c->gen };
    char sid[40];

    agent_target(c, "stream", v->arg);
    c->ws_id = sim_ws_open(s->ws, &st, sid, sizeof sid);
    /* The callee talks to the agent for its talk time once it hears it:
     * until the stream is open the call waits (a failed stream goes on
     * with the next verb at once), so a slow handshake never turns a
     * conversation into a call the agent did not hear. */
    if (c->ws_id)
        end_at(s, c, now_ms() + STREAM_WAIT_MS);
}

/* Runs verbs from c->pc until one that takes time; none left hangs up. */
static void agent_step(sim *s, call *c)
{
    while (agent_running(c)) {
        const sim_tw_verb *v;

        if (!c->doc || c->pc >= c->doc->n) {
            agent_end(s, c);
            return;
        }
        v = &c->doc->v[c->pc++];
        switch (v->kind) {
        case SIM_TW_SAY:
        case SIM_TW_PLAY:
            agent_played(c, v->kind == SIM_TW_SAY ? "say" : "play", v->arg);
            s->ag.plays++;
            tev_push(s, c, now_ms() + sim_ms(s, 1), EV_VERB);
            return;
        case SIM_TW_PAUSE:
            if (v->secs > 0) {
                tev_push(s, c, now_ms() + sim_ms(s, v->secs), EV_VERB);
                return;
            }
            break;
        case SIM_TW_HANGUP:
            agent_end(s, c);
            return;
        case SIM_TW_STREAM:
            /* Until the agent closes it or the call hangs up (sim_ws events). */
            agent_connect_stream(s, c, v);
            if (c->ws_id)
                return;
            c->ag_error = 31902;
            s->ag.errors++;
            break;
        case SIM_TW_SIP:
            /* No SIP here: the dial is recorded and holds the call for its
             * talk time, as the callee talking to a SIP agent would. */
            agent_target(c, "sip", v->arg);
            c->ag_connected = 1;
            json_decref(c->sip_headers);
            c->sip_headers = json_incref(v->extra);
            s->ag.connections++;
            return;
        }
    }
}

/* Replaces what runs by spec (taken): at answer, or a live update. */
static void agent_run(sim *s, call *c, agent_spec *a)
{
    agent_detach(s, c);
    sim_twiml_free(c->doc);
    c->doc = a->doc;
    c->pc = 0;
    free(c->url);
    c->url = a->url;
    snprintf(c->method, sizeof c->method, "%s", a->method);
    a->doc = NULL;
    a->url = NULL;
    if (c->url) {
        agent_target(c, "url", c->url);
        /* libcurl's handles belong to the callback thread: it fetches. */
        tev_push(s, c, now_ms(), EV_FETCH);
    } else {
        agent_step(s, c);
    }
}

/* The call was just answered (callback thread): its TwiML starts at once
 * and, with AsyncAmd, detection runs beside it. */
static void agent_answered(sim *s, call *c)
{
    if (c->async_amd)
        tev_push(s, c, now_ms() + s->amd_ms, EV_AMD);
    if (c->url)
        tev_push(s, c, now_ms(), EV_FETCH);
    else
        agent_step(s, c);
}

/* What a Media Stream did (service thread of sim_ws). */
static void on_stream(void *ud, void *owner, unsigned gen, int what, int code)
{
    sim *s = ud;
    call *c = owner;

    pthread_mutex_lock(&s->mu);
    switch (what) {
    case SIM_WS_OPEN:
        s->ag.connections++;
        if (gen == c->gen) {
            c->ag_connected = 1;
            end_at(s, c, now_ms() + (long long)c->talk_s * s->ms_per_s);
        }
        break;
    case SIM_WS_STARTED:
        s->ag.stream_starts++;
        break;
    case SIM_WS_STOPPED:
        s->ag.stream_stops++;
        break;
    case SIM_WS_FAILED:
        /* Twilio logs the error and goes on with the next verb. */
        s->ag.errors++;
        c->ag_error = code;
        bc_log(s->ctx->log, BC_WARN, "sim.stream_failed", "{s:s,s:i}", "call_sid", c->sid,
               "code", code);
        /* fall through */
    case SIM_WS_AGENT_CLOSED:
        if (gen == c->gen) {
            c->ws_id = 0;
            agent_step(s, c);
        }
        break;
    }
    pthread_mutex_unlock(&s->mu);
}

static void create_call(sim *s, const bc_http_req *req, bc_http_resp *resp)
{
    size_t len;
    const char *body = bc_http_body(req, &len);
    bc_form f = { 0 };
    const char *to, *from, *cb, *t, *lim, *amd, *bad, *async;
    agent_spec ag = { 0 };
    char why[200];
    call *c;

    if (bc_form_parse(body, len, &f) < 0) {
        refuse(s, resp, body, len, 400, 21200, "Malformed form body");
        return;
    }
    if ((bad = unknown_param(&f, create_params))) {
        snprintf(why, sizeof why, "Unknown parameter '%.60s'", bad);
        refuse(s, resp, body, len, 400, 20001, why);
        bc_form_free(&f);
        return;
    }
    to = bc_form_get(&f, "To");
    from = bc_form_get(&f, "From");
    cb = bc_form_get(&f, "StatusCallback");
    t = bc_form_get(&f, "Timeout");
    lim = bc_form_get(&f, "TimeLimit");
    amd = bc_form_get(&f, "MachineDetection");
    async = bc_form_get(&f, "AsyncAmd");
    if (amd && strcmp(amd, "Enable") && strcmp(amd, "DetectMessageEnd")) {
        refuse(s, resp, body, len, 400, 21626, "MachineDetection must be Enable or DetectMessageEnd");
        bc_form_free(&f);
        return;
    }
    if (events_asked(&f) < 0) {
        refuse(s, resp, body, len, 400, 21626, "Invalid 'StatusCallbackEvent'");
        bc_form_free(&f);
        return;
    }
    if (!to || !bc_e164_valid(to) || !from || !bc_e164_valid(from) || !cb ||
        strncmp(cb, "http", 4) || strlen(cb) >= 600) {
        refuse(s, resp, body, len, 400, 21201, !to || !bc_e164_valid(to) ? "Invalid 'To' Phone Number"
                                     : !from || !bc_e164_valid(from) ? "Invalid 'From' Phone Number"
                                     : "Invalid StatusCallback URL");
        bc_form_free(&f);
        return;
    }
    if (async && strcmp(async, "true") && strcmp(async, "false")) {
        refuse(s, resp, body, len, 400, 21234, "AsyncAmd must be true or false");
        bc_form_free(&f);
        return;
    }
    if (read_agent(&f, 1, &ag) < 0) {
        refuse(s, resp, body, len, 400, ag.code, ag.msg);
        bc_form_free(&f);
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->pending.create_5xx > 0) {
        /* A carrier outage: nothing is placed. */
        s->pending.create_5xx--;
        s->done.create_5xx++;
        pthread_mutex_unlock(&s->mu);
        bc_metrics_inc(s->ctx->metrics, "sim_faults_total", "Faults played", "kind=\"create_5xx\"", 1);
        twilio_error(resp, 500, 20500, "Internal Server Error");
        sim_twiml_free(ag.doc);
        free(ag.url);
        bc_form_free(&f);
        return;
    }
    int forced_429 = s->pending.create_429 > 0;
    if (forced_429 || !pace_ok(s)) {
        if (forced_429) {
            s->pending.create_429--;
            s->done.create_429++;
        } else {
            s->rejected_cps++;
        }
        pthread_mutex_unlock(&s->mu);
        bc_metrics_inc(s->ctx->metrics, "sim_rejected_total", "Creates refused", "reason=\"cps\"", 1);
        bc_http_json(resp, 429, json_pack("{s:i,s:s,s:s,s:i}", "code", 20429, "message",
                                          "Too Many Requests", "more_info",
                                          "https://www.twilio.com/docs/errors/20429",
                                          "status", 429));
        sim_twiml_free(ag.doc);
        free(ag.url);
        bc_form_free(&f);
        return;
    }
    c = calloc(1, sizeof *c);
    c->heap_idx = -1;
    {
        unsigned char r[16];
        bc_random_bytes(r, sizeof r);
        snprintf(c->sid, sizeof c->sid, "CA");
        for (int i = 0; i < 16; i++)
            snprintf(c->sid + 2 + 2 * i, 3, "%02x", r[i]);
    }
    snprintf(c->to, sizeof c->to, "%s", to);
    snprintf(c->from, sizeof c->from, "%s", from);
    snprintf(c->callback, sizeof c->callback, "%s", cb);
    snprintf(c->amd, sizeof c->amd, "%s", amd ? amd : "");
    c->events = events_asked(&f);
    c->doc = ag.doc;
    c->url = ag.url;
    snprintf(c->method, sizeof c->method, "%s", ag.method);
    if (c->url)
        agent_target(c, "url", c->url);
    /* AsyncAmd without MachineDetection detects nothing, as on Twilio. */
    c->async_amd = amd && async && !strcmp(async, "true");
    if (c->async_amd) {
        const char *acb = bc_form_get(&f, "AsyncAmdStatusCallback");
        const char *am = bc_form_get(&f, "AsyncAmdStatusCallbackMethod");
        c->amd_cb = acb ? strdup(acb) : NULL;
        snprintf(c->amd_method, sizeof c->amd_method, "%s", am && !strcmp(am, "GET") ? "GET" : "POST");
    }
    {
        const char *rec = bc_form_get(&f, "Record");
        const char *rcb = bc_form_get(&f, "RecordingStatusCallback");
        const char *rm = bc_form_get(&f, "RecordingStatusCallbackMethod");
        c->record = rec && !strcmp(rec, "true");
        c->rec_cb = c->record && rcb ? strdup(rcb) : NULL;
        snprintf(c->rec_method, sizeof c->rec_method, "%s",
                 rm && !strcmp(rm, "GET") ? "GET" : "POST");
    }
    url_param(cb, "call_id", c->call_id, sizeof c->call_id);
    url_param(cb, "batch_id", c->batch, sizeof c->batch);
    url_param(cb, "tenant_id", c->tenant, sizeof c->tenant);
    plan(s, c, t ? atoi(t) : 60, lim ? atoi(lim) : 14400);
    c->live = 1;
    c->created = time(NULL);
    map_put(&s->calls, c->sid, c);
    record_dial(s, c, body, len);
    live_add(s, c, 1);
    heap_push(s, c);
    pthread_cond_signal(&s->cv);
    json_t *made = resource(s, c);
    long hold = s->create_delay_ms;
    if (s->pending.create_hang > 0) {
        /* Placed, but the answer comes too late for the caller to see it. */
        s->pending.create_hang--;
        s->done.create_hang++;
        hold = s->hang_ms;
    }
    pthread_mutex_unlock(&s->mu);
    bc_metrics_inc(s->ctx->metrics, "sim_dials_total", "Calls accepted", NULL, 1);
    if (hold > 0)
        answer_later(req, 201, made, hold);
    else
        bc_http_json(resp, 201, made);
    bc_form_free(&f);
}

/* Ends a call now: its next event becomes the terminal one. */
static void end_call_now(sim *s, call *c, const char *outcome)
{
    snprintf(c->outcome, sizeof c->outcome, "%s", outcome);
    c->talk_s = c->state == ST_INPROGRESS
                    ? (int)((now_ms() - c->answer_ms) / (s->ms_per_s > 0 ? s->ms_per_s : 1)) : 0;
    c->state = c->state < ST_INPROGRESS ? ST_RINGING : ST_INPROGRESS;
    c->answer_ms = c->end_ms = now_ms();
    c->due = now_ms();
    if (c->heap_idx >= 0)
        heap_fix(s, c);
    pthread_cond_signal(&s->cv);
}

/* Checks an update's form before the call is looked at: known parameters,
 * and TwiML by the create's rules. 0, or -1 answered. */
static int update_valid(sim *s, const bc_http_req *req, bc_form *f, agent_spec *a,
                        bc_http_resp *resp)
{
    size_t len;
    const char *body = bc_http_body(req, &len), *bad;
    char why[200];

    if (bc_form_parse(body, len, f) < 0) {
        refuse(s, resp, body, len, 400, 21200, "Malformed form body");
        return -1;
    }
    if ((bad = unknown_param(f, update_params))) {
        snprintf(why, sizeof why, "Unknown parameter '%.60s'", bad);
        refuse(s, resp, body, len, 400, 20001, why);
        return -1;
    }
    if (!bc_form_get(f, "Status") && read_agent(f, 0, a) < 0) {
        refuse(s, resp, body, len, 400, a->code, a->msg);
        return -1;
    }
    return 0;
}

/* GET reads a call. POST updates it: Status=completed hangs up a call in
 * progress, Status=canceled one not yet answered (either is a no-op
 * otherwise, as the reconciler expects); Twiml or Url replaces what an
 * in-progress call runs, and is 21220 on any other call. */
static void call_route(sim *s, const bc_http_req *req, const char *sid, bc_http_resp *resp)
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
    if (!(c = map_get(&s->calls, sid))) {
        pthread_mutex_unlock(&s->mu);
        twilio_error(resp, 404, 20404, "The requested resource was not found");
        goto out;
    }
    if (post && st) {
        if (!strcmp(st, "completed") && c->state == ST_INPROGRESS && c->live) {
            agent_hangup(s, c);
            end_call_now(s, c, "completed");
        } else if (!strcmp(st, "canceled") && c->state < ST_INPROGRESS && c->live) {
            end_call_now(s, c, "canceled");
        } else if (strcmp(st, "completed") && strcmp(st, "canceled")) {
            bad = "Invalid call state: Status must be completed or canceled";
        }
    } else if (post && (a.doc || a.url)) {
        if (!agent_running(c))
            bad = "Call is not in-progress. Cannot redirect.";
        else
            agent_run(s, c, &a);
    } else if (post) {
        bad = "Invalid call state: Status must be completed or canceled";
    }
    if (bad) {
        size_t len;
        const char *body = bc_http_body(req, &len);

        pthread_mutex_unlock(&s->mu);
        refuse(s, resp, body, len, 400, 21220, bad);
        goto out;
    }
    if (post)
        s->ag.updates++;
    bc_http_json(resp, 200, resource(s, c));
    pthread_mutex_unlock(&s->mu);
out:
    sim_twiml_free(a.doc);
    free(a.url);
    bc_form_free(&f);
}

/* Twilio's list, filtered by To (the only filter the reconciler needs). */
static void list_calls(sim *s, const bc_http_req *req, bc_http_resp *resp)
{
    const char *to = bc_http_query(req, "To");
    json_t *arr = json_array();

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->calls.nb; i++)
        for (ent *e = s->calls.b[i]; e; e = e->next) {
            call *c = e->val;
            if (!to || !strcmp(c->to, to))
                json_array_append_new(arr, resource(s, c));
            if (json_array_size(arr) >= 1000)
                goto out;
        }
out:
    pthread_mutex_unlock(&s->mu);
    bc_http_json(resp, 200, json_pack("{s:o,s:i,s:i}", "calls", arr, "page", 0, "page_size", 1000));
}

static json_t *counts_json(map *m)
{
    json_t *o = json_object();

    for (size_t i = 0; i < m->nb; i++)
        for (ent *e = m->b[i]; e; e = e->next) {
            counts *c = e->val;
            json_object_set_new(o, e->key, json_pack("{s:I,s:I,s:I}", "dials", (json_int_t)c->dials,
                                                     "live", (json_int_t)c->live,
                                                     "peak_live", (json_int_t)c->peak));
        }
    return o;
}

#define FAULT_KINDS(X) \
    X(create_5xx) X(create_429) X(create_hang) X(callback_dup) X(callback_reorder) X(callback_drop)

/* {"pending": {...}, "played": {...}} (mutex held). */
static json_t *faults_json(sim *s)
{
    json_t *p = json_object(), *d = json_object();
#define X(k)                                                   \
    json_object_set_new(p, #k, json_integer(s->pending.k));     \
    json_object_set_new(d, #k, json_integer(s->done.k));
    FAULT_KINDS(X)
#undef X
    return json_pack("{s:o,s:o}", "pending", p, "played", d);
}

/* POST /faults?create_5xx=N&...: queue N of each kind for the next creates
 * or callbacks; GET /faults shows what is pending and what was played. */
static void faults(sim *s, const bc_http_req *req, bc_http_resp *resp)
{
    long v[6];
    int i = 0, bad = 0;

    if (!strcmp(bc_http_method(req), "POST")) {
#define X(k) bad |= bc_http_query_long(req, #k, 0, 1000000, 0, &v[i++]) < 0;
        FAULT_KINDS(X)
#undef X
        if (bad) {
            twilio_error(resp, 400, 21200, "fault counts are integers 0..1000000");
            return;
        }
        i = 0;
        pthread_mutex_lock(&s->mu);
#define X(k) s->pending.k += v[i++];
        FAULT_KINDS(X)
#undef X
    } else {
        pthread_mutex_lock(&s->mu);
    }
    bc_http_json(resp, 200, faults_json(s));
    pthread_mutex_unlock(&s->mu);
}

static int outcome_ok(const char *o);

/* POST /outcomes?to=+1...&outcomes=busy,voicemail,completed: the next calls
 * to that number end so, one outcome per call, in order; then the number is
 * back to BC_SIM_FORCE and BC_SIM_MIX. An empty list forgets the script.
 * GET /outcomes?to=... shows what is left of it. */
static void outcomes(sim *s, const bc_http_req *req, bc_http_resp *resp)
{
    const char *to = bc_http_query(req, "to"), *list = bc_http_query(req, "outcomes");
    script next = { 0 }, *sc;
    json_t *left;

    if (!to || !bc_e164_valid(to)) {
        twilio_error(resp, 400, 21201, "to must be an E.164 number");
        return;
    }
    if (!strcmp(bc_http_method(req), "POST")) {
        char copy[SCRIPT_MAX * 16], *save = NULL;

        if (!list || strlen(list) >= sizeof copy) {
            twilio_error(resp, 400, 21200, "outcomes must list at most 16 outcomes");
            return;
        }
        snprintf(copy, sizeof copy, "%s", list);
        for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
            if (!outcome_ok(o) || next.n == SCRIPT_MAX) {
                twilio_error(resp, 400, 21200, "outcomes are at most 16 of completed, busy, "
                                               "no-answer, failed, voicemail");
                return;
            }
            snprintf(next.out[next.n++], sizeof next.out[0], "%s", o);
        }
    }
    pthread_mutex_lock(&s->mu);
    sc = map_get(&s->scripts, to);
    if (!strcmp(bc_http_method(req), "POST")) {
        if (!sc) {
            sc = calloc(1, sizeof *sc);
            map_put(&s->scripts, to, sc);
        }
        *sc = next;
    }
    left = json_array();
    for (int i = sc ? sc->next : 0; sc && i < sc->n; i++)
        json_array_append_new(left, json_string(sc->out[i]));
    pthread_mutex_unlock(&s->mu);
    bc_http_json(resp, 200, json_pack("{s:s,s:o}", "to", to, "outcomes", left));
}

/* What the agent side of a call did, for /ledger/dials. */
static json_t *agent_json(const call *c)
{
    return json_pack("{s:s?,s:s?,s:b,s:o,s:o,s:o}", "kind", c ? c->ag_kind : NULL,
                     "target", c ? c->ag_target : NULL, "connected", c && c->ag_connected,
                     "error", c && c->ag_error ? json_integer(c->ag_error) : json_null(),
                     "played", c && c->played ? json_deep_copy(c->played) : json_array(),
                     "sip_headers", c && c->sip_headers ? json_deep_copy(c->sip_headers)
                                                        : json_object());
}

/* {"refused": [...]}: the last REFUSED_MAX refused creates and updates. */
static json_t *refused_json(sim *s)
{
    json_t *arr = json_array();
    size_t n = s->nrefused < REFUSED_MAX ? s->nrefused : REFUSED_MAX;

    for (size_t i = s->nrefused - n; i < s->nrefused; i++) {
        struct refusal *r = &s->refused[i % REFUSED_MAX];
        json_array_append_new(arr, json_pack("{s:o,s:i,s:i,s:s}", "params", form_json(r->form),
                                             "status", r->status, "code", r->code,
                                             "message", r->msg));
    }
    return json_pack("{s:o}", "refused", arr);
}

static void refused_reset(sim *s)
{
    for (size_t i = 0; s->refused && i < REFUSED_MAX; i++) {
        free(s->refused[i].form);
        s->refused[i].form = NULL;
    }
    s->nrefused = 0;
}

static void lists_free(sim *s)
{
    for (size_t i = 0; i < s->lists.nb; i++)
        for (ent *e = s->lists.b[i]; e; e = e->next) {
            blist *l = e->val;
            for (size_t k = 0; k < l->n; k++)
                free(l->v[k].form);
            free(l->v);
        }
    map_free(&s->lists, free);
}

static void ledger(sim *s, const bc_http_req *req, const char *path, bc_http_resp *resp)
{
    pthread_mutex_lock(&s->mu);
    if (!strcmp(path, "/ledger") && !strcmp(bc_http_method(req), "GET")) {
        json_t *l = json_pack(
            "{s:I,s:I,s:I,s:O,s:o,s:o,s:{s:I,s:I},s:I}", "dials", (json_int_t)s->dials,
            "live", (json_int_t)s->live, "peak_live", (json_int_t)s->peak,
            "duplicate_call_ids", s->duplicates, "batches", counts_json(&s->batches),
            "tenants", counts_json(&s->tenants), "callbacks", "sent", (json_int_t)s->cb_ok,
            "failed", (json_int_t)s->cb_failed, "rejected_429", (json_int_t)s->rejected_cps);
        json_object_set_new(l, "faults", faults_json(s));
        json_object_set_new(l, "agent", json_pack(
            "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "connections", (json_int_t)s->ag.connections,
            "stream_starts", (json_int_t)s->ag.stream_starts,
            "stream_stops", (json_int_t)s->ag.stream_stops, "errors", (json_int_t)s->ag.errors,
            "twiml_fetches", (json_int_t)s->ag.twiml_fetches,
            "amd_callbacks", (json_int_t)s->ag.amd_callbacks, "plays", (json_int_t)s->ag.plays,
            "updates", (json_int_t)s->ag.updates, "recordings", (json_int_t)s->ag.recordings));
        bc_http_json(resp, 200, l);
    } else if (!strcmp(path, "/ledger/refused") && !strcmp(bc_http_method(req), "GET")) {
        bc_http_json(resp, 200, refused_json(s));
    } else if (!strcmp(path, "/ledger/dials") && !strcmp(bc_http_method(req), "GET")) {
        const char *b = bc_http_query(req, "batch_id");
        blist *l = b ? map_get(&s->lists, b) : NULL;
        json_t *arr = json_array();

        for (size_t i = 0; l && i < l->n; i++) {
            dial *d = &l->v[i];
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o}",
                                                 "call_sid", d->sid, "call_id", d->call_id,
                                                 "to", d->to, "from", d->from, "batch_id", d->batch,
                                                 "tenant_id", d->tenant, "at_ms",
                                                 (json_int_t)d->at_ms, "params", form_json(d->form),
                                                 "agent", agent_json(map_get(&s->calls, d->sid))));
        }
        bc_http_json(resp, 200, json_pack("{s:o}", "dials", arr));
    } else if (!strcmp(path, "/ledger/reset") && !strcmp(bc_http_method(req), "POST")) {
        map_free(&s->batches, free);
        map_free(&s->tenants, free);
        map_free(&s->per_call_id, free);
        lists_free(s);
        refused_reset(s);
        memset(&s->ag, 0, sizeof s->ag);
        json_array_clear(s->duplicates);
        memset(&s->pending, 0, sizeof s->pending);
        memset(&s->done, 0, sizeof s->done);
        s->dials = s->peak = s->cb_ok = s->cb_failed = s->rejected_cps = 0;
        s->peak = s->live;
        /* Live calls keep counting from here. */
        for (size_t i = 0; i < s->calls.nb; i++)
            for (ent *e = s->calls.b[i]; e; e = e->next) {
                call *c = e->val;
                if (c->live) {
                    c->live = 0;
                    s->live--;
                    live_add(s, c, 1);
                    c->live = 1;
                }
            }
        bc_http_json(resp, 200, json_pack("{s:s}", "status", "reset"));
    } else {
        twilio_error(resp, 404, 20404, "The requested resource was not found");
    }
    pthread_mutex_unlock(&s->mu);
}

static void handle(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    sim *s = ud;
    const char *path = bc_http_path(req), *rest;
    char prefix[128];
    size_t plen;

    if (!strcmp(path, "/faults")) {
        bc_http_set_route(req, "/faults");
        faults(s, req, resp);
        return;
    }
    if (!strcmp(path, "/outcomes")) {
        bc_http_set_route(req, "/outcomes");
        outcomes(s, req, resp);
        return;
    }
    if (!strncmp(path, "/ledger", 7)) {
        bc_http_set_route(req, "/ledger");
        ledger(s, req, path, resp);
        return;
    }
    snprintf(prefix, sizeof prefix, "/2010-04-01/Accounts/");
    plen = strlen(prefix);
    if (strncmp(path, prefix, plen))
        return;   /* 404 */
    bc_http_set_route(req, "/2010-04-01/Accounts/:sid/Calls");
    if (!authorized(s, req)) {
        bc_metrics_inc(s->ctx->metrics, "sim_rejected_total", "Creates refused", "reason=\"auth\"", 1);
        twilio_error(resp, 401, 20003, "Authenticate");
        return;
    }
    rest = path + plen;
    if (strncmp(rest, s->account, strlen(s->account)) || rest[strlen(s->account)] != '/') {
        twilio_error(resp, 404, 20404, "The requested resource was not found");
        return;
    }
    rest += strlen(s->account);
    if (!strcmp(rest, "/Calls.json") && !strcmp(bc_http_method(req), "POST")) {
        create_call(s, req, resp);
    } else if (!strcmp(rest, "/Calls.json") && !strcmp(bc_http_method(req), "GET")) {
        list_calls(s, req, resp);
    } else if (!strncmp(rest, "/Calls/", 7) && strlen(rest) > 12 &&
               !strcmp(rest + strlen(rest) - 5, ".json")) {
        char sid[40];
        snprintf(sid, sizeof sid, "%.*s", (int)(strlen(rest) - 12), rest + 7);
        call_route(s, req, sid, resp);
    } else {
        twilio_error(resp, 404, 20404, "The requested resource was not found");
    }
}

/* ---- callbacks ------------------------------------------------------- */

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

/* Builds and starts the callback of c's next status (mutex held). */
static void start_send(sim *s, call *c)
{
    const char *st;
    bc_form f = { 0 };
    char num[24], sig[64], ts[64], hdr[128];
    cbsend *x = calloc(1, sizeof *x);
    CURL *e = curl_easy_init();

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
        agent_answered(s, c);
    } else {
        /* A recorded call that was answered: its recording is ready a
         * moment after the end, and told on its own callback. */
        if (c->record && c->state == ST_INPROGRESS)
            tev_push(s, c, now_ms() + sim_ms(s, 1), EV_REC);
        c->state = ST_DONE;
        st = c->outcome;
        x->terminal = 1;
        agent_hangup(s, c);
        /* The call is over the moment it ends, before anyone hears of it. */
        if (c->live) {
            c->live = 0;
            live_add(s, c, -1);
        }
    }
    if (!x->terminal && !c->resend[0] && !(c->events & event_of(st))) {
        /* Not asked for: the call moves on, nobody is told. */
        free(x);
        curl_easy_cleanup(e);
        advance(s, c);
        return;
    }
    if (x->terminal && !c->resend[0] && s->pending.callback_drop > 0) {
        /* The final callback is lost: the call is over, nobody is told. */
        s->pending.callback_drop--;
        s->done.callback_drop++;
        c->seq++;
        free(x);
        curl_easy_cleanup(e);
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
        answered_by(c))
        bc_form_add(&f, "AnsweredBy", answered_by(c));
    bc_twilio_sign(s->token, c->callback, &f, sig, sizeof sig);
    x->c = c;
    x->form = bc_form_encode(&f);
    bc_form_free(&f);
    snprintf(hdr, sizeof hdr, "X-Twilio-Signature: %s", sig);
    x->hdrs = curl_slist_append(NULL, hdr);
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/x-www-form-urlencoded");
    c->sending = 1;
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
    heap_push(s, c);
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
    CURL *e = curl_easy_init();
    char sig[64], hdr[128];
    char *full = NULL;
    bc_form none = { 0 };

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
    if (answered_by(c))
        bc_form_add(&f, "AnsweredBy", answered_by(c));
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
    bc_form_add(&f, "AnsweredBy", answered_by(c) ? answered_by(c) : "unknown");
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
    if (e->gen != c->gen || !agent_running(c))
        return;
    if (e->kind == EV_FETCH)
        fetch_twiml(s, c);
    else
        agent_step(s, c);
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
    if (x->gen != c->gen || !agent_running(c))
        return;              /* redirected or hung up meanwhile */
    if (ok && !x->too_big) {
        sim_twiml *doc = sim_twiml_parse(x->body ? x->body : "", x->len, &err);
        if (doc) {
            sim_twiml_free(c->doc);
            c->doc = doc;
            c->pc = 0;
            c->ag_connected = 1;
            agent_step(s, c);
            return;
        }
    }
    /* Twilio would play its "application error" and hang up. */
    c->ag_error = !ok ? 11200 : x->too_big ? 11750 : err.code;
    s->ag.errors++;
    bc_log(s->ctx->log, BC_WARN, "sim.twiml_fetch_failed", "{s:s,s:i,s:i}", "call_sid", c->sid,
           "code", c->ag_error, "http_status", (int)status);
    agent_end(s, c);
}

static void finished(sim *s, CURL *e, CURLcode code)
{
    cbsend *x = NULL;
    long status = 0;
    call *c;

    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(s->multi, e);
    curl_easy_cleanup(e);
    c = x->c;
    pthread_mutex_lock(&s->mu);
    if (x->kind != X_STATUS) {
        other_finished(s, x, code, status);
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
            heap_push(s, c);
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
            heap_push(s, c);
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
        heap_push(s, c);
    } else {
        s->cb_failed++;
        bc_metrics_inc(s->ctx->metrics, "sim_callbacks_total", "Status callbacks", "result=\"failed\"", 1);
        c->resend[0] = '\0';
        c->tries = 0;
        advance(s, c);
    }
    pthread_mutex_unlock(&s->mu);
    curl_slist_free_all(x->hdrs);
    free(x->form);
    free(x);
}

static void *callback_loop(void *arg)
{
    sim *s = arg;
    int running, left;
    CURLMsg *m;

    while (!s->stop) {
        long long now = now_ms(), wait = 50;

        pthread_mutex_lock(&s->mu);
        while (s->nheap && s->heap[0]->due <= now) {
            call *c = heap_pop(s);

            if (c->sending || (c->state == ST_DONE && !c->resend[0]))
                continue;   /* in flight (it reschedules itself) or over */
            start_send(s, c);
        }
        while (s->ntev && s->tev[0].due <= now) {
            struct tev e = tev_pop(s);
            run_tev(s, &e);
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

/* ---- set-up ---------------------------------------------------------- */

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

static int outcome_ok(const char *o)
{
    return !strcmp(o, "completed") || !strcmp(o, "busy") || !strcmp(o, "no-answer") ||
           !strcmp(o, "failed") || !strcmp(o, "voicemail");
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
        if (!outcome_ok(eq + 1)) {
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

static void free_call(void *v)
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
    if (!s.seed)
        s.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    if (parse_mix(&s, bc_config_str(ctx.cfg, "mix")) < 0 ||
        parse_force(&s, bc_config_str(ctx.cfg, "force")) < 0 ||
        parse_range(bc_config_str(ctx.cfg, "ring-seconds"), &s.ring_lo, &s.ring_hi) < 0 ||
        parse_range(bc_config_str(ctx.cfg, "talk-seconds"), &s.talk_lo, &s.talk_hi) < 0 ||
        s.ms_per_s < 0) {
        fprintf(stderr, "%s: BC_SIM_MIX, BC_SIM_RING_SECONDS, BC_SIM_TALK_SECONDS or "
                        "BC_SIM_MS_PER_SECOND or BC_SIM_FORCE is malformed (see --help)\n", argv[0]);
        bc_svc_free(&ctx);
        return 2;
    }
    {
        bc_err err = { { 0 } };

        xmlInitParser();
        s.agent_ca = bc_config_str(ctx.cfg, "agent-ca");
        s.ws = sim_ws_new(s.agent_ca, on_stream, &s, &err);
        if (!s.ws) {
            fprintf(stderr, "%s: BC_SIM_AGENT_CA: %s\n", argv[0], bc_err_msg(&err));
            bc_svc_free(&ctx);
            return 2;
        }
    }
    s.duplicates = json_array();
    s.bucket = (double)s.cps;
    s.bucket_at = now_ms();
    pthread_mutex_init(&s.mu, NULL);
    pthread_condattr_init(&ca);
    pthread_cond_init(&s.cv, &ca);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s.multi = curl_multi_init();
    curl_multi_setopt(s.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    pthread_create(&s.thread, NULL, callback_loop, &s);
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
    curl_multi_cleanup(s.multi);
    curl_global_cleanup();
    map_free(&s.calls, free_call);
    map_free(&s.batches, free);
    map_free(&s.tenants, free);
    map_free(&s.per_call_id, free);
    lists_free(&s);
    refused_reset(&s);
    free(s.refused);
    free(s.tev);
    xmlCleanupParser();
    map_free(&s.scripts, free);
    json_decref(s.duplicates);
    free(s.heap);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    bc_log(ctx.log, BC_INFO, "sim.stopped", NULL);
    bc_svc_free(&ctx);
    return rc;
}
