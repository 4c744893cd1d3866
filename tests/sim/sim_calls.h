/* sim_calls: the Call resource of the carrier simulator's API: create
 * (checked as Twilio checks it, with the faults tests queued), read,
 * update (hang up, cancel, redirect) and list, and how each call's life is
 * planned on the scaled clock. */
#ifndef SIM_CALLS_H
#define SIM_CALLS_H

#include "sim_model.h"

/* POST .../Calls.json: creates and places a call (takes s->mu). */
void sim_calls_create(sim *s, const bc_http_req *req, bc_http_resp *resp);
/* GET or POST .../Calls/{sid}.json: reads or updates a call (takes s->mu). */
void sim_calls_route(sim *s, const bc_http_req *req, const char *sid, bc_http_resp *resp);
/* GET .../Calls.json: Twilio's list, filtered by To (takes s->mu). */
void sim_calls_list(sim *s, const bc_http_req *req, bc_http_resp *resp);
/* c as Twilio's Call resource; a new reference (s->mu held). */
json_t *sim_calls_resource(sim *s, const call *c);
/* Twilio's AnsweredBy for c, or NULL when it is not (yet) told. */
const char *sim_calls_answered_by(const call *c);
/* Ends c now with outcome: its next event becomes the terminal one
 * (s->mu held). */
void sim_calls_end_now(sim *s, call *c, const char *outcome);
/* Frees a call and what it owns (a sim_map value freer). */
void sim_calls_free(void *c);
/* Forgets c, when BC_SIM_KEEP_ONE_IN says its batch is not kept and
 * nothing refers to it any more: ended, told, no timer or request of its
 * own in flight (s->mu held). GET of its sid then answers 20404. */
void sim_calls_forget_maybe(sim *s, call *c);

#endif
