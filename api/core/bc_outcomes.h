/* bc_outcomes: what comes back from a call, read and written outside the
 * agent's own routes: the carrier's recording callback (stored on the call,
 * announced as a call-result v3 "call.recording"), and the reads of a call's
 * report and recording where the surfaces expect them: Rymi's
 * GET /v1/calls/:id/summary, /transcript and /recording (a session's legs),
 * and Cartesia's Get Call, GET /agents/calls/:agent_call_id (docs/api.md). */
#ifndef BC_OUTCOMES_H
#define BC_OUTCOMES_H

#include "bc_api.h"

/* Stores a completed recording once; a repeat (the same RecordingSid)
 * changes nothing. The call-result v3 event of the call goes to the outbox
 * in the same statement. $1 call $2 tenant $3 batch $4 RecordingSid
 * $5 RecordingUrl $6 duration (s, may be NULL) $7 results topic */
#define BC_OUTCOMES_STMTS                                                            \
    { "recording_store",                                                             \
      "WITH c AS (UPDATE calls SET recording_sid = $4, recording_url = $5,"          \
      "                 recording_duration_s = $6::int"                              \
      "            WHERE id = $1 AND tenant_id = $2 AND batch_id = $3"               \
      "              AND recording_sid IS DISTINCT FROM $4"                          \
      "           RETURNING to_jsonb(calls) AS cj, id, recipient_id, batch_id),"     \
      " r AS (SELECT c.*, rr.status AS rstatus, rr.next_attempt_at FROM c"           \
      "         LEFT JOIN recipients rr ON rr.id = c.recipient_id"                   \
      "          AND rr.last_call_id = c.id)"                                        \
      " INSERT INTO outbox (topic, key, payload)"                                    \
      " SELECT $7, batch_id, call_result_v3('call.recording', cj, rstatus,"          \
      "        CASE WHEN rstatus = 'queued' THEN false"                              \
      "             WHEN rstatus IN ('completed', 'failed', 'cancelled') THEN true END," \
      "        CASE WHEN rstatus = 'queued' THEN next_attempt_at END, NULL, now(), NULL)" \
      "   FROM r RETURNING id, topic, key, payload" },                               \
    { "recording_call",                                                              \
      "SELECT recording_sid FROM calls WHERE id = $1 AND tenant_id = $2 AND batch_id = $3" }, \
    { "outcomes_session",                                                            \
      "SELECT 1 FROM batches WHERE id = $1 AND tenant_id = $2" },                    \
    /* A session's legs (attempts) that have a report or a recording, in   \
     * the order of its participants. $1 batch $2 tenant */                   \
    { "outcomes_legs",                                                               \
      "SELECT c.recipient_id, c.id, c.attempt, c.report::text AS report,"            \
      "       c.disposition, rfc3339_ms(c.reported_at) AS reported_at,"              \
      "       c.recording_sid, c.recording_url, c.recording_duration_s"              \
      "  FROM calls c JOIN recipients r ON r.id = c.recipient_id"                    \
      " WHERE c.batch_id = $1 AND c.tenant_id = $2"                                  \
      "   AND (c.report IS NOT NULL OR c.recording_url IS NOT NULL)"                 \
      " ORDER BY c.reported_at NULLS FIRST, r.seq, c.attempt" },                     \
    /* Cartesia's Get Call. $1 call $2 tenant */                                     \
    { "outcomes_call",                                                               \
      "SELECT c.id, coalesce(c.agent_id, b.agent_id) AS agent_id, c.batch_id,"       \
      "       c.recipient_id, c.attempt, c.status, c.end_reason, c.answered_by,"     \
      "       c.duration_s, c.to_number, c.from_number,"                             \
      "       rfc3339(c.created_at) AS start_time, rfc3339(c.answered_at) AS answered_at," \
      "       rfc3339(c.ended_at) AS end_time, c.report::text AS report, c.disposition," \
      "       rfc3339_ms(c.reported_at) AS reported_at, c.recording_url,"            \
      "       c.recording_duration_s"                                                \
      "  FROM calls c JOIN batches b ON b.id = c.batch_id"                           \
      " WHERE c.id = $1 AND c.tenant_id = $2" }

/* 1 if the request was one of the read routes above (answered), 0 if not.
 * Authenticates with the tenant's key, as the surface's other routes do. */
int bc_outcomes_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

#endif
