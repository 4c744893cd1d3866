/* bc_rymi: the Rymi-style /v1 surface: queue & fan-out, call sessions,
 * agents, numbers, DNC, webhooks, publishable keys, auth and spend. A Rymi
 * "call" (session) is a batch; its PSTN participants are its recipients. */
#ifndef BC_RYMI_H
#define BC_RYMI_H

#include "bc_api.h"
#include "bc_batches.h"
#include "bc_credits.h"

int bc_rymi_handle(bc_api *api, const bc_http_req *req, bc_http_resp *resp);

/* Validates a POST /v1/calls/batch body (participants 0: "to" or
 * "recipients") or a POST /v1/calls body (participants 1: "participants")
 * into spec, whose strings and JSON borrow from in. The recipients are
 * normalised into a new array, *recips, which spec borrows too (caller
 * decrefs it after spec is used). 0, or -1 with why set and *recips NULL.
 * The DNC list is not checked here: bc_batch_create applies the tenant's
 * policy (spec->refuse_blocked). */
int bc_rymi_parse(json_t *in, int participants, bc_batch_spec *spec, json_t **recips,
                  char *why, size_t cap);

#define BC_RYMI_SESSION_COUNTS                                                    \
    "(SELECT count(*) FILTER (WHERE status IN ('dispatched', 'started')) AS live," \
    "        count(*) FILTER (WHERE status = 'dispatched') AS dialing,"            \
    "        count(*) FILTER (WHERE status = 'queued') AS queued,"                 \
    "        count(*) FILTER (WHERE status = 'completed') AS completed,"           \
    "        count(*) FILTER (WHERE status IN ('failed', 'cancelled', 'expired')) AS failed" \
    "   FROM recipients r WHERE r.batch_id = b.id) c"

/* A session's status in Rymi's words, from its participants. */
#define BC_RYMI_SESSION_STATUS                                                    \
    "CASE WHEN c.queued > 0 AND b.state <> 'cancelled' AND (b.paused_at IS NOT NULL" \
    "          OR EXISTS (SELECT 1 FROM tenants tp WHERE tp.id = b.tenant_id"     \
    "                     AND tp.paused_at IS NOT NULL)) THEN 'paused'"           \
    "     WHEN c.live > 0 OR (c.queued > 0 AND c.completed + c.failed > 0"       \
    "                         AND b.state <> 'cancelled') THEN 'in_progress'"     \
    "     WHEN c.queued > 0 AND b.state <> 'cancelled' THEN 'queued'"             \
    "     WHEN c.completed > 0 OR b.state = 'cancelled' THEN 'completed'"         \
    "     ELSE 'failed' END"

/* A webhook delivery as the API shows it (d: webhook_deliveries). */
#define BC_RYMI_DELIVERY_COLS                                                      \
    "'whd_' || d.id AS id, d.event_id, d.event_type, d.status,"                   \
    " CASE WHEN d.status = 'pending' THEN rfc3339(d.next_attempt_at) END AS next_attempt_at," \
    " d.attempts, d.last_status, d.last_error, rfc3339(d.created_at) AS created_at," \
    " rfc3339(d.delivered_at) AS delivered_at, d.payload"

