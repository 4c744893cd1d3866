#include "bc_dialing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_credits.h"
#include "bc_ends.h"
#include "bc_json.h"
#include "bc_policy.h"
#include "bc_sql.h"

#define PACED_RETRY_MS 250

/* A dial the carrier asked us to pace: the lease is kept, the call retried. */
struct bc_redial {
    bc_redial *next;
    long long at;
    bc_dial d;
};

const bc_pg_stmt bc_dialing_stmts[] = {
    /* The last step before the carrier is asked, for the claims of one
     * turn: only while the batch is still admitted (a cancel waits for this
     * row lock, and a claim it beat is never dialed) and only with the
     * current lease token (a holder whose lease was taken over is fenced
     * off). The tenant's policy is applied here, at the last moment
     * (bc_policy.h): a number listed after its batch was accepted is not
     * dialed; its call stays claimed and comes back with the rule in
     * "blocked", for the worker to end it with that reason. The call's
     * credit hold is taken here too (bc_credits.h), so a hold and a dial
     * never diverge: a call the balance cannot cover stays claimed and
     * comes back blocked "insufficient_credits", for the worker to pause
     * its batch (its recipient stays queued). Returns the calls that may
     * be dialed (blocked NULL) and those the policy or credits stopped.
     * $1 [{"c" call,"b" batch,"t" token}] */
    { "dial_start_many",
      "WITH d AS (SELECT d.* FROM list_rows($1::jsonb) x,"
      "             jsonb_to_record(x) AS d(c text, b text, t bigint)),"
      " b AS (SELECT id FROM batches WHERE id IN (SELECT b FROM d) AND state = 'admitted' FOR SHARE),"
      " g AS MATERIALIZED (SELECT d.c, d.t, d.b, calls.tenant_id, calls.hold_cents, "
      BC_SQL_POLICY_BLOCK("calls.tenant_id", "calls.to_number") " AS blocked"
      "         FROM d JOIN calls ON calls.id = d.c"
      "        WHERE calls.status = 'claimed' AND calls.lease_token = d.t"
      "          AND d.b IN (SELECT id FROM b)"
      "          AND EXISTS (SELECT 1 FROM leases l WHERE l.batch_id = d.b"
      "                      AND l.slot = calls.lease_slot AND l.token = d.t)),"
      /* The holds (bc_credits.h), over g: each tenant's usage row is
       * locked (in id order: two workers never wait on each other in a
       * circle) and its calls are held in call id order while the balance
       * covers them. ch (c, tenant_id, b, price, mins, hold, after). Only
       * calls with a hold (after >= 0) or one already move to 'dialing'. */
      " cu AS MATERIALIZED (SELECT u.tenant_id, t.credits_cents - u.used_cents AS balance,"
      "                            t.price_per_min_cents AS price"
      "          FROM credit_usage u JOIN tenants t ON t.id = u.tenant_id"
      "         WHERE u.tenant_id IN (SELECT tenant_id FROM g"
      "                               WHERE blocked IS NULL AND hold_cents IS NULL)"
      "         ORDER BY u.tenant_id FOR UPDATE OF u),"
      " ch AS MATERIALIZED (SELECT g.c, g.tenant_id, g.b, cu.price, bm.max_call_duration_min AS mins,"
      "          " BC_SQL_CREDITS_HOLD("cu.price", "bm.max_call_duration_min") " AS hold,"
      "          cu.balance - sum(" BC_SQL_CREDITS_HOLD("cu.price", "bm.max_call_duration_min") ")"
      "            OVER (PARTITION BY g.tenant_id ORDER BY g.c) AS after"
      "          FROM g JOIN cu ON cu.tenant_id = g.tenant_id JOIN batches bm ON bm.id = g.b"
      "         WHERE g.blocked IS NULL AND g.hold_cents IS NULL),"
      " u AS (UPDATE calls SET status = 'dialing',"
      "        hold_cents = coalesce(calls.hold_cents, ch.hold),"
      "        price_per_min_cents = coalesce(ch.price, calls.price_per_min_cents),"
      "        history = history || jsonb_build_object('status', 'dialing', 'at', rfc3339_ms(now()))"
      "   FROM g LEFT JOIN ch ON ch.c = g.c WHERE calls.id = g.c AND g.blocked IS NULL"
      "    AND (g.hold_cents IS NOT NULL OR ch.after >= 0)"
      "    AND calls.status = 'claimed' AND calls.lease_token = g.t"
      " RETURNING calls.id, ch.c, ch.tenant_id, ch.b, ch.price, ch.mins, ch.hold, ch.after),"
      " hw AS (SELECT * FROM u WHERE c IS NOT NULL),"
      /* The holds of the calls moved to 'dialing', and their ledger rows. */
      " chu AS (UPDATE credit_usage SET used_cents = used_cents + s.total"
      "          FROM (SELECT tenant_id, sum(hold) AS total FROM hw"
      "                 GROUP BY tenant_id) s"
      "         WHERE credit_usage.tenant_id = s.tenant_id RETURNING 1),"
      " chl AS (INSERT INTO credit_ledger (tenant_id, kind, call_id, batch_id, cents,"
      "                                   balance_after, minutes, price_per_min_cents)"
      "         SELECT tenant_id, 'hold', c, b, -hold, after, mins, price FROM hw"
      "          ORDER BY tenant_id, c RETURNING 1)"
      " SELECT id, NULL AS blocked FROM u"
      " UNION ALL SELECT c, blocked FROM g WHERE blocked IS NOT NULL"
      " UNION ALL SELECT c, '" BC_CREDITS_SHORT "' FROM ch WHERE after < 0" },
    /* A batch that could not pay its next call pauses itself, as a pause
     * by its tenant would (its claims undone, the refused one too, its
     * slots kept), with the reason, and tells the tenant's webhooks
     * (batch.paused). If holds came back meanwhile the scheduler's
     * credits_resume admits it again on its next tick. $1 batch ids (a
     * JSON array). Returns the batches it paused: id, tenant_id. */
    { "credits_pause",
      "WITH b AS (UPDATE batches SET state = 'paused', paused_at = coalesce(paused_at, now()),"
      "                  pause_reason = '" BC_CREDITS_SHORT "', updated_at = now()"
      "            WHERE id IN (SELECT x #>> '{}' FROM list_rows($1::jsonb) x) AND state = 'admitted'"
      "           RETURNING id, tenant_id, paused_at),"
      " pb AS (SELECT id FROM b),"
      BC_SQL_UNCLAIM_CTES ","
      " wh AS (INSERT INTO webhook_deliveries (webhook_id, tenant_id, event_id, event_type, payload)"
      "        SELECT w.id, w.tenant_id, 'evt_' || b.id || '_paused_'"
      "                 || (extract(epoch FROM b.paused_at) * 1000)::bigint, 'batch.paused',"
      "               jsonb_build_object('id', 'evt_' || b.id || '_paused_'"
      "                 || (extract(epoch FROM b.paused_at) * 1000)::bigint,"
      "                 'type', 'batch.paused', 'created_at', rfc3339(b.paused_at),"
      "                 'data', jsonb_build_object('batch_id', b.id,"
      "                   'reason', '" BC_CREDITS_SHORT "',"
      "                   'paused_at', rfc3339(b.paused_at),"
      "                   'balance_cents', " BC_SQL_CREDITS_BALANCE("b.tenant_id") "))::text"
      "          FROM b JOIN webhooks w ON w.tenant_id = b.tenant_id AND w.enabled"
      "           AND 'batch.paused' = ANY (w.events)"
      "        ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING 1)"
      " SELECT id, tenant_id FROM b" },
    /* A dial the carrier paced (429) goes back to 'claimed' before it is
     * sent again, so it passes dial_start's gate once more: a batch
     * cancelled or paused meanwhile is not dialed (before this, a paced
     * dial went out after the cancel had returned). Only while our lease
     * token is current and the carrier has no call for it. Its credit hold
     * is released with it (a claimed call holds nothing): dial_start takes
     * one again, or pauses the batch if the balance no longer covers it.
     * $1 [{"c" call,"t" token}] */
    { "redial_back",
      "WITH d AS (SELECT d.* FROM list_rows($1::jsonb) x,"
      "             jsonb_to_record(x) AS d(c text, t bigint)),"
      " r AS (UPDATE calls SET status = 'claimed', hold_cents = NULL FROM d, calls o"
      "        WHERE calls.id = d.c AND o.id = d.c AND calls.status = 'dialing'"
      "          AND calls.lease_token = d.t AND calls.carrier_call_id IS NULL"
      "       RETURNING calls.id, calls.tenant_id, calls.batch_id, o.hold_cents,"
      "                 o.price_per_min_cents, NULL::bigint AS cost_cents,"
      "                 NULL::int AS billed_min),"
      BC_SQL_CREDITS_SETTLE_CTES("r")
      " SELECT id FROM r" },
    /* A claim dial_start refused while its token is still current: the
     * batch was cancelled after the claim and the cancel's statement could
     * not see it (it read before the claim committed). Settle it here.
     * $1 call $2 token */
    { "claim_cancel",
      "WITH c AS (UPDATE calls SET status = 'canceled', end_reason = 'api_cancelled',"
      "                 ended_at = now()"
      "            WHERE id = $1 AND status = 'claimed' AND lease_token = $2::bigint"
      "              AND EXISTS (SELECT 1 FROM batches b WHERE b.id = calls.batch_id"
      "                          AND b.state = 'cancelled')"
      "           RETURNING recipient_id, batch_id, lease_slot, lease_token),"
      " l AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL FROM c"
      "        WHERE leases.batch_id = c.batch_id AND leases.slot = c.lease_slot"
      "          AND leases.token = c.lease_token RETURNING 1)"
      " UPDATE recipients SET status = 'cancelled', updated_at = now() FROM c"
      "  WHERE recipients.id = c.recipient_id AND recipients.status = 'dispatched'" },
    /* Fenced like dial_start: a late answer of a dial whose lease was taken
     * over records nothing; the reconciler owns that call now. The accepted
     * dials of one turn in one statement. $1 [{"c" call,"sid","t" token}]
     *
     * But a call can end before the carrier's answer to its create is
     * read: the carrier sends the first callbacks as it places the call,
     * and a busy line ends it within milliseconds. Its end, which carries
     * the same sid, frees the slot and another claim takes it. The answer
     * then has nothing to add, and is no late write: it is counted as
     * recorded, not refused. In the soak each batch's one busy number
     * raised lease.late_write_refused, a warning with nothing behind it
     * (bench/RESULTS.md, thirtieth session). Such a row is written as it
     * was (the CASEs keep status and history, coalesce the sid).
     *
     * The lease is a left join in a subquery, not an EXISTS beside that
     * OR: with the OR, the generic plan made on a new database hashed
     * every call (the EXISTS could not become a semi-join), 84-136 us an
     * attempt in B2 against about 30 (bench/RESULTS.md, thirty-first
     * session; tests/integration/test_plans.py). The row's own conditions
     * are asked again of calls, so a row changed since the statement's
     * snapshot is judged as it is now. */
    { "dial_accepted_many",
      "WITH d AS (SELECT d.* FROM list_rows($1::jsonb) x,"
      "             jsonb_to_record(x) AS d(c text, sid text, t bigint)),"
      " ok AS (SELECT c.id, d.sid, d.t, l.token IS NOT NULL AS leased"
      "          FROM d JOIN calls c ON c.id = d.c AND c.lease_token = d.t"
      "          LEFT JOIN leases l ON l.batch_id = c.batch_id AND l.slot = c.lease_slot"
      "                            AND l.token = d.t)"
      " UPDATE calls SET carrier_call_id = coalesce(calls.carrier_call_id, ok.sid),"
      "        status = CASE WHEN calls.status = 'dialing' THEN 'queued' ELSE calls.status END,"
      "        history = CASE WHEN calls.status = 'dialing' THEN calls.history"
      "                       || jsonb_build_object('status', 'queued', 'at', rfc3339_ms(now()))"
      "                       ELSE calls.history END"
      "   FROM ok WHERE calls.id = ok.id AND calls.lease_token = ok.t"
      "    AND (ok.leased OR (calls.ended_at IS NOT NULL AND calls.carrier_call_id = ok.sid))"
      " RETURNING calls.id" },
    /* The carrier may or may not have the call (5xx, timeout, no answer):
     * stop renewing and let the lease lapse shortly, so the reconciler asks
     * the carrier before anyone dials this attempt again. The grace lets a
     * create still in flight at the carrier land first. */
    { "dial_unknown",
      "UPDATE leases SET holder = NULL, expires_at = now() + interval '2 seconds'"
      " WHERE call_id = $1 AND token = $2::bigint RETURNING slot" },
    { 0, 0 },
};

