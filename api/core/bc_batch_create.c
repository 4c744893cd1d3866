#include "bc_batches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_agent.h"
#include "bc_batch_admit.h"
#include "bc_caller_pool.h"
#include "bc_crypto.h"
#include "bc_failpoint.h"
#include "bc_json.h"
#include "bc_lease.h"
#include "bc_policy.h"

/* Resolves the from-number: by id, by E.164, or the tenant's default. */
static bc_batch_rc resolve_number(bc_pg *pg, const char *tenant,
                                  const bc_batch_spec *s, char *id, char *num,
                                  bc_err *err)
{
    PGresult *res;
    bc_batch_rc rc = BC_BATCH_NO_NUMBER;

    if (s->from_number_id) {
        const char *p[] = { s->from_number_id, tenant };
        res = bc_pg_exec(pg, "number_by_id", 2, p, err);
    } else if (s->from_number) {
        const char *p[] = { tenant, s->from_number };
        res = bc_pg_exec(pg, "number_by_e164", 2, p, err);
    } else {
        const char *p[] = { tenant };
        res = bc_pg_exec(pg, "number_default", 1, p, err);
    }
    if (!res)
        return BC_BATCH_ERROR;
    if (PQntuples(res) == 1) {
        snprintf(id, 48, "%s", bc_pg_val(res, 0, "id"));
        snprintf(num, 24, "%s", bc_pg_val(res, 0, "number"));
        rc = BC_BATCH_OK;
    } else if (s->from_number && !s->from_number_id) {
        /* A caller ID the tenant has not registered is still dialable
         * (Rymi and batch-call take a bare E.164); it just has no id. */
        id[0] = '\0';
        snprintf(num, 24, "%s", s->from_number);
        rc = BC_BATCH_OK;
    }
    PQclear(res);
    return rc;
}

/* The tenant's policy over the recipients just stored, inside the create's
 * transaction: with s->refuse_blocked, any it forbids make the create
 * BC_BATCH_BLOCKED (the numbers go to s->blocked); otherwise they end now,
 * undialed, with the rule as their end_reason. */
static bc_batch_rc apply_policy(bc_api *api, bc_pg *pg, const bc_principal *who,
                                const bc_batch_spec *s, const char *id, long *stopped,
                                bc_err *err)
{
    const char *p[] = { id };
    PGresult *res = bc_pg_exec(pg, s->refuse_blocked ? "policy_hits" : "policy_stop_batch", 1, p, err);
    int n;

    if (!res)
        return BC_BATCH_ERROR;
    n = PQntuples(res);
    if (s->refuse_blocked) {
        for (int i = 0; i < n && s->blocked; i++)
            json_array_append_new(s->blocked, json_string(bc_pg_val(res, i, "to_number")));
        PQclear(res);
        if (n) {
            bc_err_set(err, "%d recipient%s on the tenant's do-not-call list", n,
                       n == 1 ? " is" : "s are");
            return BC_BATCH_BLOCKED;
        }
        return BC_BATCH_OK;
    }
    for (int i = 0; i < n; i++) {
        char labels[96];

        *stopped += bc_pg_int(res, i, "n", 0);
        snprintf(labels, sizeof labels, "reason=\"%s\"", bc_pg_val(res, i, "reason"));
        bc_metrics_inc(api->ctx->metrics, "api_recipients_blocked_total",
                       "Recipients the tenant's policy stopped when their batch was created",
                       labels, (double)bc_pg_int(res, i, "n", 0));
        bc_log(api->ctx->log, BC_INFO, "batch.recipients_blocked", "{s:s,s:s,s:s,s:I}",
               "tenant_id", who->tenant_id, "batch_id", id, "reason",
               bc_pg_val(res, i, "reason"), "recipients", (json_int_t)bc_pg_int(res, i, "n", 0));
    }
    PQclear(res);
    return BC_BATCH_OK;
}

