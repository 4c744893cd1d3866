#include "bc_agent_leg.h"

#include <stdio.h>
#include <time.h>

int bc_agent_leg(bc_dial *d, const char *endpoint, bc_agent_call *c, const char *public_url,
                 const char *secret, int *by_route, bc_err *err)
{
    char token[BC_AGENT_TOKEN_MAX], ctx_url[512];
    long long exp = (long long)time(NULL) + d->timeout_s + d->time_limit_s + 3600;
    int inl = 0, rc;

    c->token = token;
    c->context_url = ctx_url;
    snprintf(ctx_url, sizeof ctx_url, "%s/v1/calls/%s/context", public_url, d->call_id);
    rc = bc_agent_token(secret, d->call_id, exp, token, sizeof token);
    if (rc == 0)
        rc = bc_agent_instructions(endpoint, c, &d->twiml, &d->url, &inl, err);
    c->token = NULL;
    c->context_url = NULL;
    *by_route = rc == 0 && !inl && d->twiml;
    return rc;
}
