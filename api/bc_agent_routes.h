/* bc_agent_routes: the routes a call's agent uses with its per-call token
 * (bc_agent_token), not a tenant key: GET /v1/calls/{id}/context, the whole
 * context of the call it is on (docs/agents.md). */
#ifndef BC_AGENT_ROUTES_H
#define BC_AGENT_ROUTES_H

#include "bc_api.h"

/* The call's context: its ids, numbers and attempt, who answered, and the
 * recipient's variables and metadata over the batch's. $1 call id */
#define BC_AGENT_ROUTES_STMTS                                                       \
    { "agent_context",                                                              \
      "SELECT json_build_object('call_id', c.id, 'batch_id', c.batch_id,"           \
      "         'tenant_id', c.tenant_id, 'agent_id', b.agent_id,"                  \
      "         'recipient_id', c.recipient_id, 'to', c.to_number,"                 \
      "         'from', c.from_number, 'attempt', c.attempt, 'status', c.status,"   \
      "         'answered_by', c.answered_by, 'batch_name', b.name,"                \
      "         'variables', CASE WHEN jsonb_typeof(r.variables) = 'object'"        \
      "                           THEN b.variables || r.variables ELSE b.variables END," \
      "         'metadata', CASE WHEN jsonb_typeof(r.metadata) = 'object'"          \
      "                          THEN b.metadata || r.metadata ELSE b.metadata END,"  \
      "         'post_call', b.post_call)::text AS context"                         \
      "  FROM calls c JOIN batches b ON b.id = c.batch_id"                          \
      "  JOIN recipients r ON r.id = c.recipient_id"                                \
      " WHERE c.id = $1" }

/* 1 if the request was one of these routes (answered), 0 if not. */
int bc_agent_routes_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

#endif