/* What a create works out before it stores the batch. */
typedef struct creating {
    char id[48];
    char sched[40];              /* scheduled_at, normalised; "" if none */
    char latest[40];             /* latest_at, normalised; "" if none */
    char region[16];
    char num_id[48], number[24]; /* the caller ID (num_id "" if not registered) */
    int limit;                   /* the batch's concurrency */
    char pool[1024], pool_cps[16];   /* its caller-ID pool, if any */
    const char *state;           /* draft, scheduled or pending */
    size_t n;                    /* its recipients */
    int read;                    /* all of them read and checked */
    int gated;                   /* the tenant's policy could stop a number */
} creating;

/* A recipient's time zone, noted once in zones (at most 512 kept). */
static void zone_note(json_t *zones, const json_t *r)
{
    json_t *tz = json_object_get(r, "timezone");

    if (!json_is_string(tz) || json_array_size(zones) >= 512)
        return;
    for (size_t k = 0; k < json_array_size(zones); k++)
        if (json_equal(json_array_get(zones, k), tz))
            return;
    json_array_append(zones, tz);
}

/* The recipients' time zones, each one PostgreSQL knows. */
static bc_batch_rc zones_known(bc_pg *pg, const json_t *zones, bc_err *err)
{
    PGresult *res;
    char *doc;

    if (json_array_size(zones) == 0)
        return BC_BATCH_OK;
    doc = json_dumps(zones, JSON_COMPACT);
    const char *p[] = { doc };
    res = doc ? bc_pg_exec(pg, "tz_unknown", 1, p, err) : NULL;
    free(doc);
    if (!res)
        return BC_BATCH_ERROR;
    if (PQntuples(res) > 0) {
        bc_err_set(err, "timezone '%s' of a recipient is not an IANA time zone",
                   PQgetvalue(res, 0, 0));
        PQclear(res);
        return BC_BATCH_BAD_TIME;
    }
    PQclear(res);
    return BC_BATCH_OK;
}

/* Every time zone the batch names, its own and its recipients', must be
 * one PostgreSQL knows: calling hours are read in it. Recipients read
 * lazily (s->items) are checked as they are stored (store_recipients). */
static bc_batch_rc check_zones(bc_pg *pg, const bc_batch_spec *s, bc_err *err)
{
    json_t *zones, *r;
    PGresult *res;
    bc_batch_rc rc;
    size_t i;

    if (s->timezone) {
        const char *p[] = { s->timezone };
        if (!(res = bc_pg_exec(pg, "tz_check", 1, p, err))) {
            if (strncmp(bc_pg_sqlstate(pg), "22", 2))
                return BC_BATCH_ERROR;
            bc_err_set(err, "timezone '%s' is not an IANA time zone", s->timezone);
            return BC_BATCH_BAD_TIME;
        }
        PQclear(res);
    }
    if (s->items)
        return BC_BATCH_OK;
    zones = json_array();
    json_array_foreach(s->recipients, i, r)
        zone_note(zones, r);
    rc = zones_known(pg, zones, err);
    json_decref(zones);
    return rc;
}

/* scheduled_at within (now, now + 30 days] unless a draft's, and an expiry
 * ahead of now and of it; both normalised into c. */
