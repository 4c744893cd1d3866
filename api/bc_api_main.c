/* batchcall-api: validates and persists batches, publishes their first
 * window of jobs, and turns carrier callbacks into Kafka events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_agent_routes.h"
#include "bc_api.h"
#include "bc_audit.h"
#include "bc_batchcall.h"
#include "bc_callback.h"
#include "bc_cartesia.h"
#include "bc_credits.h"
#include "bc_dashboard.h"
#include "bc_kafka.h"
#include "bc_gate.h"
#include "bc_dnc.h"
#include "bc_outcomes.h"
#include "bc_policy.h"
#include "bc_progress.h"
#include "bc_retell.h"
#include "bc_rymi.h"
#include "bc_rymi_account.h"
#include "bc_rymi_agents.h"
#include "bc_rymi_dnc.h"
#include "bc_rymi_keys.h"
#include "bc_rymi_numbers.h"
#include "bc_rymi_sessions.h"
#include "bc_rymi_webhooks.h"
#include "bc_sql.h"

static const bc_config_key keys[] = {
    BC_SVC_COMMON_KEYS,
    { "http-port", "BC_API_PORT", BC_INT, "8080", "port of the public API (0: any free port)" },
    { "http-threads", "BC_API_THREADS", BC_INT, "4", "request-handling threads" },
    { "max-body-bytes", "BC_API_MAX_BODY", BC_INT, "8388608", "largest request body accepted (413 above)" },
    { "max-connections", "BC_API_MAX_CONNECTIONS", BC_INT, "2000", "open connections at most" },
    { "max-connections-per-ip", "BC_API_MAX_CONNECTIONS_PER_IP", BC_INT, "100", "open connections from one client address at most, so one client cannot take them all (0: no cap; behind a proxy every connection comes from the proxy's address)" },
    { "idle-timeout", "BC_API_IDLE_TIMEOUT", BC_INT, "30", "seconds before a connection that sends nothing is closed" },
    { "request-timeout", "BC_API_REQUEST_TIMEOUT", BC_INT, "30", "seconds a request has to arrive whole, headers and body, from its connection's opening or the previous answer on it; else the connection is closed, however it trickles (0: no deadline)" },
    { "pg-dsn", "BC_PG_DSN", BC_STR, "postgresql://batchcall@127.0.0.1:5432/batchcall", "PostgreSQL connection string" },
    BC_PUBLISHER_KEYS("1000"),
    { "topic-prefix", "BC_TOPIC_PREFIX", BC_STR, "batchcall", "prefix of every Kafka topic name" },
    { "regions", "BC_REGIONS", BC_STR, "us,eu,apac", "regions served (comma-separated)" },
    { "carrier-auth-token", "BC_CARRIER_AUTH_TOKEN", BC_STR, "sim-auth-token", "carrier auth token; checks X-Twilio-Signature" },
    { "public-url", "BC_PUBLIC_URL", BC_STR, "http://127.0.0.1:8080", "base URL the carrier uses to reach this API" },
    { "callback-url", "BC_CALLBACK_URL", BC_STR, "", "base URL the carrier's callbacks are sent to, the callback port's when it has one (empty: public-url); the same on the workers, which put it in every dial. A callback signed for public-url is still taken" },
    { "callback-port", "BC_API_CALLBACK_PORT", BC_INT, "0", "port of a listener of its own for the carrier's callbacks alone, with callback-threads threads (0: none; they are served on http-port)" },
    { "callback-threads", "BC_API_CALLBACK_THREADS", BC_INT, "1", "threads of the callback port's listener: each callback waits for Kafka without holding one, and one thread answers a burst in fewer wake-ups than several" },
    { "agent-token-secret", "BC_AGENT_TOKEN_SECRET", BC_STR, "local-agent-token-secret", "signs the per-call tokens an agent shows to fetch its call's context and report on it; the same on every worker and API of a deployment (set your own)" },
    { "webhook-allow-private", "BC_WEBHOOK_ALLOW_PRIVATE", BC_BOOL, "false", "accept webhook URLs whose host is a loopback, private or link-local address, or localhost (receivers on a local network, the tests)" },
    { "webhook-require-https", "BC_WEBHOOK_REQUIRE_HTTPS", BC_BOOL, "true", "refuse webhook URLs that are not https (turn off for receivers on a local network)" },
    { 0 },
};

/* A batch row as bc_batch_load reads it, beside c, its recipients' counts
 * (BATCH_GET's argument: SQL text naming c). */
