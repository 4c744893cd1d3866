/* bc_outcomes: what comes back from a call, read and written outside the
 * agent's own routes: the carrier's recording callback (stored on the call,
 * announced as a call-result v3 "call.recording"), and the reads of a call's
 * report and recording where the surfaces expect them: Rymi's
 * GET /v1/calls/:id/summary, /transcript and /recording (a session's legs),
 * and Cartesia's Get Call, GET /agents/calls/:agent_call_id (docs/api.md). */
#ifndef BC_OUTCOMES_H
#define BC_OUTCOMES_H

#include "bc_api.h"

/* Rymi's GET /v1/calls/{id}/summary, /transcript or /recording (what):
 * the session's legs with a report or a recording, the latest on top;
 * answers 404 for a session not the tenant's. */
void bc_outcomes_rymi(bc_api *api, bc_pg *pg, const char *tenant, const char *id,
                      const char *what, bc_http_resp *resp);
/* Cartesia's Get Call, GET /agents/calls/{agent_call_id}: one attempt. */
void bc_outcomes_cartesia_call(bc_api *api, bc_pg *pg, const char *tenant, const char *id,
                               bc_http_resp *resp);

/* Its statements, for the API's table (bc_api_main.c). */
extern const bc_pg_stmt bc_outcomes_stmts[];

#endif