static bc_batch_rc check_times(bc_pg *pg, const bc_batch_spec *s, creating *c, bc_err *err)
{
    PGresult *res;
    char ttl[24], ms[24];
    int ok;

    if (s->scheduled_at) {
        const char *p[] = { s->scheduled_at };
        if (!(res = bc_pg_exec(pg, "time_check", 1, p, err))) {
            /* The shape was checked; a bad date (Feb 30) lands here. */
            return !strncmp(bc_pg_sqlstate(pg), "22", 2) ? BC_BATCH_BAD_TIME
                                                         : BC_BATCH_ERROR;
        }
        /* A draft may carry any time; it is checked when it is sent. */
        ok = s->draft || (!strcmp(bc_pg_val(res, 0, "future"), "t") &&
                          !strcmp(bc_pg_val(res, 0, "within"), "t"));
        snprintf(c->sched, sizeof c->sched, "%s", bc_pg_val(res, 0, "norm"));
        PQclear(res);
        if (!ok) {
            bc_err_set(err, "scheduled_at must be in the future and within 30 days");
            return BC_BATCH_BAD_TIME;
        }
    }
    if (!s->latest_at && s->latest_ms <= 0 && s->ttl_s <= 0)
        return BC_BATCH_OK;
    snprintf(ttl, sizeof ttl, "%ld", s->ttl_s);
    snprintf(ms, sizeof ms, "%lld", s->latest_ms);
    const char *p[] = { s->latest_at, c->sched[0] ? c->sched : NULL, ttl,
                        s->latest_ms > 0 ? ms : NULL };
    if (!(res = bc_pg_exec(pg, "latest_check", 4, p, err)))
        return !strncmp(bc_pg_sqlstate(pg), "22", 2) ? BC_BATCH_BAD_TIME : BC_BATCH_ERROR;
    ok = !strcmp(bc_pg_val(res, 0, "ok"), "t");
    snprintf(c->latest, sizeof c->latest, "%s", bc_pg_val(res, 0, "norm"));
    PQclear(res);
    if (!ok) {
        bc_err_set(err, "latest_at must be in the future and after the batch's start");
        return BC_BATCH_BAD_TIME;
    }
    return BC_BATCH_OK;
}

/* The batch's agent, the tenant's and reachable, and its region: the
 * spec's, else the agent's, else the tenant's default. */
static bc_batch_rc resolve_agent(bc_pg *pg, const bc_principal *who, const bc_batch_spec *s,
                                 creating *c, bc_err *err)
{
    const char *p[] = { s->agent_id, who->tenant_id };
    PGresult *res = bc_pg_exec(pg, "agent_get", 2, p, err);
    bc_batch_rc rc = BC_BATCH_OK;

    if (!res)
        return BC_BATCH_ERROR;
    if (PQntuples(res) != 1) {
        bc_err_set(err, "agent '%s' not found", s->agent_id);
        rc = BC_BATCH_NO_AGENT;
    } else if (!bc_pg_val(res, 0, "endpoint")) {
        bc_err_set(err, "agent '%s' has no endpoint: give it one (wss://, https:// or "
                        "sip:) before calling for it", s->agent_id);
        rc = BC_BATCH_NO_ENDPOINT;
    } else {
        snprintf(c->region, sizeof c->region, "%s",
                 s->region ? s->region
                           : bc_pg_val(res, 0, "region") ? bc_pg_val(res, 0, "region")
                                                         : who->default_region);
    }
    PQclear(res);
    return rc;
}

static bc_batch_rc over_limit(int limit, long concurrency, bc_err *err)
{
    bc_err_set(err, "target_concurrency_limit %d exceeds the organization's "
                    "concurrency limit of %ld", limit, concurrency);
    return BC_BATCH_OVER_LIMIT;
}

/* The batch's concurrency (capped by its caller-ID pool), within the
 * tenant's; and a tenant that cannot pay one call of it is refused (402 on
 * every surface), whatever created it: credits are the core's rule,
 * checked here and again before each dial. The same statement tells
 * whether the tenant's policy could stop any number (c->gated). */
static bc_batch_rc check_limits(bc_pg *pg, const bc_principal *who, const bc_batch_spec *s,
                                creating *c, bc_err *err)
{
    char mins[16];
    PGresult *res;
    int ok;

    c->limit = s->limit ? s->limit : bc_lease_default_limit(who->concurrency);
    if (s->caller_pool && !json_is_null(s->caller_pool)) {
        int rc = bc_caller_pool_resolve(pg, who->tenant_id, s->caller_pool, &c->limit,
                                        c->pool, sizeof c->pool, c->pool_cps,
                                        sizeof c->pool_cps, err);
        if (rc < 0)
            return BC_BATCH_ERROR;
        if (rc > 0)
            return BC_BATCH_NO_NUMBER;
    }
    if (c->limit > who->concurrency)
        return over_limit(c->limit, who->concurrency, err);
    snprintf(mins, sizeof mins, "%d", s->max_call_duration_min);
    const char *p[] = { who->tenant_id, mins };
    if (!(res = bc_pg_exec(pg, "create_tests", 2, p, err)))
        return BC_BATCH_ERROR;
    ok = !strcmp(bc_pg_val(res, 0, "ok"), "t");
    c->gated = !strcmp(bc_pg_val(res, 0, "gated"), "t");
    PQclear(res);
    if (ok)
        return BC_BATCH_OK;
    bc_err_set(err, "insufficient credits: the balance cannot pay one call of "
                    "%d minutes", s->max_call_duration_min);
    return BC_BATCH_NO_CREDIT;
}

