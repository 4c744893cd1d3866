/* sim_run: running the TwiML of an answered call, as Twilio does: a
 * <Connect><Stream> opens a Media Stream to the agent (sim_ws), a
 * <Dial><Sip> is recorded and holds the call, <Say>, <Play> and <Pause>
 * take simulated time, <Hangup> or the end of the document hangs up. A Url
 * is fetched first by the callback thread. s->mu is held for all but
 * sim_run_on_stream, which takes it. */
#ifndef SIM_RUN_H
#define SIM_RUN_H

#include "sim_model.h"
#include "sim_req.h"

/* The call is hanging up (the callee, an update, the end of its TwiML):
 * what runs stops. Once only. */
void sim_run_hangup(sim *s, call *c);
/* The TwiML ended the call: completed, lasting what it lasted so far. */
void sim_run_end(sim *s, call *c);
/* 1 while c is live, in progress and its TwiML not over. */
int sim_run_running(const call *c);
/* Records what c's agent is (kind: "stream", "sip", "url"; target copied),
 * not connected yet. */
void sim_run_target(call *c, const char *kind, const char *target);
/* Runs verbs from c->pc until one that takes time; none left hangs up. */
void sim_run_step(sim *s, call *c);
/* Replaces what runs by a (takes its doc and url): a live update. */
void sim_run_replace(sim *s, call *c, agent_spec *a);
/* The call was just answered (callback thread): its TwiML starts at once
 * and, with AsyncAmd, detection runs beside it. */
void sim_run_answered(sim *s, call *c);
/* sim_ws_event_fn: what a Media Stream did (service thread of sim_ws). */
void sim_run_on_stream(void *ud, void *owner, unsigned gen, int what, int code);

#endif
