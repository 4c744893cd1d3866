#include "bc_claim.h"

#include <stdio.h>
#include <string.h>

#include "bc_agent_leg.h"
#include "bc_credits.h"
#include "bc_crypto.h"
#include "bc_dialing.h"
#include "bc_ends.h"
#include "bc_policy.h"
#include "bc_sql_worker.h"

/* At most this many jobs are claimed in one statement. */
#define MAX_CLAIM 256

const bc_pg_stmt bc_claim_stmts[] = {
    { "claim_many", BC_SQL_CLAIM(BC_SQL_POLICY_BLOCK("r.tenant_id", "r.to_number"),
                                 BC_SQL_CREDITS_HOLD("cu.price", "bb.max_call_duration_min"),
                                 "'" BC_CREDITS_SHORT "'") },
    { 0, 0 },
};

/* One of the API's carrier callback URLs (status, amd, recording). */
static void callback_url(bc_worker *w, const char *kind, const char *tenant, const char *batch,
                         const char *call, char *out, size_t cap)
{
    /* The API rebuilds exactly this string to check the signature. */
    snprintf(out, cap, "%s/carrier/twilio/%s?region=%s&tenant_id=%s&batch_id=%s&call_id=%s",
             w->callback_url, kind, w->region, tenant, batch, call);
}

/* Fills d's agent leg from claim row k (bc_agent_leg). 0 or -1. */
static int agent_leg(bc_worker *w, bc_dial *d, const PGresult *res, int k, const bc_job *j)
{
    json_t *vars = json_loads(bc_pg_val(res, k, "vars") ? bc_pg_val(res, k, "vars") : "{}", 0,
                              NULL);
    json_t *meta = json_loads(bc_pg_val(res, k, "meta") ? bc_pg_val(res, k, "meta") : "{}", 0,
                              NULL);
    bc_agent_call c = { .call_id = d->call_id, .batch_id = j->batch,
                        .tenant_id = bc_pg_val(res, k, "tenant_id"),
                        .agent_id = bc_pg_val(res, k, "agent_id"), .recipient_id = j->recipient,
                        .to = d->to, .from = d->from, .attempt = j->attempt,
                        .variables = vars, .metadata = meta };
    bc_err err = { "" };
    int by_route = 0, rc;

    rc = bc_agent_leg(d, bc_pg_val(res, k, "endpoint"), &c, w->public_url, w->agent_secret,
                      &by_route, &err);
    if (rc < 0)
        bc_log(w->ctx->log, BC_WARN, "dial.no_agent_leg", "{s:s,s:s}", "call_id", d->call_id,
               "error", err.msg[0] ? err.msg : "token");
    else if (by_route)
        bc_metric_add(w->m_ctx_fetch, 1);
    json_decref(vars);
    json_decref(meta);
    return rc;
}

/* The dial of the call claimed in row k for job j (call id call). 0, or
 * -1 if it cannot be dialed: it ends now, undialed, with the reason. */
static int dial_of(bc_worker *w, bc_dial *d, const PGresult *res, int k, const bc_job *j,
                   const char *call)
{
    const char *tenant = bc_pg_val(res, k, "tenant_id");
    const char *record = bc_pg_val(res, k, "record");

    memset(d, 0, sizeof *d);
    snprintf(d->call_id, sizeof d->call_id, "%s", call);
    snprintf(d->to, sizeof d->to, "%s", bc_pg_val(res, k, "to_number"));
    snprintf(d->from, sizeof d->from, "%s", bc_pg_val(res, k, "from_number"));
    d->timeout_s = (int)bc_pg_int(res, k, "ring", 60);
    d->time_limit_s = (int)bc_pg_int(res, k, "max_min", 480) * 60;
    callback_url(w, "status", tenant, j->batch, call, d->callback_url, sizeof d->callback_url);
    callback_url(w, "amd", tenant, j->batch, call, d->amd_url, sizeof d->amd_url);
    d->record = !strcmp(record ? record : "", "t");
    if (d->record)
        callback_url(w, "recording", tenant, j->batch, call, d->recording_url,
                     sizeof d->recording_url);
    snprintf(d->batch_id, sizeof d->batch_id, "%s", j->batch);
    d->lease_token = bc_pg_int(res, k, "lease_token", 0);
    if (agent_leg(w, d, res, k, j) < 0) {
        bc_ends_failed(w, d->call_id, "error", "the agent has no endpoint the call can reach");
        bc_dial_clear(d);
        return -1;
    }
    return 0;
}

/* Every slot of b is taken: wait for ends, probing now and then, less
 * often while none comes free (at most 5 x the base). */
static void no_slot(bc_worker *w, bc_wbatch *b, long long now)
{
    bc_metric_add(w->m_noslot, 1);
    if (b->free_hint != 0) {
        b->free_hint = 0;
        b->misses++;
    }
    b->retry_at = now + BC_NO_SLOT_RETRY_MS * (b->misses < 5 ? b->misses : 5);
}

/* The statement's parameter for the jobs js[0..n) in *doc (a new string,
 * caller frees; NULL out of memory), with a new call id for each in calls.
 * 0, or -1 if no call id could be made: nothing is to be tried. */