#define BATCH_GET(counts) \
      "SELECT b.id, b.surface, b.name, b.agent_id, b.from_number_id, b.from_number," \
      "       b.region, b.state, b.timezone, rfc3339(b.scheduled_at) AS scheduled_at," \
      "       rfc3339(b.admitted_at) AS admitted_at, rfc3339(b.cancelled_at) AS cancelled_at," \
      "       rfc3339(b.created_at) AS created_at," \
      "       rfc3339(greatest(b.updated_at, c.last)) AS updated_at," \
      "       b.target_concurrency_limit, b.ringing_timeout_s, b.max_call_duration_min," \
      "       b.max_retries, b.total, b.retry_count, b.variables::text AS variables," \
      "       b.metadata::text AS metadata, b.external_id, b.post_call::text AS post_call," \
      "       b.calling_hours::text AS calling_hours," \
      "       b.retry_policy::text AS retry_policy, rfc3339(b.paused_at) AS paused_at," \
      "       rfc3339(tp.paused_at) AS tenant_paused_at, rfc3339(b.latest_at) AS latest_at," \
      /* Why it is not dialing (sql/0021): waiting for the tenant's slots \
       * or for a live worker in its region, also once admitted. */ \
      "       CASE WHEN b.state = 'pending' THEN b.wait_reason" \
      "            WHEN b.state = 'admitted' AND c.queued + c.live > 0" \
      "                 AND NOT region_has_workers(b.region) THEN 'region' END AS waiting_for," \
      "       CASE WHEN b.state = 'paused' THEN b.pause_reason END AS pause_reason, c.*" \
      "  FROM batches b JOIN tenants tp ON tp.id = b.tenant_id, LATERAL " counts \
      " WHERE b.id = $1 AND b.tenant_id = $2"

/* The batch core's statements (and those of common/ the API runs); each
 * module's own are in its .c, all joined in stmt_sets below. */
