/* bc_rymi_agents: Rymi's /v1/agents, the tenant's agents: their name, region,
 * endpoint (how calls reach them, docs/agents.md), recording, and whatever
 * else is given, kept as their config. */
#ifndef BC_RYMI_AGENTS_H
#define BC_RYMI_AGENTS_H

#include "bc_rymi.h"

/* Its routes, under /v1/ (bc_rymi_surface), and its statements, for the
 * API's table (bc_api_main.c). */
extern const bc_http_route bc_rymi_agents_routes[];
extern const bc_pg_stmt bc_rymi_agents_stmts[];

/* 1 if agent is one of the tenant's (not deleted). */
int bc_rymi_agent_exists(bc_surface_req *r, const char *agent);

#endif
