#include "bc_batches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_audit.h"
#include "bc_batch_admit.h"
#include "bc_json.h"
#include "bc_kafka.h"
#include "bc_policy.h"
#include "bc_sql.h"

void bc_batch_retry_fields(json_t *out, json_t *from, int batch)
{
    json_t *p = json_object_get(from, "retry_policy"), *mr = json_object_get(from, "max_retries");
    const char *k;
    json_t *v;

    if (mr)
        json_object_set(out, "max_retries", mr);
    if (batch && !json_object_get(p, "retry_on"))
        json_object_set_new(out, "retry_on", json_pack("[s,s,s]", "busy", "no_answer", "failed"));
    json_object_foreach(p, k, v)
        json_object_set(out, k, v);
}

/* The audit row of a write by who, in the write's transaction. Takes
 * ownership of detail. */
int bc_batch_audit(bc_pg *pg, const bc_principal *who, const char *action, const char *id,
                 json_t *detail, bc_err *err)
{
    bc_audit_actor a = { who->tenant_id, who->key_id, NULL, who->ip };

    return bc_audit_write(pg, &a, action, id, detail, err);
}

static json_t *json_col(const PGresult *res, int row, const char *col)
{
    const char *v = bc_pg_val(res, row, col);
    json_t *j = v ? json_loads(v, 0, NULL) : NULL;

    return j ? j : json_null();
}

static json_t *load(bc_pg *pg, const char *tenant_id, const char *batch_id, int flags,
                    bc_err *err);

/* With its recipients, the batch's counters and its list are read in one
 * snapshot: read apart, a call ending between the two reads showed every
 * recipient ended beside a count of one still live. */
json_t *bc_batch_load(bc_pg *pg, const char *tenant_id, const char *batch_id, int flags,
                      bc_err *err)
{
    json_t *b;

    if (!(flags & BC_LOAD_RECIPIENTS) || bc_pg_in_txn(pg))
        return load(pg, tenant_id, batch_id, flags, err);
    if (bc_pg_begin_snapshot(pg, err) < 0)
        return NULL;
    if (!(b = load(pg, tenant_id, batch_id, flags, err))) {
        bc_pg_rollback(pg);   /* err says why, or is "" for no such batch */
        return NULL;
    }
    if (bc_pg_commit(pg, err) < 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

static json_t *load(bc_pg *pg, const char *tenant_id, const char *batch_id, int flags,
                    bc_err *err)
{
    const char *p[] = { batch_id, tenant_id };
    PGresult *res = bc_pg_exec(pg, flags & BC_LOAD_AS_CREATED ? "batch_get_new" : "batch_get", 2,
                               p, err);
    json_t *b = NULL, *arr;
    static const char *strs[] = { "id", "surface", "name", "agent_id", "from_number_id",
                                  "external_id",
                                  "from_number", "region", "state", "timezone",
                                  "scheduled_at", "admitted_at", "cancelled_at",
                                  "created_at", "updated_at", "paused_at", "tenant_paused_at", "latest_at",
                                  "waiting_for", "pause_reason", NULL };
    static const char *ints[] = { "target_concurrency_limit", "ringing_timeout_s",
                                  "max_call_duration_min", "max_retries", "total",
                                  "retry_count", "dispatched", "finished", "completed",
                                  "failed", "failed_predial", "cancelled", "live",
                                  "queued", "waiting_for_window", "expired", NULL };

    if (!res)
        return NULL;
    if (PQntuples(res) != 1) {
        bc_err_set(err, "%s", "");
        PQclear(res);
        return NULL;
    }
    b = json_object();
    for (int i = 0; strs[i]; i++)
        json_object_set_new(b, strs[i], bc_json_pg_str(res, 0, strs[i]));
    for (int i = 0; ints[i]; i++)
        json_object_set_new(b, ints[i], json_integer(bc_pg_int(res, 0, ints[i], 0)));
    json_object_set_new(b, "variables", json_col(res, 0, "variables"));
    json_object_set_new(b, "metadata", json_col(res, 0, "metadata"));
    json_object_set_new(b, "post_call", json_col(res, 0, "post_call"));
    json_object_set_new(b, "calling_hours", json_col(res, 0, "calling_hours"));
    json_object_set_new(b, "retry_policy", json_col(res, 0, "retry_policy"));
    {
        /* The policy stops, by reason: a list of end reasons, counted here. */
        json_t *list = json_col(res, 0, "blocked_list"), *by = json_object(), *x;
        size_t i;

        json_array_foreach(list, i, x) {
            const char *k = json_string_value(x);
            if (k)
                json_object_set_new(by, k, json_integer(
                    json_integer_value(json_object_get(by, k)) + 1));
        }
        json_object_set_new(b, "blocked", json_integer((json_int_t)json_array_size(list)));
        json_object_set_new(b, "blocked_reasons", by);
        json_decref(list);
    }
    json_object_set_new(b, "held", json_boolean(strcmp(bc_pg_val(res, 0, "state"), "cancelled") &&
                                                (bc_pg_val(res, 0, "paused_at") ||
                                                 bc_pg_val(res, 0, "tenant_paused_at"))));
    PQclear(res);
    if (!(flags & BC_LOAD_RECIPIENTS))
        return b;
    const char *q[] = { batch_id };
    if (!(res = bc_pg_exec(pg, "recipients_get", 1, q, err))) {
        json_decref(b);
        return NULL;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *r = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:o}",
                              "id", bc_json_pg_str(res, i, "id"),
                              "to_number", bc_json_pg_str(res, i, "to_number"),
                              "status", bc_json_pg_str(res, i, "status"),
                              "call_id", bc_json_pg_str(res, i, "last_call_id"),
                              "end_reason", bc_json_pg_str(res, i, "end_reason"),
                              "error_message", bc_json_pg_str(res, i, "error_message"),
                              "metadata", json_col(res, i, "metadata"),
                              "attempts", (json_int_t)bc_pg_int(res, i, "attempts", 0),
                              "created_at", bc_json_pg_str(res, i, "created_at"),
                              "from_number", bc_json_pg_str(res, i, "from_number"));
        /* Only the overrides this recipient has. */
        if (bc_pg_val(res, i, "max_retries"))
            json_object_set_new(r, "max_retries",
                                json_integer(bc_pg_int(res, i, "max_retries", 0)));
        if (bc_pg_val(res, i, "retry_policy"))
            json_object_set_new(r, "retry_policy", json_col(res, i, "retry_policy"));
        json_array_append_new(arr, r);
    }
    PQclear(res);
    json_object_set_new(b, "recipients", arr);
    return b;
}