const bc_pg_stmt bc_api_stmts[] = {
    BC_PG_INCLUDE(bc_publisher_stmts),
    BC_PG_INCLUDE(bc_audit_stmts),
    BC_PG_INCLUDE(bc_dnc_stmts),
    /* A create's two tests of its tenant, inside its transaction and
     * before its COPY: can it pay one call of $2 minutes at most (ok), and
     * could its policy stop any number (gated, BC_SQL_POLICY_ANY). Without
     * a gate the policy statements below are not run at all: planned anew
     * for each batch (PostgreSQL keeps a custom plan for them), they cost
     * a 5,000-recipient create 0.4 ms to find nothing (bench/RESULTS.md,
     * twenty-sixth session). If a tenant's first number is listed while
     * its create runs, the claim's gate stops it, as one listed just after.
     * $1 tenant $2 minutes */
    { "create_tests",
      "SELECT " BC_SQL_CREDITS_BALANCE("t.id") " >= "
      BC_SQL_CREDITS_HOLD("t.price_per_min_cents", "$2::int") " AS ok, "
      BC_SQL_POLICY_ANY("t.id") " AS gated"
      "  FROM tenants t WHERE t.id = $1" },
    /* The tenant's policy over a batch's recipients when it is created
     * (bc_policy.h): the numbers it forbids (a surface that refuses the
     * batch names them), or those recipients ended at once, undialed, with
     * the rule as their end reason; counted by reason. One probe of dnc's
     * primary key per recipient, found by batch_id; none at all for a
     * tenant the gate cannot stop (BC_SQL_POLICY_ANY, checked once).
     * $1 batch id */
    { "policy_hits",
      "SELECT to_number, min(reason) AS reason FROM (SELECT r.to_number, r.seq, "
      BC_SQL_POLICY_BLOCK("r.tenant_id", "r.to_number") " AS reason"
      "   FROM recipients r WHERE r.batch_id = $1"
      "    AND " BC_SQL_POLICY_ANY("(SELECT tenant_id FROM batches WHERE id = $1)") ") x"
      " WHERE reason IS NOT NULL GROUP BY to_number ORDER BY min(seq)" },
    /* One table, no join: the rule is evaluated where each row is read
     * (again in SET for the rare row it stops). Written as a join of the
     * batch's rows to the recipients still queued, the statement was
     * quadratic whenever the statistics said few rows were queued (a table
     * analyzed when its work was done): a nested loop rescanned the
     * batch's 5,000 rows for every queued recipient of every batch, and
     * each 5,000-recipient create took a second more than the one before
     * (bench/RESULTS.md, tenth session). */
    { "policy_stop_batch",
      "WITH u AS (UPDATE recipients r SET status = 'failed',"
      "                  end_reason = " BC_SQL_POLICY_BLOCK("r.tenant_id", "r.to_number") ","
      "                  error_message = policy_message("
      BC_SQL_POLICY_BLOCK("r.tenant_id", "r.to_number") "),"
      "                  updated_at = now()"
      "            WHERE r.batch_id = $1 AND r.status = 'queued'"
      "              AND " BC_SQL_POLICY_ANY("(SELECT tenant_id FROM batches WHERE id = $1)")
      "              AND " BC_SQL_POLICY_BLOCK("r.tenant_id", "r.to_number") " IS NOT NULL"
      "           RETURNING r.end_reason AS reason)"
      " SELECT reason, count(*) AS n FROM u GROUP BY reason" },
    { "auth_key",
      "SELECT k.id, k.tenant_id, k.kind, k.hash, t.concurrency, t.default_region"
      "  FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
      " WHERE k.lookup = $1 AND k.revoked_at IS NULL" },
    { "agent_get",
      "SELECT id, region, endpoint FROM agents"
      " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL" },
    { "number_by_id",
      "SELECT id, number FROM phone_numbers WHERE id = $1 AND tenant_id = $2" },
    { "number_by_e164",
      "SELECT id, number FROM phone_numbers WHERE tenant_id = $1 AND number = $2" },
    { "number_default",
      "SELECT id, number FROM phone_numbers WHERE tenant_id = $1"
      " ORDER BY is_default DESC, created_at LIMIT 1" },
    { "time_check",
      "SELECT $1::timestamptz > now() AS future,"
      "       $1::timestamptz <= now() + interval '30 days' AS within,"
      "       rfc3339($1::timestamptz) AS norm" },
    /* NO KEY UPDATE, not UPDATE: a batch's insert holds KEY SHARE on its
     * tenant (the foreign key) until it commits, so two creates of one
     * tenant that each took FOR UPDATE after their insert deadlocked
     * (ten at once: several of them 500). NO KEY UPDATE still serialises
     * admissions and pauses, and waits for no insert. */
    { "tenant_lock", "SELECT concurrency FROM tenants WHERE id = $1 FOR NO KEY UPDATE" },
    BC_PG_INCLUDE(bc_credits_stmts),
    { "tenant_reserved", BC_SQL_TENANT_RESERVED },
    { "batch_insert",
      "INSERT INTO batches (id, tenant_id, surface, name, agent_id, from_number_id,"
      " from_number, region, target_concurrency_limit, ringing_timeout_s,"
      " max_call_duration_min, max_retries, scheduled_at, timezone, variables,"
      " metadata, state, total, external_id, post_call, calling_hours, admitted_at,"
      " retry_policy)"
      " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
      "         $15::jsonb, $16::jsonb, $17, $18, $19, $20::jsonb, $21::jsonb,"
      "         CASE WHEN $17 = 'admitted' THEN now() END, $22::jsonb)" },
    { "leases_insert", BC_SQL_LEASES_INSERT },
    /* Cancel: queued recipients, and those claimed but not being dialed
     * (a paced dial waiting to be sent again, a claim the gate stopped:
     * their claim gives its slot back), are cancelled. The batch row lock
     * waits for any claim or dial_start in flight; after it, none can
     * start. */
    /* Dials of the batch on their way to the carrier: a worker moved them
     * to 'dialing' (before a cancel committed, or it would have refused)
     * and holds their lease; they leave 'dialing' once the carrier
     * answered, refused or timed out. $1 batch id */
    { "batch_dials_in_flight",
      "SELECT EXISTS (SELECT 1 FROM calls c JOIN leases l ON l.batch_id = c.batch_id"
      "                AND l.slot = c.lease_slot AND l.token = c.lease_token"
      "                WHERE c.batch_id = $1 AND c.ended_at IS NULL AND c.status = 'dialing'"
      "                  AND l.holder IS NOT NULL AND l.expires_at > now()) AS busy" },
    { "batch_cancel",
      "WITH b AS (UPDATE batches SET state = 'cancelled', cancelled_at = now(),"
      "                  updated_at = now()"
      "            WHERE id = $1 AND tenant_id = $2 AND state <> 'cancelled' RETURNING id),"
      " c AS (UPDATE calls SET status = 'canceled', end_reason = 'api_cancelled',"
      "              ended_at = now()"
      "         FROM b WHERE calls.batch_id = b.id AND calls.status = 'claimed'"
      "        RETURNING calls.id, calls.recipient_id, calls.lease_slot, calls.lease_token),"
      " l AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL FROM c"
      "        WHERE leases.batch_id = $1 AND leases.slot = c.lease_slot"
      "          AND leases.token = c.lease_token RETURNING 1),"
      " d AS (UPDATE recipients SET status = 'cancelled', updated_at = now() FROM c"
      "        WHERE recipients.id = c.recipient_id AND recipients.status = 'dispatched'"
      "        RETURNING 1)"
      " UPDATE recipients SET status = 'cancelled', updated_at = now() FROM b"
      "  WHERE recipients.batch_id = b.id AND recipients.status = 'queued'" },
    { "batch_state", "SELECT state FROM batches WHERE id = $1 AND tenant_id = $2" },
    /* Held: paused itself or by its tenant; admission leaves it waiting. */
    { "batch_held",
      "SELECT b.paused_at IS NOT NULL OR t.paused_at IS NOT NULL AS held"
      "  FROM batches b JOIN tenants t ON t.id = b.tenant_id WHERE b.id = $1" },
    /* Pause: from its commit no claim of the batch is taken (claims take
     * only admitted batches, and pass the dial's gate in the same
     * statement) and no paced dial is sent again (dial_start sends only
     * those of admitted batches); the batch row lock waits for both in
     * flight. Claims it can see are undone now, any it cannot (one
     * that committed while it waited) by the scheduler's sweep or resume.
     * A batch not yet admitted keeps its state and waits. */
    { "batch_pause",
      "WITH b AS (UPDATE batches SET paused_at = coalesce(paused_at, now()), updated_at = now(),"
      /* The tenant's own pause: not one the scheduler resumes for credits. */
      "                  pause_reason = NULL,"
      "                  state = CASE WHEN state = 'admitted' THEN 'paused' ELSE state END"
      "            WHERE id = $1 AND tenant_id = $2 AND state <> 'cancelled' RETURNING id, state),"
      " pb AS (SELECT id FROM b WHERE state = 'paused'),"
      BC_SQL_UNCLAIM_CTES
      " SELECT (SELECT count(*) FROM b) AS n, (SELECT count(*) FROM uc) AS unclaimed" },
    /* Resume, under the tenant and batch locks: admitted again unless its
     * tenant is paused; what the pause left released or claimed goes back
     * to the backlog, so the window (released next, in order) starts where
     * the batch stopped. */
    { "batch_resume",
      "WITH o AS (SELECT state FROM batches WHERE id = $1 AND tenant_id = $2),"
      " b AS (UPDATE batches SET paused_at = NULL, updated_at = now(), pause_reason = NULL,"
      "              state = CASE WHEN state = 'paused' AND NOT EXISTS (SELECT 1 FROM tenants t"
      "                             WHERE t.id = $2 AND t.paused_at IS NOT NULL)"
      "                           THEN 'admitted' ELSE state END"
      "        WHERE id = $1 AND tenant_id = $2 AND state <> 'cancelled'"
      "        RETURNING id, state, region, (SELECT state FROM o) AS was),"
      " pb AS (SELECT id FROM b WHERE state = 'admitted' AND was = 'paused'),"
      BC_SQL_UNCLAIM_CTES ","
      " rr AS (UPDATE recipients SET released = false, updated_at = now() FROM pb"
      "         WHERE recipients.batch_id = pb.id AND recipients.status = 'queued'"
      "           AND recipients.released RETURNING 1)"
      " SELECT id, region, state = 'admitted' AND was = 'paused' AS resumed FROM b" },
    /* The tenant's pause, under its row lock (taken by a statement before,
     * so this one's snapshot sees every batch admitted until then). */
    { "tenant_pause",
      "WITH t AS (UPDATE tenants SET paused_at = coalesce(paused_at, now()) WHERE id = $1"
      "            RETURNING paused_at),"
      " b AS (UPDATE batches SET state = 'paused', updated_at = now()"
      "        WHERE tenant_id = $1 AND state = 'admitted' RETURNING id),"
      " pb AS (SELECT id FROM b),"
      BC_SQL_UNCLAIM_CTES
      " SELECT rfc3339((SELECT paused_at FROM t)) AS paused_at, (SELECT count(*) FROM b) AS n" },
    /* Its resume: the batches it held and that are not paused themselves. */
    { "tenant_resume",
      "WITH t AS (UPDATE tenants SET paused_at = NULL WHERE id = $1 RETURNING id),"
      " b AS (UPDATE batches SET state = 'admitted', updated_at = now()"
      "        WHERE tenant_id = $1 AND state = 'paused' AND paused_at IS NULL"
      "          AND EXISTS (SELECT 1 FROM t) RETURNING id, region),"
      " pb AS (SELECT id FROM b),"
      BC_SQL_UNCLAIM_CTES ","
      " rr AS (UPDATE recipients SET released = false, updated_at = now() FROM pb"
      "         WHERE recipients.batch_id = pb.id AND recipients.status = 'queued'"
      "           AND recipients.released RETURNING 1)"
      " SELECT id, region FROM b" },
    { "tenant_lock_paused",
      "SELECT rfc3339(paused_at) AS paused_at FROM tenants WHERE id = $1 FOR NO KEY UPDATE" },
    { "batch_lock",
      "SELECT state, target_concurrency_limit, region,"
      "       coalesce(scheduled_at > now(), false) AS ahead,"
      "       EXISTS (SELECT 1 FROM recipients r WHERE r.batch_id = b.id"
      "               AND r.status IN ('queued', 'dispatched', 'started')) AS active"
      "  FROM batches b WHERE id = $1 AND tenant_id = $2 FOR UPDATE" },
    { "batch_requeue",
      "WITH r AS (UPDATE recipients SET status = 'queued', released = false,"
      "                  next_attempt_at = NULL, end_reason = NULL, error_message = NULL,"
      "                  updated_at = now()"
      "            WHERE batch_id = $1 AND status = 'failed' RETURNING 1)"
      " UPDATE batches SET retry_count = retry_count + 1, updated_at = now(),"
      "        expiry_done = false"
      "  WHERE id = $1 AND tenant_id = $2" },
    /* $3: why a pending batch waits (sql/0021), else NULL. */
    { "batch_set_state",
      "UPDATE batches SET state = $2, wait_reason = $3, updated_at = now(),"
      "       admitted_at = CASE WHEN $2 = 'admitted' THEN now() ELSE admitted_at END"
      " WHERE id = $1" },
    { "batch_need", BC_SQL_BATCH_NEED },
    /* A batch waiting for its region's workers does not hold the tenant's
     * others back: they could not have its slots anyway. */
    { "older_pending",
      "SELECT EXISTS (SELECT 1 FROM batches o WHERE o.tenant_id = $1 AND o.state = 'pending'"
      "   AND o.wait_reason IS DISTINCT FROM 'region'"
      "   AND o.id <> $2 AND o.paused_at IS NULL AND (o.created_at, o.id) <"
      "       (SELECT created_at, id FROM batches WHERE id = $2)) AS waiting" },
    { "batch_page",
      "SELECT id, count(*) OVER () AS total FROM batches WHERE tenant_id = $1"
      "   AND ($2::text IS NULL OR surface = $2)"
      " ORDER BY created_at DESC, id DESC LIMIT $3::int OFFSET $4::int" },
    { "tz_check", "SELECT now() AT TIME ZONE $1 IS NOT NULL AS ok" },
    /* A caller-ID pool's numbers, each the tenant's by id or E.164, in the
     * order given; missing names the first that is not the tenant's. */
    { "pool_resolve",
      "SELECT array_agg(p.number ORDER BY x.ord) FILTER (WHERE p.number IS NOT NULL) AS numbers,"
      "       (array_agg(x.v ORDER BY x.ord) FILTER (WHERE p.number IS NULL))[1] AS missing"
      "  FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY AS x(v, ord)"
      "  LEFT JOIN phone_numbers p ON p.tenant_id = $1 AND (p.id = x.v OR p.number = x.v)" },
    /* A batch's latest_at: given (RFC 3339 or Unix ms), or ttl seconds
     * after its start; it must be ahead of both. $1 latest_at $2
     * scheduled_at $3 ttl $4 latest ms */
    { "latest_check",
      "SELECT rfc3339(l) AS norm, l > now() AND l > coalesce($2::timestamptz, now()) AS ok"
      "  FROM (SELECT coalesce($1::timestamptz, to_timestamp($4::float8 / 1000),"
      "                        coalesce($2::timestamptz, now())"
      "                        + make_interval(secs => $3::int)) AS l) x" },
    { "expiry_set", "UPDATE batches SET latest_at = $2::timestamptz WHERE id = $1" },
    { "pool_set",
      "UPDATE batches SET from_pool = $2::text[], pool_cps = $3::int WHERE id = $1" },
    /* Ending a batch's live calls at the carrier: every open call that was
     * sent is marked, once (a second request finds them marked), and those
     * the carrier has (a carrier sid) get a hang-up command on their
     * region's carrier events (the worker asks the carrier; the final
     * status callback frees the slot). The cancel before it waited for the
     * dials in flight, so a call without a sid here is one whose dialer
     * stalled: the scheduler's sweep sends its command once the reconciler
     * finds its sid, and sends any command again that did not end its call
     * (sql/0033). $1 batch $2 tenant $3 topic prefix
     * ("<prefix>.carrier-events.") */
    { "batch_hangup",
      "WITH c AS (UPDATE calls SET hangup_requested_at = now(),"
      "                  hangup_sent_at = CASE WHEN carrier_call_id IS NOT NULL THEN now() END"
      "            WHERE batch_id = $1 AND tenant_id = $2 AND hangup_requested_at IS NULL"
      "              AND ended_at IS NULL"
      "              AND status IN ('dialing', 'queued', 'ringing', 'in-progress')"
      "           RETURNING id, batch_id, tenant_id, carrier_call_id),"
      " h AS (SELECT c.*, b.region FROM c JOIN batches b ON b.id = c.batch_id"
      "        WHERE c.carrier_call_id IS NOT NULL)"
      " INSERT INTO outbox (topic, key, payload) "
      BC_SQL_HANGUP_ROWS("h", "$3 || h.region")
      " RETURNING id, topic, key, payload" },
    /* The agent leg's batch settings: voicemail policy, recording. */
    { "agent_leg_set",
      "UPDATE batches SET voicemail = $2::jsonb, record = $3::boolean WHERE id = $1" },
    /* The names of a JSON list that are not time zones PostgreSQL knows. */
    { "tz_unknown",
      "SELECT z FROM jsonb_array_elements_text($1::jsonb) AS z"
      " WHERE NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = z)" },
    { "batch_last_sent",
      "SELECT (extract(epoch FROM max(created_at)) * 1000)::bigint AS ms,"
      "       count(*) FILTER (WHERE answered_at IS NOT NULL) AS picked_up"
      "  FROM calls WHERE batch_id = $1" },
    { "batch_tasks",
      "SELECT r.id, r.to_number, r.status, r.variables::text AS variables,"
      "       coalesce(r.max_retries, b.max_retries) AS max_retries, r.attempts,"
      "       r.last_call_id, r.end_reason, r.error_message, count(*) OVER () AS total,"
      "       r.retry_policy::text AS retry_policy"
      "  FROM recipients r JOIN batches b ON b.id = r.batch_id"
      " WHERE r.batch_id = $1 AND b.tenant_id = $2"
      " ORDER BY r.seq LIMIT $3::int OFFSET $4::int" },
    { "batch_list",
      "SELECT id FROM batches WHERE tenant_id = $1"
      "   AND ($2::text IS NULL OR agent_id = $2)"
      "   AND ($3::text IS NULL OR (created_at, id) <"
      "        (SELECT created_at, id FROM batches WHERE id = $3 AND tenant_id = $1))"
      " ORDER BY created_at DESC, id DESC LIMIT $4::int" },
    { "release", BC_SQL_RELEASE },
    { "release_lock", BC_SQL_RELEASE_LOCK },
    { "batch_get", BATCH_GET(
      "(SELECT"
      "       count(*) FILTER (WHERE status NOT IN ('queued', 'cancelled', 'expired')) AS dispatched,"
      "       count(*) FILTER (WHERE status IN ('completed', 'failed', 'expired')) AS finished,"
      "       count(*) FILTER (WHERE status = 'expired') AS expired,"
      "       count(*) FILTER (WHERE status = 'completed') AS completed,"
      "       count(*) FILTER (WHERE status = 'failed') AS failed,"
      "       count(*) FILTER (WHERE status = 'failed' AND last_call_id IS NULL) AS failed_predial,"
      "       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,"
      "       count(*) FILTER (WHERE status IN ('dispatched', 'started')) AS live,"
      "       count(*) FILTER (WHERE status = 'queued') AS queued,"
      "       count(*) FILTER (WHERE status = 'queued' AND window_wait"
      "                          AND next_attempt_at > bc_now()) AS waiting_for_window,"
      "       max(updated_at) AS last,"
      "       jsonb_agg(end_reason) FILTER (WHERE status = 'failed'"
      "                                 AND policy_stop(end_reason))::text AS blocked_list"
      "       FROM recipients r WHERE r.batch_id = b.id) c") },
    /* The same for a batch its create just stored, none of whose recipients
     * its policy stopped: all are queued, so the counts need no scan of
     * its recipients (5,000 rows: ~5 ms of a create's answer, B1). Those
     * its first release deferred to their hours are counted through
     * recipients_window_wait (sql/0029), which holds only waiting rows.
     * The status is tested in FILTER, not WHERE: a status in WHERE lets
     * recipients_active serve the scan too, and for a batch the
     * statistics have not seen yet the planner took it, reading all
     * 5,000 rows (1.2 ms of every create, bench/RESULTS.md). */
    { "batch_get_new", BATCH_GET(
      "(SELECT 0::bigint AS dispatched, 0::bigint AS finished, 0::bigint AS expired,"
      "        0::bigint AS completed, 0::bigint AS failed, 0::bigint AS failed_predial,"
      "        0::bigint AS cancelled, 0::bigint AS live, b.total::bigint AS queued,"
      "        (SELECT count(*) FILTER (WHERE w.status = 'queued'"
      "                                   AND w.next_attempt_at > bc_now())"
      "           FROM recipients w WHERE w.batch_id = b.id AND w.window_wait)"
      "          AS waiting_for_window,"
      "        b.updated_at AS last, NULL::text AS blocked_list) c") },
    { "recipients_get",
      "SELECT id, to_number, from_number, status, last_call_id, end_reason, error_message,"
      "       metadata::text AS metadata, attempts, rfc3339(created_at) AS created_at,"
      "       max_retries, retry_policy::text AS retry_policy"
      "  FROM recipients WHERE batch_id = $1 ORDER BY seq" },
    { 0, 0 },
};