/* The batch row and its settings beside it (expiry, agent leg, caller-ID
 * pool), inside the create's transaction. */
static int store_batch(bc_pg *pg, const bc_principal *who, const bc_batch_spec *s,
                       const creating *c, bc_err *err)
{
    char limit[16], ring[16], dur[16], retries[16], total[16];
    char *vars, *meta, *post, *hours, *retry, *vm = NULL;
    int rc = -1;

    snprintf(limit, sizeof limit, "%d", c->limit);
    snprintf(ring, sizeof ring, "%d", s->ringing_timeout_s);
    snprintf(dur, sizeof dur, "%d", s->max_call_duration_min);
    snprintf(retries, sizeof retries, "%d", s->max_retries);
    snprintf(total, sizeof total, "%zu", c->n);
    vars = s->variables ? json_dumps(s->variables, JSON_COMPACT) : strdup("{}");
    meta = s->metadata ? json_dumps(s->metadata, JSON_COMPACT) : strdup("{}");
    post = s->post_call ? json_dumps(s->post_call, JSON_COMPACT) : NULL;
    hours = s->calling_hours && !json_is_null(s->calling_hours)
                ? json_dumps(s->calling_hours, JSON_COMPACT) : NULL;
    retry = s->retry_policy ? json_dumps(s->retry_policy, JSON_COMPACT) : NULL;
    const char *p[] = { c->id, who->tenant_id, s->surface, s->name, s->agent_id,
                        c->num_id[0] ? c->num_id : NULL, c->number, c->region, limit, ring,
                        dur, retries, c->sched[0] ? c->sched : NULL,
                        s->timezone ? s->timezone : "UTC", vars, meta, c->state, total,
                        s->external_id, post, hours, retry };
    if (bc_pg_run(pg, "batch_insert", 22, p, err) < 0)
        goto out;
    if (c->latest[0] && bc_pg_run(pg, "expiry_set", 2, (const char *[]){ c->id, c->latest }, err) < 0)
        goto out;
    if ((s->voicemail && !json_is_null(s->voicemail)) || s->record > 0) {
        if (s->voicemail && !json_is_null(s->voicemail))
            vm = json_dumps(s->voicemail, JSON_COMPACT);
        const char *l[] = { c->id, vm, s->record > 0 ? (s->record == 2 ? "t" : "f") : NULL };
        if (bc_pg_run(pg, "agent_leg_set", 3, l, err) < 0)
            goto out;
    }
    if (c->pool[0] && bc_pg_run(pg, "pool_set", 3, (const char *[]){ c->id, c->pool,
                                c->pool_cps[0] ? c->pool_cps : NULL }, err) < 0)
        goto out;
    rc = 0;
out:
    free(vars);
    free(meta);
    free(post);
    free(hours);
    free(retry);
    free(vm);
    return rc;
}

/* The caps on recipient i's free-form JSON (bc_json_fits), named by its
 * position in the request. */
static int recipient_fits(const json_t *r, size_t i, char *why, size_t cap)
{
    char field[64];

    for (int k = 0; k < 2; k++) {
        const char *name = k ? "variables" : "metadata";
        json_t *v = json_object_get(r, name);

        /* The field's name is written only for a value that has to be
         * measured, which may fail; a small one is vouched for. */
        if (bc_json_surely_fits(v, BC_JSON_MAX_BYTES))
            continue;
        snprintf(field, sizeof field, "recipients[%zu].%s", i, name);
        if (bc_json_fits(v, field, BC_JSON_MAX_BYTES, why, cap) < 0)
            return -1;
    }
    return 0;
}