/* Cancels, recorded in the audit log as action (batch.cancel, batch.end). */
/* Guarantee 5: after a cancel returns, no new call of the batch is placed.
 * A dial a worker began before the cancel committed may still be on its
 * way to the carrier, so the cancel returns once none is (each ends within
 * the worker's carrier timeout, 10 s by default), or after this long. */
#define CANCEL_DIALS_WAIT_MS 15000

static void wait_dials_in_flight(bc_pg *pg, const char *id)
{
    const char *p[] = { id };

    for (int waited = 0; waited < CANCEL_DIALS_WAIT_MS; waited += 20) {
        PGresult *res = bc_pg_exec(pg, "batch_dials_in_flight", 1, p, NULL);
        int busy = res && PQntuples(res) == 1 && !strcmp(bc_pg_val(res, 0, "busy"), "t");

        PQclear(res);
        if (!busy)
            return;
        nanosleep(&(struct timespec){ 0, 20 * 1000000L }, NULL);
    }
}

static bc_batch_rc cancel(bc_pg *pg, const bc_principal *who, const char *id,
                          const char *action, bc_err *err)
{
    const char *p[] = { id, who->tenant_id };
    PGresult *res;
    long long n;

    if (bc_pg_begin(pg, err) < 0)
        return BC_BATCH_ERROR;
    /* One statement: the batch row lock makes claims in flight finish
     * first, and every claim after it sees 'cancelled' and takes nothing. */
    if (!(res = bc_pg_exec(pg, "batch_cancel", 2, p, err)))
        goto fail;
    n = atoll(PQcmdTuples(res));
    PQclear(res);
    if (!(res = bc_pg_exec(pg, "batch_state", 2, p, err)))
        goto fail;
    if (PQntuples(res) != 1) {
        PQclear(res);
        bc_pg_rollback(pg);
        return BC_BATCH_NOT_FOUND;
    }
    PQclear(res);
    if (bc_batch_audit(pg, who, action, id, json_pack("{s:I}", "queued_cancelled", (json_int_t)n),
              err) < 0 ||
        bc_pg_commit(pg, err) < 0)
        goto fail;
    wait_dials_in_flight(pg, id);
    return BC_BATCH_OK;
fail:
    bc_pg_rollback(pg);
    return BC_BATCH_ERROR;
}