/* The row of a statement's result that names call id in its first
 * column, or -1. */
static int row_of(const PGresult *res, const char *id)
{
    for (int k = 0; k < PQntuples(res); k++)
        if (!strcmp(PQgetvalue(res, k, 0), id))
            return k;
    return -1;
}

/* Keeps a dial the carrier paced, to send again PACED_RETRY_MS after now
 * (bc_dialing_resend). Out of memory, it is not kept, as before. */
static void pace_again(bc_worker *w, const bc_dial *d, long long now)
{
    bc_redial *rd = calloc(1, sizeof *rd);

    if (!rd)
        return;
    if (bc_dial_copy(&rd->d, d) < 0) {
        free(rd);
        return;
    }
    rd->at = now + PACED_RETRY_MS;
    rd->next = w->redials;
    w->redials = rd;
}

/* The carrier may or may not have placed the call: never "failed" and
 * never redialed here. Its lease lapses shortly (dial_unknown), and the
 * reconciler looks the call up and adopts or requeues it. */
static void dial_unknown(bc_worker *w, const bc_dial *d, const char *why)
{
    bc_err err = { "" };
    PGresult *res;
    char tok[24];

    snprintf(tok, sizeof tok, "%lld", d->lease_token);
    const char *p[] = { d->call_id, tok };
    bc_metric_add(w->m_dial_unknown, 1);
    bc_log(w->ctx->log, BC_WARN, "dial.outcome_unknown", "{s:s,s:s}", "call_id", d->call_id,
           "reason", why ? why : "");
    if (!(res = bc_pg_exec(w->pg, "dial_unknown", 2, p, &err)))
        bc_log(w->ctx->log, BC_WARN, "dial.record_failed", "{s:s,s:s}", "call_id", d->call_id,
               "error", err.msg);
    PQclear(res);
}

