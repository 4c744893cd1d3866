/* bc_agent_routes: the routes a call's agent uses with its per-call token
 * (bc_agent_token), not a tenant key: GET /v1/calls/{id}/context, the whole
 * context of the call it is on, and POST /v1/calls/{id}/report, its
 * end-of-call report (docs/agents.md). */
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
      " WHERE c.id = $1" },                                                       \
    /* The agent's report, stored unless it is the one already stored; the  \
     * call's call-result v3 "call.report" goes to the outbox in the same      \
     * statement. $1 call $2 report $3 disposition $4 results topic */          \
    { "agent_report_store",                                                          \
      "WITH c AS (UPDATE calls SET report = $2::jsonb, disposition = $3,"           \
      "                 reported_at = now()"                                        \
      "            WHERE id = $1 AND report IS DISTINCT FROM $2::jsonb"             \
      "           RETURNING to_jsonb(calls) AS cj, id, recipient_id, batch_id,"     \
      "                     reported_at),"                                          \
      " r AS (SELECT c.*, rr.status AS rstatus, rr.next_attempt_at FROM c"          \
      "         LEFT JOIN recipients rr ON rr.id = c.recipient_id"                  \
      "          AND rr.last_call_id = c.id)"                                       \
      " INSERT INTO outbox (topic, key, payload)"                                   \
      " SELECT $4, batch_id, call_result_v3('call.report', cj, rstatus,"            \
      "        CASE WHEN rstatus = 'queued' THEN false"                             \
      "             WHEN rstatus IN ('completed', 'failed', 'cancelled') THEN true END," \
      "        CASE WHEN rstatus = 'queued' THEN next_attempt_at END, NULL,"        \
      "        reported_at, $2::jsonb)"                                             \
      "   FROM r RETURNING id, topic, key, payload" },                              \
    { "agent_report_get",                                                            \
      "SELECT json_build_object('call_id', id,"                                     \
      "         'transcript', report->'transcript', 'summary', report->'summary',"  \
      "         'disposition', disposition, 'data', report->'data',"                \
      "         'reported_at', rfc3339_ms(reported_at))::text AS report"            \
      "  FROM calls WHERE id = $1" }

/* 1 if the request was one of these routes (answered), 0 if not. */
int bc_agent_routes_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

#endif