bc_batch_rc bc_batch_cancel(bc_pg *pg, const bc_principal *who, const char *id,
                            bc_err *err)
{
    return cancel(pg, who, id, "batch.cancel", err);
}

bc_batch_rc bc_batch_end(bc_api *api, bc_pg *pg, const bc_principal *who, const char *id,
                         bc_err *err)
{
    char prefix[160];
    bc_batch_rc rc = cancel(pg, who, id, "batch.end", err);
    PGresult *res;

    if (rc != BC_BATCH_OK)
        return rc;
    bc_kafka_topic(prefix, sizeof prefix, api->topic_prefix, "carrier-events", "");
    strncat(prefix, ".", sizeof prefix - strlen(prefix) - 1);
    const char *p[] = { id, who->tenant_id, prefix };
    if (!(res = bc_pg_exec(pg, "batch_hangup", 3, p, err)))
        return BC_BATCH_ERROR;
    /* Durable in the outbox already: a publish that fails is relayed. */
    if (bc_publisher_outbox_rows(api->pub, res, err) < 0)
        bc_log(api->ctx->log, BC_WARN, "publish.deferred", "{s:s}", "error", err->msg);
    PQclear(res);
    return BC_BATCH_OK;
}

json_t *bc_batch_blocked(json_t *b, const char *surface)
{
    json_t *out = json_object(), *v;
    const char *k;

    json_object_foreach(json_object_get(b, "blocked_reasons"), k, v)
        json_object_set(out, bc_policy_word(surface, k), v);
    return out;
}

int bc_batch_paused(json_t *b)
{
    return json_is_true(json_object_get(b, "held")) &&
           json_integer_value(json_object_get(b, "queued")) > 0;
}

bc_batch_rc bc_batch_pause(bc_pg *pg, const bc_principal *who, const char *id, bc_err *err)
{
    const char *p[] = { id, who->tenant_id };
    PGresult *res;
    long long n;

    if (bc_pg_begin(pg, err) < 0)
        return BC_BATCH_ERROR;
    /* One statement: the batch row lock waits for claims and dial starts in
     * flight; every one after it sees the batch held. */
    if (!(res = bc_pg_exec(pg, "batch_pause", 2, p, err))) {
        bc_pg_rollback(pg);
        return BC_BATCH_ERROR;
    }
    n = bc_pg_int(res, 0, "n", 0);
    PQclear(res);
    if (n == 1) {
        if (bc_batch_audit(pg, who, "batch.pause", id, NULL, err) < 0 || bc_pg_commit(pg, err) < 0) {
            bc_pg_rollback(pg);
            return BC_BATCH_ERROR;
        }
        return BC_BATCH_OK;
    }
    bc_pg_rollback(pg);
    if (!(res = bc_pg_exec(pg, "batch_state", 2, p, err)))
        return BC_BATCH_ERROR;
    n = PQntuples(res);
    PQclear(res);
    if (!n)
        return BC_BATCH_NOT_FOUND;
    bc_err_set(err, "a cancelled batch cannot be paused");
    return BC_BATCH_CONFLICT;
}

/* Begins the transaction of an action on a batch and locks its tenant, then
 * it: the lock order of creation and admission. The batch must be in state
 * only, if that is not NULL, else in any but cancelled; done names the
 * action in the conflict's words ("resumed"). BC_BATCH_OK with *row the
 * batch_lock row (the caller clears it) and, if concurrency is not NULL,
 * the tenant's; otherwise rolled back, with err set but for NOT_FOUND. */