/* Every statement the API prepares on each connection, by module. */
static const bc_pg_stmt *const stmt_sets[] = {
    bc_api_stmts, bc_gate_stmts, bc_outcomes_stmts, bc_agent_routes_stmts,
    bc_progress_stmts, bc_retell_stmts, bc_rymi_sessions_stmts, bc_rymi_agents_stmts,
    bc_rymi_numbers_stmts, bc_rymi_dnc_stmts, bc_rymi_webhooks_stmts, bc_rymi_keys_stmts,
    bc_rymi_account_stmts, NULL,
};

/* One table of the statements of stmt_sets (ends with a zeroed entry);
 * caller frees. NULL when out of memory. An entry with no name and SQL is
 * an include (BC_PG_INCLUDE): copied as it is, bc_pg_connect follows it. */
static bc_pg_stmt *stmts_join(void)
{
    size_t n = 0, k = 0;
    bc_pg_stmt *all;

    for (int i = 0; stmt_sets[i]; i++)
        for (const bc_pg_stmt *st = stmt_sets[i]; st->name || st->sql; st++)
            n++;
    if (!(all = calloc(n + 1, sizeof *all)))
        return NULL;
    for (int i = 0; stmt_sets[i]; i++)
        for (const bc_pg_stmt *st = stmt_sets[i]; st->name || st->sql; st++)
            all[k++] = *st;
    return all;
}