/* Recipient i, a new reference: the spec's, or its next item read,
 * converted and checked as the whole parse and free_json_fits check it,
 * its time zone noted in zones. NULL past the last, or with *bad set. */
static json_t *recipient_at(const bc_batch_spec *s, size_t i, json_t *zones, int *bad)
{
    char why[200];
    json_t *r, *x;

    if (!s->items)
        return json_incref(json_array_get(s->recipients, i));
    if (!(r = bc_json_items_next(s->items))) {
        *bad = s->items->bad;
        return NULL;
    }
    x = s->stream->convert(r, i, why, sizeof why);
    json_decref(r);
    if (!x || recipient_fits(x, i, why, sizeof why) < 0) {
        json_decref(x);
        *bad = 1;
        return NULL;
    }
    zone_note(zones, x);
    return x;
}

/* COPY: the fastest way PostgreSQL takes rows. Rows are sent as they are
 * made, so the server stores the first while the next are formatted (and,
 * read lazily, parsed). Ids are drawn at once, in ascending order
 * (bc_ids_new), so the primary key's inserts each land after the last, on the
 * rightmost page, which a B-tree fills before it splits; in random order
 * they land all over the batch's range and split pages in half. The
 * request's order is kept in seq. Values were validated by the surface;
 * COPY escaping makes any text safe. Read lazily, every item is checked
 * here, and then their time zones: c->read says all passed. */
static bc_batch_rc store_recipients(bc_pg *pg, const bc_principal *who, const bc_batch_spec *s,
                                    creating *c, bc_err *err)
{
    char (*ids)[32] = malloc((c->n ? c->n : 1) * sizeof *ids);
    json_t *zones = json_array(), *r;
    bc_batch_rc rc = BC_BATCH_ERROR;
    bc_pg_copy *cp;
    size_t i = 0;
    int bad = 0;

    if (!ids || bc_ids_new(ids[0], sizeof ids[0], c->n, "abcr") < 0) {
        bc_err_set(err, "no randomness for recipient ids");
        goto out;
    }
    if (!(cp = bc_pg_copy_begin(pg, "COPY recipients (id, batch_id, tenant_id, seq, to_number,"
                                    " from_number, metadata, variables, max_retries, timezone,"
                                    " retry_policy) FROM STDIN", err)))
        goto out;
    for (; i < c->n && (r = recipient_at(s, i, zones, &bad)); i++) {
        json_t *mr = json_object_get(r, "max_retries"), *rp = json_object_get(r, "retry_policy");

        bc_pg_copy_str(cp, ids[i]);
        bc_pg_copy_str(cp, c->id);
        bc_pg_copy_str(cp, who->tenant_id);
        bc_pg_copy_int(cp, (long long)i);
        bc_pg_copy_str(cp, json_string_value(json_object_get(r, "to_number")));
        bc_pg_copy_str(cp, json_string_value(json_object_get(r, "from_number")));
        bc_pg_copy_json(cp, json_object_get(r, "metadata"));
        bc_pg_copy_json(cp, json_object_get(r, "variables"));
        if (json_is_integer(mr))
            bc_pg_copy_int(cp, json_integer_value(mr));
        else
            bc_pg_copy_str(cp, NULL);
        bc_pg_copy_str(cp, json_string_value(json_object_get(r, "timezone")));
        bc_pg_copy_json(cp, json_is_object(rp) ? rp : NULL);
        bc_pg_copy_row(cp);
        json_decref(r);
    }
    /* Read lazily: exactly the elements the scan counted, no text after. */
    if (s->items && !bad && (i < c->n || (r = recipient_at(s, i, zones, &bad)))) {
        json_decref(r);
        bad = 1;
    }
    if (bad) {
        bc_pg_copy_abort(cp, "a recipient the whole parse must judge");
        bc_pg_copy_end(cp, err);
        rc = BC_BATCH_EAGER;
        goto out;
    }
    if (bc_pg_copy_end(cp, err) < 0)
        goto out;
    if ((rc = s->items ? zones_known(pg, zones, err) : BC_BATCH_OK) == BC_BATCH_OK)
        c->read = 1;
out:
    json_decref(zones);
    free(ids);
    return rc;
}