static bc_batch_rc lock_batch(bc_pg *pg, const bc_principal *who, const char *id,
                              const char *only, const char *done, PGresult **row,
                              long *concurrency, bc_err *err)
{
    const char *p[] = { id, who->tenant_id }, *t[] = { who->tenant_id }, *state;
    PGresult *res;
    bc_batch_rc rc = BC_BATCH_ERROR;

    if (bc_pg_begin(pg, err) < 0)
        return BC_BATCH_ERROR;
    if (!(res = bc_pg_exec(pg, "tenant_lock", 1, t, err)))
        goto fail;
    if (concurrency)
        *concurrency = bc_pg_int(res, 0, "concurrency", 1);
    PQclear(res);
    if (!(res = bc_pg_exec(pg, "batch_lock", 2, p, err)))
        goto fail;
    if (PQntuples(res) != 1) {
        rc = BC_BATCH_NOT_FOUND;
        goto fail;
    }
    state = bc_pg_val(res, 0, "state");
    if (only ? strcmp(state, only) != 0 : !strcmp(state, "cancelled")) {
        if (only)
            bc_err_set(err, "only a %s can be %s; this batch is %s", only, done, state);
        else
            bc_err_set(err, "a cancelled batch cannot be %s", done);
        rc = BC_BATCH_CONFLICT;
        goto fail;
    }
    *row = res;
    return BC_BATCH_OK;
fail:
    bc_pg_rollback(pg);
    PQclear(res);
    return rc;
}

/* Ends the transaction of an action on a batch: commits, if commit, then
 * publishes the jobs of rel; rolls back if not or if the commit failed.
 * Clears res and rel. */
static bc_batch_rc end_action(bc_api *api, bc_pg *pg, int commit, PGresult *res,
                              PGresult *rel, bc_err *err)
{
    bc_batch_rc rc = BC_BATCH_ERROR;

    if (commit && bc_pg_commit(pg, err) == 0) {
        if (rel)
            bc_publisher_outbox_rows(api->pub, rel, NULL);
        rc = BC_BATCH_OK;
    } else {
        bc_pg_rollback(pg);
    }
    PQclear(res);
    PQclear(rel);
    return rc;
}

bc_batch_rc bc_batch_resume(bc_api *api, bc_pg *pg, const bc_principal *who, const char *id,
                            bc_err *err)
{
    const char *p[] = { id, who->tenant_id };
    PGresult *res = NULL, *rel = NULL;
    bc_batch_rc rc;
    int nrel = 0;

    if ((rc = lock_batch(pg, who, id, NULL, "resumed", &res, NULL, err)) != BC_BATCH_OK)
        return rc;
    PQclear(res);
    if (!(res = bc_pg_exec(pg, "batch_resume", 2, p, err)))
        goto out;
    /* Admitted again: its window opens where it stopped. */
    if (PQntuples(res) == 1 && !strcmp(bc_pg_val(res, 0, "resumed"), "t") &&
        bc_batch_admit_release(api, pg, res, &rel, 1, &nrel, err) < 0)
        goto out;
    if (bc_batch_audit(pg, who, "batch.resume", id, NULL, err) < 0)
        goto out;
    return end_action(api, pg, 1, res, rel, err);
out:
    return end_action(api, pg, 0, res, rel, err);
}

int bc_batch_action(bc_api *api, bc_pg *pg, const bc_principal *who, const char *id,
                    const char *verb, const bc_batch_errors *e, bc_http_resp *resp)
{
    static const char *const done[][2] = {
        { "cancel", "batch.cancelled" }, { "end", "batch.ended" }, { "pause", "batch.paused" },
        { "resume", "batch.resumed" },   { "retry", "batch.retried" },
        { "send", "batch.sent" },
    };
    bc_err err = { "" };
    bc_batch_rc rc = !strcmp(verb, "cancel") ? bc_batch_cancel(pg, who, id, &err)
                   : !strcmp(verb, "end")    ? bc_batch_end(api, pg, who, id, &err)
                   : !strcmp(verb, "pause")  ? bc_batch_pause(pg, who, id, &err)
                   : !strcmp(verb, "resume") ? bc_batch_resume(api, pg, who, id, &err)
                   : !strcmp(verb, "retry")  ? bc_batch_retry(api, pg, who, id, &err)
                   : !strcmp(verb, "send")   ? bc_batch_send(api, pg, who, id, &err)
                                             : BC_BATCH_ERROR;

    switch (rc) {
    case BC_BATCH_OK:
        for (size_t i = 0; i < sizeof done / sizeof done[0]; i++)
            if (!strcmp(done[i][0], verb))
                bc_log(api->ctx->log, BC_INFO, done[i][1], "{s:s,s:s}", "tenant_id",
                       who->tenant_id, "batch_id", id);
        return 1;
    case BC_BATCH_NOT_FOUND:
        e->error(resp, 404, "not_found", e->not_found);
        return 0;
    case BC_BATCH_CONFLICT:
        e->error(resp, 409, "conflict", err.msg);
        return 0;
    default:
        if (!err.msg[0])
            bc_err_set(&err, "no such action");
        bc_log(api->ctx->log, BC_ERROR, "batch.action_failed", "{s:s,s:s,s:s,s:s}", "action",
               verb, "tenant_id", who->tenant_id, "batch_id", id, "error", err.msg);
        e->error(resp, 500, "internal_error", e->failed);
        return 0;
    }
}