void bc_dialing_done(void *ud, const bc_dial *d, bc_dial_result r, const char *sid,
                     const char *why)
{
    bc_worker *w = ud;

    switch (r) {
    case BC_DIAL_ACCEPTED:
        bc_metric_add(w->m_dialed, 1);
        /* Written with the turn's other accepted dials (flush_accepted). */
        json_array_append_new(w->accepted, json_pack("{s:s,s:s?,s:I}", "c", d->call_id,
                                                     "sid", sid, "t",
                                                     (json_int_t)d->lease_token));
        break;
    case BC_DIAL_PACED:
        /* Over the carrier's pace: wait and place it again; costs no retry. */
        bc_metric_add(w->m_paced, 1);
        pace_again(w, d, bc_now_ms());
        break;
    case BC_DIAL_REJECTED:
        bc_metric_add(w->m_dial_failed, 1);
        bc_log(w->ctx->log, BC_WARN, "dial.failed", "{s:s,s:s}", "call_id", d->call_id,
               "reason", why ? why : "");
        bc_ends_failed(w, d->call_id, "dial_failed", why);
        break;
    case BC_DIAL_UNKNOWN:
        dial_unknown(w, d, why);
        break;
    }
}

/* Pauses the batches (a JSON array of ids) whose next call their tenant
 * could not pay; the pause undoes the refused claims, so their recipients
 * stay queued. If this fails the claims stay claimed and undialed, and the
 * reaper settles them as any other. */