#define BC_RYMI_STMTS                                                              \
    { "rymi_sessions",                                                             \
      "SELECT b.id, " BC_RYMI_SESSION_STATUS " AS status, count(*) OVER () AS total" \
      "  FROM batches b, LATERAL " BC_RYMI_SESSION_COUNTS                          \
      " WHERE b.tenant_id = $1 AND ($2::text IS NULL OR b.agent_id = $2)"          \
      "   AND ($3::text IS NULL OR (b.created_at, b.id) <"                         \
      "        (SELECT created_at, id FROM batches WHERE id = $3 AND tenant_id = $1))" \
      "   AND ($4::text IS NULL OR " BC_RYMI_SESSION_STATUS " = $4"               \
      "        OR ($4 = 'ringing' AND c.dialing > 0))"                             \
      "   AND (NOT $7::bool OR c.live > 0)"                                        \
      " ORDER BY b.created_at DESC, b.id DESC LIMIT $5::int OFFSET $6::int" },     \
    { "rymi_events",                                                               \
      "SELECT c.recipient_id, c.id, h.e->>'status' AS status, h.e->>'at' AS at"    \
      "  FROM calls c, jsonb_array_elements(c.history) WITH ORDINALITY AS h(e, n)" \
      " WHERE c.batch_id = $1 AND c.tenant_id = $2"                                \
      " ORDER BY h.e->>'at', c.id, h.n" },                                         \
    { "rymi_stats",                                                                \
      "SELECT count(*) FILTER (WHERE status = 'queued') AS waiting,"               \
      "       count(*) FILTER (WHERE status IN ('dispatched', 'started')) AS active," \
      "       count(*) FILTER (WHERE status = 'completed') AS completed,"          \
      "       count(*) FILTER (WHERE status = 'failed') AS failed,"                \
      "       count(*) FILTER (WHERE status = 'expired') AS expired,"              \
      "       (SELECT rfc3339(paused_at) FROM tenants WHERE id = $1) AS paused_at" \
      "  FROM recipients WHERE tenant_id = $1" },                                  \
    { "rymi_agents",                                                               \
      "SELECT id, name, region, endpoint, record, config::text AS config,"        \
      "       rfc3339(created_at) AS created_at,"                                   \
      "       rfc3339(updated_at) AS updated_at, count(*) OVER () AS total"        \
      "  FROM agents WHERE tenant_id = $1 AND deleted_at IS NULL"                  \
      "   AND ($2::text IS NULL OR id = $2)"                                       \
      " ORDER BY created_at DESC, id LIMIT $3::int OFFSET $4::int" },              \
    { "rymi_agent_insert",                                                         \
      "INSERT INTO agents (id, tenant_id, name, region, config, endpoint, record)" \
      " VALUES ($1, $2, $3, $4, $5::jsonb, $6, coalesce($7::boolean, false))" },                                     \
    { "rymi_agent_update",                                                         \
      "UPDATE agents SET name = coalesce($3, name), region = coalesce($4, region)," \
      "       config = CASE WHEN $5::jsonb IS NULL THEN config ELSE config || $5::jsonb END," \
      "       endpoint = coalesce($6, endpoint),"                                 \
      "       record = coalesce($7::boolean, record), updated_at = now()"          \
      " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL" },                \
    { "rymi_agent_delete",                                                         \
      "UPDATE agents SET deleted_at = now() WHERE id = $1 AND tenant_id = $2"      \
      "   AND deleted_at IS NULL" },                                               \
    { "rymi_numbers",                                                              \
      "SELECT id, number, provider, agent_id, is_default, rfc3339(created_at) AS created_at," \
      "       count(*) OVER () AS total"                                           \
      "  FROM phone_numbers WHERE tenant_id = $1 AND ($2::text IS NULL OR number = $2)" \
      " ORDER BY created_at, id LIMIT $3::int OFFSET $4::int" },                   \
    { "rymi_number_insert",                                                        \
      "INSERT INTO phone_numbers (id, tenant_id, number, provider, agent_id, is_default)" \
      " VALUES ($1, $2, $3, $4, $5,"                                               \
      "         NOT EXISTS (SELECT 1 FROM phone_numbers WHERE tenant_id = $2))"    \
      " ON CONFLICT (tenant_id, number) DO NOTHING" },                             \
    { "rymi_number_attach",                                                        \
      "UPDATE phone_numbers SET agent_id = $3 WHERE tenant_id = $1 AND number = $2" }, \
    { "rymi_number_delete",                                                        \
      "DELETE FROM phone_numbers p WHERE tenant_id = $1 AND number = $2"           \
      "   AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.from_number_id = p.id)"  \
      " RETURNING id" },                                                           \
    { "rymi_dnc_list",                                                             \
      "SELECT number, reason, rfc3339(created_at) AS created_at, count(*) OVER () AS total" \
      "  FROM dnc WHERE tenant_id = $1 ORDER BY created_at DESC, number"           \
      " LIMIT $2::int OFFSET $3::int" },                                           \
    { "rymi_dnc_delete",                                                           \
      "DELETE FROM dnc WHERE tenant_id = $1 AND number = $2 RETURNING number" },   \
    { "rymi_webhooks",                                                             \
      "SELECT id, url, events::text[] AS events, enabled, rfc3339(created_at) AS created_at," \
      "       rfc3339(updated_at) AS updated_at"                                   \
      "  FROM webhooks WHERE tenant_id = $1 AND ($2::text IS NULL OR id = $2)"     \
      " ORDER BY created_at, id" },                                                \
    { "rymi_webhook_insert",                                                       \
      "INSERT INTO webhooks (id, tenant_id, url, events, secret, enabled)"         \
      " VALUES ($1, $2, $3, $4::text[], $5, $6::boolean)" },                       \
    { "rymi_webhook_update",                                                       \
      "UPDATE webhooks SET url = coalesce($3, url),"                               \
      "       events = coalesce($4::text[], events),"                              \
      "       enabled = coalesce($5::bool, enabled), updated_at = now()"           \
      " WHERE id = $1 AND tenant_id = $2" },                                       \
    { "rymi_webhook_delete",                                                       \
      "DELETE FROM webhooks WHERE id = $1 AND tenant_id = $2" },                   \
    { "rymi_webhook_owned",                                                        \
      "SELECT 1 FROM webhooks WHERE id = $1 AND tenant_id = $2" },                 \
    { "rymi_webhook_deliveries",                                                   \
      "SELECT " BC_RYMI_DELIVERY_COLS ", count(*) OVER () AS total"               \
      "  FROM webhook_deliveries d WHERE d.webhook_id = $1"                        \
      "   AND ($2::text IS NULL OR d.status = $2)"                                 \
      " ORDER BY d.created_at DESC, d.id DESC LIMIT $3::int OFFSET $4::int" },     \
    /* A delivery that is not pending starts again from a first try. Returns  \
     * one row per delivery found; its id is NULL when it was pending. */      \
    { "rymi_webhook_redeliver",                                                    \
      "WITH f AS (SELECT d.id, d.status FROM webhook_deliveries d"                 \
      "             JOIN webhooks w ON w.id = d.webhook_id"                        \
      "            WHERE d.id = $3::bigint AND d.webhook_id = $1 AND w.tenant_id = $2" \
      "              FOR UPDATE OF d),"                                            \
      " d AS (UPDATE webhook_deliveries d SET status = 'pending', attempts = 0,"   \
      "              next_attempt_at = now(), claim_token = NULL, last_status = NULL," \
      "              last_error = NULL, delivered_at = NULL, updated_at = now()"   \
      "         FROM f WHERE d.id = f.id AND f.status <> 'pending'"                \
      "       RETURNING " BC_RYMI_DELIVERY_COLS ")"                                \
      " SELECT d.* FROM f LEFT JOIN d ON true" },                                  \
    { "rymi_pk_list",                                                              \
      "SELECT id, lookup, rfc3339(created_at) AS created_at FROM api_keys"         \
      " WHERE tenant_id = $1 AND kind = 'publishable' AND revoked_at IS NULL"      \
      " ORDER BY created_at, id" },                                                \
    { "rymi_key_insert",                                                           \
      "INSERT INTO api_keys (id, tenant_id, kind, lookup, hash) VALUES ($1, $2, $3, $4, $5)" }, \
    { "rymi_key_revoke",                                                           \
      "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND tenant_id = $2"    \
      "   AND kind = $3 AND revoked_at IS NULL" },                                 \
    { "rymi_me",                                                                   \
      "SELECT id, name, plan, email, rate_per_min, burst, concurrency,"            \
      "       " BC_SQL_CREDITS_BALANCE("$1") " AS credits_cents,"                  \
      "       default_region, rfc3339(created_at) AS created_at FROM tenants WHERE id = $1" }, \
    /* Spend is what was settled: the ledger's settle rows (bc_credits.h),  \
     * by UTC day of settlement. */                                           \
    { "rymi_spend",                                                                \
      "SELECT to_char(date_trunc('day', l.at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day," \
      "       count(*) AS calls, coalesce(sum(l.minutes), 0)::bigint AS minutes,"  \
      "       (-sum(l.cents))::bigint AS cents"                                    \
      "  FROM credit_ledger l"                                                     \
      " WHERE l.tenant_id = $1 AND l.kind = 'settle'"                              \
      "   AND l.at >= $2::date AND l.at < $3::date + 1"                            \
      " GROUP BY 1 ORDER BY 1" }

#endif