#define MAX_RESUMED 1000   /* batches whose first window a tenant resume publishes itself */

json_t *bc_tenant_pause(bc_api *api, bc_pg *pg, const bc_principal *who, int pause,
                        bc_err *err)
{
    const char *t[] = { who->tenant_id };
    PGresult *res = NULL, **rels = NULL;
    json_t *out = NULL;
    int nrel = 0;

    if (bc_pg_begin(pg, err) < 0)
        return NULL;
    /* The tenant's row lock first: a batch being admitted in a transaction
     * holding it commits before the next statement's snapshot, which then
     * sees it; one admitted after waits for this, then sees the pause. */
    if (!(res = bc_pg_exec(pg, "tenant_lock_paused", 1, t, err)))
        goto out;
    PQclear(res);
    if (!(res = bc_pg_exec(pg, pause ? "tenant_pause" : "tenant_resume", 1, t, err)))
        goto out;
    if (pause) {
        out = json_pack("{s:b,s:s,s:I}", "paused", 1, "paused_at", bc_pg_val(res, 0, "paused_at"),
                        "batches", (json_int_t)bc_pg_int(res, 0, "n", 0));
    } else {
        if (!(rels = calloc(MAX_RESUMED, sizeof *rels)) ||
            bc_batch_admit_release(api, pg, res, rels, MAX_RESUMED, &nrel, err) < 0)
            goto out;
        out = json_pack("{s:b,s:n,s:I}", "paused", 0, "paused_at", "batches",
                        (json_int_t)PQntuples(res));
    }
    if (bc_batch_audit(pg, who, pause ? "tenant.pause" : "tenant.resume", who->tenant_id,
              json_pack("{s:O}", "batches", json_object_get(out, "batches")), err) < 0 ||
        bc_pg_commit(pg, err) < 0) {
        json_decref(out);
        out = NULL;
        goto out;
    }
    for (int i = 0; i < nrel; i++)
        bc_publisher_outbox_rows(api->pub, rels[i], NULL);
out:
    if (!out)
        bc_pg_rollback(pg);
    for (int i = 0; i < nrel; i++)
        PQclear(rels[i]);
    free(rels);
    PQclear(res);
    if (out)
        bc_log(api->ctx->log, BC_INFO, pause ? "tenant.paused" : "tenant.resumed", "{s:s,s:O}",
               "tenant_id", who->tenant_id, "batches", json_object_get(out, "batches"));
    else
        bc_log(api->ctx->log, BC_ERROR, "tenant.pause_failed", "{s:s,s:s}", "tenant_id",
               who->tenant_id, "error", bc_err_msg(err));
    return out;
}
bc_batch_rc bc_batch_send(bc_api *api, bc_pg *pg, const bc_principal *who,
                          const char *id, bc_err *err)
{
    PGresult *res, *rel = NULL;
    bc_batch_rc rc;
    char limit[16], region[16];
    long concurrency;
    int ahead, ok;

    if ((rc = lock_batch(pg, who, id, "draft", "sent", &res, &concurrency, err)) != BC_BATCH_OK)
        return rc;
    snprintf(limit, sizeof limit, "%s", bc_pg_val(res, 0, "target_concurrency_limit"));
    snprintf(region, sizeof region, "%s", bc_pg_val(res, 0, "region"));
    ahead = !strcmp(bc_pg_val(res, 0, "ahead"), "t");
    PQclear(res);
    ok = bc_batch_admit(api, pg, who->tenant_id, concurrency, id, limit, region, ahead, &rel,
                       err) == 0 &&
         bc_batch_audit(pg, who, "batch.send", id, NULL, err) == 0;
    return end_action(api, pg, ok, NULL, rel, err);
}

