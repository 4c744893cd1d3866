/* sim_run: running the TwiML of an answered call. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_calls.h"
#include "sim_heap.h"
#include "sim_run.h"

/* How long an answered call waits for its agent's stream to open. */
#define STREAM_WAIT_MS 15000

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

void sim_run_hangup(sim *s, call *c)
{
    if (c->ag_over)
        return;
    c->ag_over = 1;
    agent_detach(s, c);
}

void sim_run_end(sim *s, call *c)
{
    sim_run_hangup(s, c);
    sim_calls_end_now(s, c, "completed");
}

int sim_run_running(const call *c)
{
    return c->live && c->state == ST_INPROGRESS && !c->ag_over;
}

void sim_run_target(call *c, const char *kind, const char *target)
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
        sim_heap_fix(s, c);
        pthread_cond_signal(&s->cv);
    }
}

static void agent_connect_stream(sim *s, call *c, const sim_tw_verb *v)
{
    sim_ws_stream st = { v->arg, s->account, c->sid, v->extra, (int)s->media_frames, c, c->gen };
    char sid[40];

    sim_run_target(c, "stream", v->arg);
    c->ws_id = sim_ws_open(s->ws, &st, sid, sizeof sid);
    c->pinned = 1;   /* the stream reports to c until it is gone */
    /* The callee talks to the agent for its talk time once it hears it:
     * until the stream is open the call waits (a failed stream goes on
     * with the next verb at once), so a slow handshake never turns a
     * conversation into a call the agent did not hear. */
    if (c->ws_id)
        end_at(s, c, now_ms() + STREAM_WAIT_MS);
}

void sim_run_step(sim *s, call *c)
{
    while (sim_run_running(c)) {
        const sim_tw_verb *v;

        if (!c->doc || c->pc >= c->doc->n) {
            sim_run_end(s, c);
            return;
        }
        v = &c->doc->v[c->pc++];
        switch (v->kind) {
        case SIM_TW_SAY:
        case SIM_TW_PLAY:
            agent_played(c, v->kind == SIM_TW_SAY ? "say" : "play", v->arg);
            s->ag.plays++;
            sim_heap_tev_push(s, c, now_ms() + sim_ms(s, 1), EV_VERB);
            return;
        case SIM_TW_PAUSE:
            if (v->secs > 0) {
                sim_heap_tev_push(s, c, now_ms() + sim_ms(s, v->secs), EV_VERB);
                return;
            }
            break;
        case SIM_TW_HANGUP:
            sim_run_end(s, c);
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
            sim_run_target(c, "sip", v->arg);
            c->ag_connected = 1;
            json_decref(c->sip_headers);
            c->sip_headers = json_incref(v->extra);
            s->ag.connections++;
            return;
        }
    }
}

/* At answer, or a live update. */
void sim_run_replace(sim *s, call *c, agent_spec *a)
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
        sim_run_target(c, "url", c->url);
        /* libcurl's handles belong to the callback thread: it fetches. */
        sim_heap_tev_push(s, c, now_ms(), EV_FETCH);
    } else {
        sim_run_step(s, c);
    }
}

void sim_run_answered(sim *s, call *c)
{
    if (c->async_amd)
        sim_heap_tev_push(s, c, now_ms() + s->amd_ms, EV_AMD);
    if (c->url)
        sim_heap_tev_push(s, c, now_ms(), EV_FETCH);
    else
        sim_run_step(s, c);
}

void sim_run_on_stream(void *ud, void *owner, unsigned gen, int what, int code)
{
    sim *s = ud;
    call *c = owner;

    pthread_mutex_lock(&s->mu);
    switch (what) {
    case SIM_WS_OPEN:
        s->ag.connections++;
        if (gen == c->gen) {
            c->ag_connected = 1;
            end_at(s, c, now_ms() + c->talk_ms);
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
            sim_run_step(s, c);
        }
        break;
    }
    pthread_mutex_unlock(&s->mu);
}