/* Generated by CMake from api/openapi.json. */
extern const char bc_openapi_json[];

static void openapi(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    (void)ud;
    (void)req;
    resp->status = 200;
    resp->body = strdup(bc_openapi_json);
    resp->len = resp->body ? strlen(resp->body) : 0;
    resp->content_type = "application/json";
}

static const bc_http_route openapi_routes[] = {
    { "GET", "/openapi.json", openapi, NULL, 0, NULL },
    { "HEAD", "/openapi.json", openapi, NULL, 0, NULL },
    { 0 },
};

static int ready(void *ud)
{
    bc_api *api = ud;

    return api->ready;
}

/* Looks up the topics the API publishes to before it serves: otherwise the
 * first carrier callbacks after a start waited about 1 s for the lookup
 * (bench/RESULTS.md, fifteenth session). */
static void warm_topics(bc_api *api)
{
    char *regions = strdup(api->regions), *save = NULL, names[16][160];
    const char *topics[16];
    int n = 0;

    bc_kafka_topic(names[n++], sizeof names[0], api->topic_prefix, "call-results", NULL);
    for (char *r = regions ? strtok_r(regions, ",", &save) : NULL; r && n + 2 <= 16;
         r = strtok_r(NULL, ",", &save)) {
        bc_kafka_topic(names[n++], sizeof names[0], api->topic_prefix, "carrier-events", r);
        bc_kafka_topic(names[n++], sizeof names[0], api->topic_prefix, "jobs", r);
    }
    free(regions);
    for (int i = 0; i < n; i++)
        topics[i] = names[i];
    bc_publisher_warm(api->pub, topics, n, 2000);
}

