/* bc_agent_routes: the routes a call's agent uses with its per-call token
 * (bc_agent_token), not a tenant key: GET /v1/calls/{id}/context, the whole
 * context of the call it is on, and POST /v1/calls/{id}/report, its
 * end-of-call report (docs/agents.md). */
#ifndef BC_AGENT_ROUTES_H
#define BC_AGENT_ROUTES_H

#include "bc_api.h"

/* The two routes. */
bc_http_surface bc_agent_routes_surface(bc_api *api);

/* Its statements, for the API's table (bc_api_main.c). */
extern const bc_pg_stmt bc_agent_routes_stmts[];

#endif