static void credits_pause(bc_worker *w, json_t *batches)
{
    bc_err err = { "" };
    PGresult *res;
    char *ids = json_dumps(batches, JSON_COMPACT);
    const char *p[] = { ids };

    if (!ids || !(res = bc_pg_exec(w->pg, "credits_pause", 1, p, &err))) {
        bc_log(w->ctx->log, BC_WARN, "credits.pause_failed", "{s:s,s:s}", "batches",
               ids ? ids : "", "error", ids ? err.msg : "out of memory");
        free(ids);
        return;
    }
    for (int k = 0; k < PQntuples(res); k++)
        bc_log(w->ctx->log, BC_INFO, "batch.paused", "{s:s,s:s,s:s}", "batch_id",
               bc_pg_val(res, k, "id"), "tenant_id", bc_pg_val(res, k, "tenant_id"), "reason",
               BC_CREDITS_SHORT);
    bc_metrics_inc(w->ctx->metrics, "worker_batches_paused_for_credits_total",
                   "Batches that paused themselves because their tenant could not pay a call",
                   NULL, PQntuples(res));
    PQclear(res);
    free(ids);
}

/* A claim dial_start refused: cancelled since the claim, or our lease was
 * taken over. Never dialed; a cancel that raced the claim leaves it to us. */
