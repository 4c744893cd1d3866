/* sim_model: what the carrier simulator knows, shared by its modules: the
 * calls (one struct call each, with what their TwiML does), the ledger of
 * dials, and the simulator itself (struct sim), whose mutex guards it all.
 * bc_sim.c builds the one sim in main(); the modules take it first. */
#ifndef SIM_MODEL_H
#define SIM_MODEL_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "bc_svc.h"
#include "sim_map.h"
#include "sim_twiml.h"
#include "sim_ws.h"

#define SIM_IDLE_EASY 256

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
    long long talk_ms;       /* its talk time, real ms (talk_s whole seconds unless spread) */
    int tries;               /* failed sends of the current status */
    char resend[16];         /* status to send again after a failure */
    int resend_terminal;
    int dupped, reordered;   /* faults already played on this call */
    int machine;             /* answered by a voicemail, not a person */
    char amd[24];            /* the MachineDetection asked for, or "" */
    int stale_seq;           /* 1 + SequenceNumber of a stale resend, or 0 */
    int events;              /* StatusCallbackEvent asked for: BC_EV_* bits */
    long long due;           /* next event due (real ms) */
    long long gone_ms;       /* when it stopped being live (real ms), or 0 */
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
    /* What still points at this call besides s->calls: timers (s->tev) and
     * requests of the callback thread in flight. A call that ever opened a
     * Media Stream is pinned: its stream may still report to it. Only an
     * ended call with neither may be forgotten (BC_SIM_KEEP_ONE_IN). */
    int refs, pinned;
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
    int talk_spread;           /* talk times to the millisecond, not whole seconds */
    int w_completed, w_busy, w_noanswer, w_failed, w_voicemail;
    unsigned int seed;
    char force_suffix[8][16];
    char force_outcome[8][16];
    int nforce;
    sim_map calls, batches, tenants, lists;
    sim_idset per_call_id;       /* attempt ids dialed, and how often */
    sim_map scripts;             /* number -> script: its next calls' outcomes */
    long dials, live, peak, cb_ok, cb_failed, rejected_cps, dups;
    long keep_one_in;            /* > 0: keep ended calls of one batch in this many */
    long forgotten;              /* ended calls freed so (GET /ledger) */
    /* Faults asked for through POST /faults (pending) and played (done). */
    struct {
        long create_5xx, create_429, create_4xx, create_hang, callback_dup, callback_reorder,
            callback_drop, update_5xx;
    }
        pending, done;
    long hang_ms;
    json_t *duplicates;
    call **heap;
    size_t nheap, capheap;
    double bucket;           /* cps token bucket */
    long long bucket_at;
    CURLM *multi;
    /* Easy handles of finished requests, reset, for the next ones (the
     * callback thread's alone; sim_callbacks.c). */
    CURL *idle[SIM_IDLE_EASY];
    int nidle;
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

/* What a timed event of a call runs (sim->tev). */
enum { EV_VERB, EV_FETCH, EV_AMD, EV_REC };

static inline long long now_ms(void) { return bc_now_ms(); }

/* Real milliseconds of secs simulated seconds. */
static inline long long sim_ms(const sim *s, long long secs) { return secs * s->ms_per_s; }

#endif
