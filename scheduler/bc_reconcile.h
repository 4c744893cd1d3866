/* bc_reconcile: settles calls whose lease expired because their holder
 * stopped renewing (a worker died or stalled). The lease is taken over with
 * a new fencing token first, so the old holder's late writes are refused;
 * then the carrier is asked what became of the call:
 *   - never claimed by the carrier (still 'claimed', or 'dialing' with no
 *     call of that number at the carrier since the claim): the attempt is
 *     abandoned and the recipient queued again for the same attempt;
 *   - known to the carrier and ended: its final status is published as a
 *     carrier event, which a worker applies like any callback;
 *   - known and still live: the lease stays held (by us) until the carrier's
 *     final callback frees it. Never a blind redial. */
#ifndef BC_RECONCILE_H
#define BC_RECONCILE_H

#include "bc_credits.h"
#include "bc_err.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_svc.h"

typedef struct bc_reconcile bc_reconcile;

bc_reconcile *bc_reconcile_new(bc_ctx *ctx, bc_pg *pg, bc_publisher *pub, bc_err *err);
void bc_reconcile_free(bc_reconcile *r);
/* One pass over expired leases of the region. Returns calls settled. */
int bc_reconcile_run(bc_reconcile *r);
/* One pass over calls not ended that have heard nothing for quiet_s seconds
 * (a lost callback, an event not applied): asks the carrier and publishes
 * the final status of those that ended. Returns calls asked about. */
int bc_reconcile_quiet(bc_reconcile *r, long quiet_s);

#define BC_RECONCILE_STMTS                                                          \
    { "rc_expired",                                                                 \
      "SELECT c.id, c.batch_id, c.tenant_id, c.status, c.to_number, c.carrier_call_id," \
      "       extract(epoch FROM c.created_at)::bigint AS created_s, l.slot, l.token"   \
      "  FROM leases l JOIN calls c ON c.id = l.call_id JOIN batches b ON b.id = l.batch_id" \
      " WHERE b.region = $1 AND l.call_id IS NOT NULL AND l.expires_at < now()"     \
      "   AND call_status_rank(c.status) < 9"                                       \
      " ORDER BY l.expires_at LIMIT 50" },                                          \
    { "rc_take",                                                                    \
      "WITH l AS (UPDATE leases SET token = nextval('lease_token_seq'), holder = $4," \
      "                  expires_at = now() + make_interval(secs => $5::int)"        \
      "            WHERE batch_id = $1 AND slot = $2::int AND token = $3::bigint"   \
      "           RETURNING token, call_id)"                                        \
      " UPDATE calls SET lease_token = l.token FROM l WHERE calls.id = l.call_id"   \
      " RETURNING calls.lease_token" },                                             \
    { "rc_abandon",                                                                 \
      "WITH c AS (DELETE FROM calls WHERE id = $1 AND carrier_call_id IS NULL"      \
      "             AND status IN ('claimed', 'dialing')"                           \
      "           RETURNING id, tenant_id, recipient_id, batch_id, lease_slot,"     \
      "                     lease_token, hold_cents, price_per_min_cents,"          \
      "                     NULL::bigint AS cost_cents, NULL::int AS billed_min),"  \
      /* An abandoned dial gives its credit hold back (bc_credits.h). */        \
      BC_SQL_CREDITS_SETTLE_CTES("c") ","                                         \
      " l AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL FROM c" \
      "        WHERE leases.batch_id = c.batch_id AND leases.slot = c.lease_slot"   \
      "          AND leases.token = c.lease_token RETURNING 1),"                    \
      " r AS (UPDATE recipients SET attempts = attempts - 1,"                       \
      "              status = CASE WHEN (SELECT state FROM batches b"               \
      "                                   WHERE b.id = c.batch_id) = 'cancelled'"   \
      "                            THEN 'cancelled' ELSE 'queued' END,"             \
      "              released = false, last_call_id = NULL, updated_at = now()"     \
      "         FROM c WHERE recipients.id = c.recipient_id"                        \
      "          AND recipients.last_call_id = $1 RETURNING 1)"                     \
      " SELECT (SELECT count(*) FROM c) AS n" },                                    \
    { "rc_quiet",                                                                   \
      "SELECT c.id, c.batch_id, c.tenant_id, c.status, c.to_number, c.carrier_call_id," \
      "       extract(epoch FROM c.created_at)::bigint AS created_s"                   \
      "  FROM calls c JOIN batches b ON b.id = c.batch_id"                            \
      " WHERE c.ended_at IS NULL AND b.region = $1 AND c.status <> 'claimed'"         \
      "   AND call_status_rank(c.status) < 9"                                         \
      "   AND greatest(c.created_at, c.checked_at)"                                   \
      "       < now() - make_interval(secs => $2::int)"                               \
      " ORDER BY c.created_at LIMIT 20" },                                           \
    { "rc_checked",                                                                 \
      "UPDATE calls SET checked_at = now() WHERE id = $1" },                        \
    { "rc_sid_known",                                                               \
      "SELECT 1 FROM calls WHERE carrier_call_id = $1 LIMIT 1" },                   \
    { "rc_adopt",                                                                   \
      "UPDATE calls SET carrier_call_id = $2,"                                      \
      "       status = CASE WHEN status IN ('claimed', 'dialing') THEN 'queued' ELSE status END" \
      " WHERE id = $1 AND carrier_call_id IS NULL" }

#endif