/* An immediate batch is admitted under the tenant lock, taken only now:
 * holding it through the COPY would serialise every batch of a tenant
 * behind the slowest insert. The lock serialises admission: two batches
 * cannot both take the last free capacity. *rel gets the outbox rows of
 * its first window. */
static bc_batch_rc admit(bc_api *api, bc_pg *pg, const bc_principal *who, const creating *c,
                         PGresult **rel, bc_err *err)
{
    const char *p[] = { who->tenant_id };
    PGresult *res;
    long concurrency;
    char limit[16];

    if (!(res = bc_pg_exec(pg, "tenant_lock", 1, p, err)))
        return BC_BATCH_ERROR;
    concurrency = bc_pg_int(res, 0, "concurrency", 1);
    PQclear(res);
    if (c->limit > concurrency)
        return over_limit(c->limit, concurrency, err);
    snprintf(limit, sizeof limit, "%d", c->limit);
    if (bc_batch_admit(api, pg, who->tenant_id, concurrency, c->id, limit, c->region, 0, rel,
                       err) < 0)
        return BC_BATCH_ERROR;
    return BC_BATCH_OK;
}

/* The steps that need the create's transaction, in it. */
static bc_batch_rc create_in_txn(bc_api *api, bc_pg *pg, const bc_principal *who,
                                 bc_batch_spec *s, creating *c, PGresult **rel,
                                 bc_err *err)
{
    bc_batch_rc rc;

    if ((rc = resolve_agent(pg, who, s, c, err)) != BC_BATCH_OK)
        return rc;
    if ((rc = resolve_number(pg, who->tenant_id, s, c->num_id, c->number, err)) != BC_BATCH_OK) {
        if (rc == BC_BATCH_NO_NUMBER)
            bc_err_set(err, "phone number '%s' not found",
                       s->from_number_id ? s->from_number_id : "(default)");
        return rc;
    }
    if ((rc = check_limits(pg, who, s, c, err)) != BC_BATCH_OK)
        return rc;
    c->state = s->draft ? "draft" : c->sched[0] ? "scheduled" : "pending";
    if (store_batch(pg, who, s, c, err) < 0)
        return BC_BATCH_ERROR;
    if ((rc = store_recipients(pg, who, s, c, err)) != BC_BATCH_OK)
        return rc;
    if (c->gated && (rc = apply_policy(api, pg, who, s, c->id, &s->stopped, err)) != BC_BATCH_OK)
        return rc;
    if (!strcmp(c->state, "pending") && (rc = admit(api, pg, who, c, rel, err)) != BC_BATCH_OK)
        return rc;
    if (bc_batch_audit(pg, who, "batch.create", c->id,
                       json_pack("{s:s,s:I,s:s}", "surface", s->surface, "recipients",
                                 (json_int_t)c->n, "region",
                                 c->region), err) < 0)
        return BC_BATCH_ERROR;
    return BC_BATCH_OK;
}

/* The caps on the client's free-form JSON (bc_json_fits), for every
 * surface in one place: the batch's metadata, variables and post_call, and
 * each recipient's metadata and variables (read lazily, as each is read). */
static int free_json_fits(const bc_batch_spec *s, char *why, size_t cap)
{
    json_t *r;
    size_t i;

    if (bc_json_fits(s->metadata, "metadata", BC_JSON_MAX_BYTES, why, cap) < 0 ||
        bc_json_fits(s->variables, "variables", BC_JSON_MAX_BYTES, why, cap) < 0 ||
        bc_json_fits(s->post_call, "post_call", BC_JSON_MAX_BYTES, why, cap) < 0)
        return -1;
    if (s->items)
        return 0;
    json_array_foreach(s->recipients, i, r)
        if (recipient_fits(r, i, why, cap) < 0)
            return -1;
    return 0;
}

/* The create; with s->items, a refusal before c->read is the whole
 * parse's to give (bc_batch_create). */