static void claim_cancel(bc_worker *w, const bc_dial *d)
{
    bc_err err = { "" };
    char tok[24];

    snprintf(tok, sizeof tok, "%lld", d->lease_token);
    const char *c[] = { d->call_id, tok };
    /* If this fails the claim stays 'claimed' and undialed: its lease
     * expires and the reaper settles it. */
    if (bc_pg_run(w->pg, "claim_cancel", 2, c, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "claim.cancel_failed", "{s:s,s:s}", "call_id", d->call_id,
               "error", err.msg);
    bc_metric_add(w->m_not_dialed, 1);
}

/* Notes batch in short_of (a JSON array of ids, each once in a row). */
static void short_of_credits(json_t *short_of, const char *batch)
{
    size_t n = json_array_size(short_of);

    if (!n || strcmp(json_string_value(json_array_get(short_of, n - 1)), batch))
        json_array_append_new(short_of, json_string(batch));
}

/* dial_start_many for ds[0..n): its rows, or NULL (logged). */
static PGresult *dial_start_many(bc_worker *w, const bc_dial *ds, int n)
{
    json_t *arr = json_array();
    bc_err err = { "" };
    PGresult *res = NULL;
    char *doc;

    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:I}", "c", ds[i].call_id, "b",
                                             ds[i].batch_id, "t",
                                             (json_int_t)ds[i].lease_token));
    doc = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "dial_start_many", 1, p, &err)))
        /* Not known to be dialable: the reconciler settles the claims. */
        bc_log(w->ctx->log, BC_WARN, "dial.start_failed", "{s:i,s:s}", "calls", n, "error",
               doc ? err.msg : "out of memory");
    free(doc);
    return res;
}

void bc_dialing_refused(bc_worker *w, const char *call, const char *batch, const char *why,
                        json_t *short_of)
{
    if (!strcmp(why, BC_CREDITS_SHORT)) {
        short_of_credits(short_of, batch);
        bc_metric_add(w->m_not_dialed, 1);
    } else {
        bc_ends_blocked(w, call, batch, why);
    }
}

void bc_dialing_send(bc_worker *w, const bc_dial *ds, int n)
{
    bc_err err = { "" };

    for (int i = 0; i < n; i++)
        if (bc_carrier_dial(w->carrier, &ds[i], &err) < 0)
            bc_ends_failed(w, ds[i].call_id, "error", err.msg);
}

void bc_dialing_short(bc_worker *w, json_t *short_of)
{
    if (json_array_size(short_of))
        credits_pause(w, short_of);
}

void bc_dialing_start(bc_worker *w, bc_dial *ds, int n)
{
    json_t *short_of;
    PGresult *res = dial_start_many(w, ds, n);

    if (!res)
        return;
    short_of = json_array();
    for (int i = 0; i < n; i++) {
        int k = row_of(res, ds[i].call_id);
        const char *blocked = k >= 0 ? bc_pg_val(res, k, "blocked") : NULL;

        if (k < 0)
            claim_cancel(w, &ds[i]);
        else if (blocked)
            bc_dialing_refused(w, ds[i].call_id, ds[i].batch_id, blocked, short_of);
        else
            bc_dialing_send(w, &ds[i], 1);
    }
    PQclear(res);
    bc_dialing_short(w, short_of);
    json_decref(short_of);
}