bc_batch_rc bc_batch_retry(bc_api *api, bc_pg *pg, const bc_principal *who,
                           const char *id, bc_err *err)
{
    const char *p[] = { id, who->tenant_id };
    PGresult *res = NULL, *rel = NULL;
    bc_batch_rc rc;
    char limit[16], region[16];
    long concurrency;
    int was_admitted, paused;

    if ((rc = lock_batch(pg, who, id, NULL, "retried", &res, &concurrency, err)) != BC_BATCH_OK)
        return rc;
    /* An admitted (or paused) batch with work left still holds its
     * reservation; one whose recipients all ended gave it back and must be
     * admitted anew (a held one then waits as pending). A paused one gets
     * its recipients back in the backlog, released when it resumes. */
    was_admitted = (!strcmp(bc_pg_val(res, 0, "state"), "admitted") ||
                    !strcmp(bc_pg_val(res, 0, "state"), "paused")) &&
                   !strcmp(bc_pg_val(res, 0, "active"), "t");
    paused = !strcmp(bc_pg_val(res, 0, "state"), "paused");
    snprintf(limit, sizeof limit, "%s", bc_pg_val(res, 0, "target_concurrency_limit"));
    snprintf(region, sizeof region, "%s", bc_pg_val(res, 0, "region"));
    PQclear(res);
    if (!(res = bc_pg_exec(pg, "batch_requeue", 2, p, err)))
        goto out;
    PQclear(res);
    res = NULL;
    if (!was_admitted) {
        if (bc_batch_admit(api, pg, who->tenant_id, concurrency, id, limit, region, 0, &rel,
                          err) < 0)
            goto out;
    } else if (!paused) {
        /* Admitted: release the re-queued recipients into its window now. */
        if (!(rel = bc_batch_release(api, pg, id, region, err)))
            goto out;
    }
    if (bc_batch_audit(pg, who, "batch.retry", id, NULL, err) < 0)
        goto out;
    return end_action(api, pg, 1, res, rel, err);
out:
    return end_action(api, pg, 0, res, rel, err);
}

json_t *bc_batch_list(bc_pg *pg, const char *tenant_id, const char *agent_id,
                      const char *starting_after, int limit, int *has_more,
                      bc_err *err)
{
    char lim[16];
    PGresult *res;
    json_t *arr = json_array();
    int n;

    snprintf(lim, sizeof lim, "%d", limit + 1);   /* one more tells has_more */
    const char *p[] = { tenant_id, agent_id, starting_after, lim };
    if (!(res = bc_pg_exec(pg, "batch_list", 4, p, err))) {
        json_decref(arr);
        return NULL;
    }
    n = PQntuples(res);
    *has_more = n > limit;
    for (int i = 0; i < n && i < limit; i++) {
        json_t *b = bc_batch_load(pg, tenant_id, bc_pg_val(res, i, "id"), 0, err);
        if (b)
            json_array_append_new(arr, b);
    }
    PQclear(res);
    return arr;
}

json_t *bc_batch_page(bc_pg *pg, const char *tenant_id, const char *surface,
                      int limit, int offset, long long *total, bc_err *err)
{
    char lim[16], off[16];
    PGresult *res;
    json_t *arr = json_array();

    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[] = { tenant_id, surface, lim, off };
    if (!(res = bc_pg_exec(pg, "batch_page", 4, p, err))) {
        json_decref(arr);
        return NULL;
    }
    *total = PQntuples(res) ? bc_pg_int(res, 0, "total", 0) : 0;
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *b = bc_batch_load(pg, tenant_id, bc_pg_val(res, i, "id"), 0, err);
        if (b)
            json_array_append_new(arr, b);
    }
    PQclear(res);
    return arr;
}