static bc_batch_rc create(bc_api *api, bc_pg *pg, const bc_principal *who, bc_batch_spec *s,
                          creating *c, bc_err *err)
{
    PGresult *rel = NULL;
    bc_batch_rc rc;
    char why[200];

    if (s->items && (c->n < 1 || c->n > s->stream->max))
        return BC_BATCH_EAGER;
    if (bc_agent_voicemail_check(s->voicemail, why, sizeof why) < 0) {
        bc_err_set(err, "%s", why);
        return BC_BATCH_BAD_VOICEMAIL;
    }
    if (free_json_fits(s, why, sizeof why) < 0) {
        bc_err_set(err, "%s", why);
        return BC_BATCH_TOO_BIG;
    }
    if ((rc = check_zones(pg, s, err)) != BC_BATCH_OK ||
        (rc = check_times(pg, s, c, err)) != BC_BATCH_OK)
        return rc;
    if (bc_pg_begin(pg, err) < 0)
        return BC_BATCH_ERROR;
    if ((rc = create_in_txn(api, pg, who, s, c, &rel, err)) != BC_BATCH_OK ||
        bc_pg_commit(pg, err) < 0) {
        bc_pg_rollback(pg);
        PQclear(rel);
        return rc != BC_BATCH_OK ? rc : BC_BATCH_ERROR;
    }
    bc_failpoint("api.after_commit");
    /* Durable now. A failed publish leaves the rows for the relay. */
    if (rel)
        bc_publisher_outbox_rows(api->pub, rel, NULL);
    PQclear(rel);
    return BC_BATCH_OK;
}

bc_batch_rc bc_batch_create(bc_api *api, bc_pg *pg, const bc_principal *who,
                            bc_batch_spec *s, char id_out[48], bc_err *err)
{
    creating c = { .state = "pending" };
    bc_batch_rc rc;

    if (bc_id_new(c.id, sizeof c.id, "acb") < 0) {
        bc_err_set(err, "no randomness for batch id");
        return BC_BATCH_ERROR;
    }
    snprintf(id_out, 48, "%s", c.id);
    s->stopped = 0;
    c.n = s->items ? s->items->n : json_array_size(s->recipients);
    c.read = !s->items;
    rc = create(api, pg, who, s, &c, err);
    /* Read lazily, the request was judged in another order than the whole
     * parse's (the agent, say, before the recipients): until every
     * recipient passed, only that parse may answer. Nothing was stored. */
    if (rc != BC_BATCH_OK && !c.read)
        rc = BC_BATCH_EAGER;
    s->count = rc == BC_BATCH_OK ? c.n : 0;
    return rc;
}

bc_batch_rc bc_batch_create_streamed(bc_api *api, bc_pg *pg, const bc_principal *who,
                                     const char *body, size_t len,
                                     const bc_batch_stream *how, bc_batch_spec *spec,
                                     json_t **rest, char id_out[48], bc_err *err)
{
    const char *surface = spec->surface;
    bc_batch_rc rc = BC_BATCH_EAGER;
    bc_json_items items;
    char labels[96];

    spec->retry_policy = NULL;
    if (bc_json_object_lazy(body, len, how->key, rest, &items) == 0 &&
        how->fields(*rest, spec, how->ud) == 0) {
        spec->items = &items;
        spec->stream = how;
        rc = bc_batch_create(api, pg, who, spec, id_out, err);
        spec->items = NULL;
        spec->stream = NULL;
    }
    if (rc == BC_BATCH_EAGER) {
        json_decref(spec->retry_policy);
        *spec = (bc_batch_spec){ .surface = surface };
        *err = (bc_err){ "" };
    }
    snprintf(labels, sizeof labels, "surface=\"%s\",read=\"%s\"", surface,
             rc == BC_BATCH_EAGER ? "whole" : "streamed");
    bc_metrics_inc(api->ctx->metrics, "api_batch_create_reads_total",
                   "Batch creates by how their recipients were read: streamed into the "
                   "COPY, or whole (any request not plainly valid is read whole)",
                   labels, 1);
    return rc;
}