/* The listeners' settings: the API port's threads, the callback port and
 * its threads (0 and 0 without one). -1 if one is out of range, logged. */
static int listen_config(bc_ctx *ctx, long *threads, long *cb_port, long *cb_threads)
{
    const char *bad = NULL;

    *threads = bc_config_int(ctx->cfg, "http-threads");
    *cb_port = bc_config_int(ctx->cfg, "callback-port");
    *cb_threads = bc_config_int(ctx->cfg, "callback-threads");
    if (*threads < 1 || *threads > 64)
        bad = "BC_API_THREADS must be between 1 and 64";
    else if (*cb_port < 0 || *cb_port > 65535 || *cb_threads < 1 || *cb_threads > 64)
        bad = "BC_API_CALLBACK_PORT must be between 0 and 65535,"
              " BC_API_CALLBACK_THREADS between 1 and 64";
    else if (bc_config_int(ctx->cfg, "request-timeout") < 0 ||
             bc_config_int(ctx->cfg, "max-connections-per-ip") < 0)
        bad = "BC_API_REQUEST_TIMEOUT and BC_API_MAX_CONNECTIONS_PER_IP must not be negative";
    if (bad) {
        bc_log(ctx->log, BC_ERROR, "config.invalid", "{s:s}", "error", bad);
        return -1;
    }
    if (*cb_port == 0)
        *cb_threads = 0;
    return 0;
}

