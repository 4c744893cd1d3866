/* bc_agent_leg: the worker's side of a call's agent leg. When the callee
 * answers, the carrier runs what bc_agent_instructions makes of the
 * agent's endpoint (inline TwiML, or the agent's own TwiML URL); this
 * fills it into a dial, with a per-call token the agent shows to fetch its
 * context and report on the call. */
#ifndef BC_AGENT_LEG_H
#define BC_AGENT_LEG_H

#include "bc_agent.h"
#include "bc_carrier.h"

/* Fills d's twiml or url for the agent at endpoint, for the call c (its
 * token and context_url are set here): the token is good for the whole
 * call and an hour after it (the agent's report comes after the hang-up),
 * signed with secret; the context URL is under public_url. *by_route is 1
 * when the variables did not fit in the TwiML, so the agent fetches them.
 * 0, or -1 with err set (an empty message: the token failed). */
int bc_agent_leg(bc_dial *d, const char *endpoint, bc_agent_call *c, const char *public_url,
                 const char *secret, int *by_route, bc_err *err);

#endif