/* Takes the paced dials due at now off the list into ds (at most cap).
 * Returns how many. */
static int due(bc_worker *w, long long now, bc_dial *ds, int cap)
{
    int n = 0;

    for (bc_redial **pr = &w->redials; *pr && n < cap;) {
        bc_redial *rd = *pr;

        if (rd->at > now) {
            pr = &rd->next;
            continue;
        }
        *pr = rd->next;
        ds[n++] = rd->d;
        free(rd);
    }
    return n;
}

void bc_dialing_resend(bc_worker *w, long long now)
{
    bc_dial ds[64];
    int n = due(w, now, ds, (int)(sizeof ds / sizeof *ds)), m = 0;
    json_t *arr;
    bc_err err = { "" };
    PGresult *res;
    char *doc;

    if (!n)
        return;
    arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:I}", "c", ds[i].call_id, "t",
                                             (json_int_t)ds[i].lease_token));
    doc = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "redial_back", 1, p, &err))) {
        /* Tried again later, as if paced once more. */
        bc_log(w->ctx->log, BC_WARN, "dial.redial_failed", "{s:i,s:s}", "calls", n, "error",
               doc ? err.msg : "out of memory");
        free(doc);
        for (int i = 0; i < n; i++) {
            pace_again(w, &ds[i], now);
            bc_dial_clear(&ds[i]);
        }
        return;
    }
    free(doc);
    for (int i = 0; i < n; i++) {
        if (row_of(res, ds[i].call_id) >= 0) {
            ds[m++] = ds[i];
        } else {
            bc_metric_add(w->m_not_dialed, 1);
            bc_dial_clear(&ds[i]);
        }
    }
    PQclear(res);
    if (m)
        bc_dialing_start(w, ds, m);
    for (int i = 0; i < m; i++)
        bc_dial_clear(&ds[i]);
}

/* Counts and logs the accepted dials of the turn that dial_accepted_many
 * did not record (res): their lease was taken over meanwhile. */
static void refused_late(bc_worker *w, const PGresult *res)
{
    size_t i;
    json_t *e;

    json_array_foreach(w->accepted, i, e) {
        const char *c = json_string_value(json_object_get(e, "c"));

        if (row_of(res, c) < 0) {
            bc_metric_add(w->m_fenced, 1);
            bc_log(w->ctx->log, BC_WARN, "lease.late_write_refused", "{s:s,s:I}", "call_id", c,
                   "token", json_integer_value(json_object_get(e, "t")));
        }
    }
}

int bc_dialing_waiting(const bc_worker *w)
{
    int n = 0;

    for (const bc_redial *r = w->redials; r; r = r->next)
        n++;
    return n;
}

void bc_dialing_flush_accepted(bc_worker *w)
{
    bc_err err = { "" };
    PGresult *res;
    size_t n = json_array_size(w->accepted);
    char *doc;

    if (n == 0)
        return;
    /* In call id order (bc_json_sort_by): a call's carrier events may be
     * another worker's, whose statements lock the same calls in that order. */
    bc_json_sort_by(w->accepted, "c");
    doc = json_dumps(w->accepted, JSON_COMPACT);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "dial_accepted_many", 1, p, &err))) {
        bc_log(w->ctx->log, BC_WARN, "dial.record_failed", "{s:I,s:s}", "calls", (json_int_t)n,
               "error", doc ? err.msg : "out of memory");
    } else {
        if ((size_t)PQntuples(res) < n)
            refused_late(w, res);
        PQclear(res);
    }
    free(doc);
    json_array_clear(w->accepted);
}

void bc_dialing_free(bc_worker *w)
{
    for (bc_redial *r = w->redials, *n; r; r = n) {
        n = r->next;
        bc_dial_clear(&r->d);
        free(r);
    }
    w->redials = NULL;
}