static int claim_doc(bc_job **js, int n, char calls[][48], char **doc)
{
    json_t *arr = json_array();

    for (int i = 0; i < n; i++) {
        if (bc_id_new(calls[i], sizeof calls[i], "ac") < 0) {
            json_decref(arr);
            return -1;
        }
        json_array_append_new(arr, json_pack("{s:i,s:s,s:s,s:i,s:s}", "n", i, "r",
                                             js[i]->recipient, "b", js[i]->batch, "a",
                                             js[i]->attempt, "c", calls[i]));
    }
    *doc = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return 0;
}

/* Claims the jobs js[0..n) (bs[i] is js[i]'s batch) in one statement,
 * which also passes each claim through the dial's gate, and dials those
 * it let through. Returns how many were dialed. */
static int claim_many(bc_worker *w, bc_job **js, bc_wbatch **bs, int n, long long now)
{
    char calls[MAX_CLAIM][48], ttl[16];
    bc_dial ds[MAX_CLAIM];
    bc_job *gone[MAX_CLAIM];
    int nd = 0, ngone = 0;
    bc_err err = { "" };
    PGresult *res;
    char *doc = NULL;
    json_t *short_of;

    if (claim_doc(js, n, calls, &doc) < 0)
        return 0;
    snprintf(ttl, sizeof ttl, "%ld", w->lease_ttl_s);
    const char *p[] = { doc, w->holder, ttl };
    if (!doc || !(res = bc_pg_exec(w->pg, "claim_many", 3, p, &err))) {
        /* Database trouble: keep the jobs, try again shortly. */
        bc_log(w->ctx->log, BC_WARN, "claim.failed", "{s:i,s:s}", "jobs", n, "error",
               doc ? err.msg : "out of memory");
        free(doc);
        for (int i = 0; i < n; i++)
            bs[i]->retry_at = now + BC_NO_SLOT_RETRY_MS;
        return 0;
    }
    free(doc);
    /* Before the results: a job done below may be freed. */
    for (int i = 0; i < n; i++)
        bc_intake_tried(w->intake, js[i]);
    short_of = json_array();
    for (int k = 0; k < PQntuples(res); k++) {
        int i = (int)bc_pg_int(res, k, "n", -1);
        const char *outcome = bc_pg_val(res, k, "outcome");

        if (i < 0 || i >= n)
            continue;
        if (!strcmp(outcome, "noslot")) {
            no_slot(w, bs[i], now);
            continue;
        }
        if (!strcmp(outcome, "claimed")) {
            const char *blocked = bc_pg_val(res, k, "blocked");

            bc_metric_add(w->m_claimed, 1);
            if (blocked)
                bc_dialing_refused(w, calls[i], js[i]->batch, blocked, short_of);
            else if (dial_of(w, &ds[nd], res, k, js[i], calls[i]) == 0)
                nd++;
        } else if (!strcmp(outcome, "stale")) {
            bc_metric_add(w->m_stale, 1);
        }
        /* Claimed (durable now), stale, or back in the backlog until its
         * calling hours: the job's offset may be committed. */
        js[i]->gone = 1;
        gone[ngone++] = js[i];
    }
    PQclear(res);
    for (int i = 0; i < n; i++)
        if (i == 0 || bs[i] != bs[i - 1])
            bc_intake_unlink_gone(bs[i]);
    for (int i = 0; i < ngone; i++)
        bc_intake_done(w->intake, gone[i]);
    bc_dialing_send(w, ds, nd);
    for (int i = 0; i < nd; i++)
        bc_dial_clear(&ds[i]);
    bc_dialing_short(w, short_of);
    json_decref(short_of);
    return nd;
}

void bc_claim_turn(bc_worker *w, long long now)
{
    bc_job *js[MAX_CLAIM];
    bc_wbatch *bs[MAX_CLAIM];
    int n = 0, eligible = 0, share;
    long room = w->max_dials - bc_carrier_inflight(w->carrier);

    for (bc_wbatch *b = bc_intake_batches(w->intake); b; b = b->next)
        eligible += b->head && b->retry_at <= now;
    /* Every eligible batch gets its share of one statement (at least one
     * job); with more batches than that, the rest go first next turn. */
    share = eligible ? MAX_CLAIM / eligible : 0;
    if (share < 1)
        share = 1;
    for (bc_wbatch *b = bc_intake_batches(w->intake); b && n < MAX_CLAIM && n < room;
         b = b->next) {
        int taken = 0, want = share;

        if (b->retry_at > now || !b->head)
            continue;
        if (b->free_hint >= 0 && b->free_hint + 1 < want)
            want = b->free_hint + 1;
        b->free_hint = -1;    /* the claim's outcome sets it again */
        for (bc_job *j = b->head; j && taken < want && n < MAX_CLAIM && n < room;
             j = j->next_wait) {
            if (!bc_pace_take(&w->pace, now))
                goto full;
            js[n] = j;
            bs[n++] = b;
            taken++;
        }
    }
full:
    if (n > 0)
        bc_pace_give(&w->pace, n - claim_many(w, js, bs, n, now));
    /* The batches served this turn go last next turn. */
    bc_intake_rotate(w->intake, n > 0 ? bs[n - 1] : NULL);
}
