/* sim_req: reading a request to the carrier simulator's API as Twilio
 * reads it: its account's credentials, the parameters of a create or an
 * update (which are known, which events, what the call runs once
 * answered), and Twilio's error body to answer with. */
#ifndef SIM_REQ_H
#define SIM_REQ_H

#include "bc_twilio.h"
#include "sim_model.h"

/* Answers resp with Twilio's error body: code, message, more_info, status. */
void sim_req_error(bc_http_resp *resp, int status, int code, const char *msg);
/* Reads one query parameter of url into out (cap bytes); "" when absent. */
void sim_req_url_param(const char *url, const char *name, char *out, size_t cap);
/* 1 if req's basic auth is the account's sid and token. */
int sim_req_authorized(sim *s, const bc_http_req *req);
/* The BC_EV_* bits a create asks for; -1 for an unknown event. */
int sim_req_events(const bc_form *f);

/* The parameters of Twilio's create and update, NULL-terminated. */
extern const char *const sim_req_create_params[];
extern const char *const sim_req_update_params[];
/* The first parameter of f not in known, or NULL. */
const char *sim_req_unknown_param(const bc_form *f, const char *const *known);

/* What a create or an update asks the call to run once answered. */
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
 * 0 (spec filled, or empty for an update without them) or -1 (code set).
 * The caller frees a->doc and a->url unless it takes them. */
int sim_req_read_agent(const bc_form *f, int required, agent_spec *a);

#endif