/* The carrier's callbacks, three or more a call, on a listener of their
 * own, with the API port's settings but its port, threads and routes: one
 * thread answers a burst of them in fewer wake-ups than the API's several
 * (bench/RESULTS.md, twenty-fourth session), and a create's COPY on an API
 * thread never delays one. NULL if it could not start, logged. */
static bc_http *callback_listener(bc_ctx *ctx, const bc_http_opts *api_opts,
                                  const bc_http_surface *surfaces, long port, long threads)
{
    bc_http_opts o = *api_opts;
    bc_err err = { "" };
    bc_http *h;

    o.bind = bc_config_str(ctx->cfg, "http-bind");
    o.port = (int)port;
    o.threads = (unsigned)threads;
    o.metrics = ctx->metrics;
    o.surfaces = surfaces;
    if (!(h = bc_http_start(&o, &err))) {
        bc_log(ctx->log, BC_ERROR, "http.start_failed", "{s:s,s:s}", "listener", "callbacks",
               "error", err.msg);
        return NULL;
    }
    bc_log(ctx->log, BC_INFO, "http.listening", "{s:s,s:s,s:i}", "listener", "callbacks",
           "bind", o.bind, "port", bc_http_port(h));
    return h;
}

int main(int argc, char **argv)
{
    bc_ctx ctx;
    bc_api api = { .ctx = &ctx };
    bc_err err = { "" };
    bc_pg *pg = NULL;
    bc_http_opts o = { 0 };
    bc_http *cb_http = NULL;
    bc_pg_stmt *stmts = NULL;
    /* The route table, in the order routes are tried: the agent's routes
     * take a call's token, not a tenant key, under Rymi's /v1/. */
    bc_http_surface surfaces[] = {
        { NULL, openapi_routes, NULL, &api, NULL },
        bc_cartesia_surface(&api),
        bc_agent_routes_surface(&api),
        bc_rymi_surface(&api, bc_rymi_sessions_routes),
        bc_rymi_surface(&api, bc_rymi_agents_routes),
        bc_rymi_surface(&api, bc_rymi_numbers_routes),
        bc_rymi_surface(&api, bc_rymi_dnc_routes),
        bc_rymi_surface(&api, bc_rymi_webhooks_routes),
        bc_rymi_surface(&api, bc_rymi_keys_routes),
        bc_rymi_surface(&api, bc_rymi_account_routes),
        bc_batchcall_surface(&api),
        bc_retell_surface(&api),
        bc_callback_surface(&api),
        bc_progress_surface(&api),
        bc_dashboard_surface(&api),
        { 0 },
    };
    /* The callback port's: the carrier's routes alone. */
    bc_http_surface cb_surfaces[] = {
        bc_callback_surface(&api),
        { 0 },
    };
    int rc = bc_svc_init(&ctx, "api", "batchcall-api: the public HTTP API.", keys, argc, argv);
    long threads, cb_port, cb_threads;

    if (rc)
        return rc > 0 ? 0 : 2;
    rc = 1;
    api.topic_prefix = bc_config_str(ctx.cfg, "topic-prefix");
    api.regions = bc_config_str(ctx.cfg, "regions");
    api.carrier_token = bc_config_str(ctx.cfg, "carrier-auth-token");
    api.public_url = bc_config_str(ctx.cfg, "public-url");
    api.callback_url = bc_config_str_or(ctx.cfg, "callback-url", api.public_url);
    api.agent_secret = bc_config_str(ctx.cfg, "agent-token-secret");
    api.webhook_https_only = bc_config_bool(ctx.cfg, "webhook-require-https");
    api.webhook_allow_private = bc_config_bool(ctx.cfg, "webhook-allow-private");
    if (listen_config(&ctx, &threads, &cb_port, &cb_threads) < 0)
        goto out;
    /* One connection per request thread (the callback port's too: a
     * recording's callback writes), as many for the routes that may wait on
     * threads of their own, plus one for the main loop. */
    if (!(stmts = stmts_join())) {
        bc_log(ctx.log, BC_ERROR, "api.start_failed", "{s:s}", "error", "out of memory");
        goto out;
    }
    if (!(api.pool = bc_pgpool_new(bc_config_str(ctx.cfg, "pg-dsn"), stmts,
                                   (int)(threads + cb_threads), &err)) ||
        !(api.wait_pool = bc_pgpool_new(bc_config_str(ctx.cfg, "pg-dsn"), stmts,
                                        (int)threads, &err)) ||
        !(pg = bc_pg_connect(bc_config_str(ctx.cfg, "pg-dsn"), stmts, &err)) ||
        !(api.pub = bc_publisher_new(ctx.cfg, ctx.log, ctx.metrics, &err))) {
        bc_log(ctx.log, BC_ERROR, "api.start_failed", "{s:s}", "error", err.msg);
        goto out;
    }
    warm_topics(&api);
    o.threads = (unsigned)threads;
    o.max_body = (size_t)bc_config_int(ctx.cfg, "max-body-bytes");
    o.max_conns = (unsigned)bc_config_int(ctx.cfg, "max-connections");
    o.timeout_s = (unsigned)bc_config_int(ctx.cfg, "idle-timeout");
    o.request_timeout_s = (unsigned)bc_config_int(ctx.cfg, "request-timeout");
    o.max_conns_per_ip = (unsigned)bc_config_int(ctx.cfg, "max-connections-per-ip");
    o.surfaces = surfaces;
    o.ready = ready;
    o.ud = &api;
    if (bc_svc_serve(&ctx, (int)bc_config_int(ctx.cfg, "http-port"), &o) < 0)
        goto out;
    if (cb_port > 0 && !(cb_http = callback_listener(&ctx, &o, cb_surfaces, cb_port, cb_threads)))
        goto out;
    api.ready = 1;
    while (bc_svc_running()) {
        /* Forget acknowledged outbox rows; the relay handles the rest. */
        if (bc_publisher_tick(api.pub, pg, &err) < 0)
            bc_log(ctx.log, BC_WARN, "outbox.delete_failed", "{s:s}", "error", err.msg);
        bc_http_tick(ctx.http);
        bc_http_tick(cb_http);
        usleep(20000);
    }
    bc_log(ctx.log, BC_INFO, "api.draining", NULL);
    api.ready = 0;
    rc = 0;
out:
    /* Stop taking requests and finish those in flight before the producer
     * goes: a handler may be waiting on a delivery report. */
    bc_http_stop(ctx.http);
    ctx.http = NULL;
    bc_http_stop(cb_http);
    if (api.pub) {
        bc_publisher_free(api.pub, 5000);
        api.pub = NULL;
    }
    bc_pgpool_free(api.pool);
    bc_pgpool_free(api.wait_pool);
    bc_pg_free(pg);
    free(stmts);
    bc_log(ctx.log, BC_INFO, "api.stopped", NULL);
    bc_svc_free(&ctx);
    return rc;
}
