#include "bc_batches.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_agent.h"
#include "bc_audit.h"
#include "bc_crypto.h"
#include "bc_failpoint.h"
#include "bc_json.h"
#include "bc_kafka.h"
#include "bc_lease.h"
#include "bc_policy.h"
#include "bc_retry.h"
#include "bc_sql.h"

int bc_rfc3339_valid(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm) */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i;

    if (!s)
        return 0;
    for (i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i])
                            : toupper((unsigned char)s[i]) != shape[i])
            return 0;
    }
    if (s[i] == '.') {
        i++;
        if (!isdigit((unsigned char)s[i]))
            return 0;
        while (isdigit((unsigned char)s[i]))
            i++;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && !s[i + 1])
        return 1;
    return (s[i] == '+' || s[i] == '-') && isdigit((unsigned char)s[i + 1]) &&
           isdigit((unsigned char)s[i + 2]) && s[i + 3] == ':' &&
           isdigit((unsigned char)s[i + 4]) && isdigit((unsigned char)s[i + 5]) &&
           !s[i + 6];
}

long long bc_rfc3339_ms(const char *s)
{
    struct tm tm = { 0 };
    const char *end;

    if (!s || !(end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) || *end)
        return -1;
    return (long long)timegm(&tm) * 1000;
}

#define MAX_TTL_S 2592000   /* 30 days */
#define MAX_LATEST_MS 253402300799999.0   /* 9999-12-31T23:59:59.999Z */

int bc_expiry_parse(json_t *in, int ms, bc_batch_spec *spec, char *why, size_t cap)
{
    json_t *la = json_object_get(in, "latest_at"), *ttl = json_object_get(in, "ttl");
    json_t *lt = ms ? json_object_get(in, "latest_timestamp") : NULL;
    int n = (la && !json_is_null(la)) + (ttl && !json_is_null(ttl)) + (lt && !json_is_null(lt));

    spec->latest_at = NULL;
    spec->latest_ms = 0;
    spec->ttl_s = 0;
    if (n > 1) {
        snprintf(why, cap, ms ? "give at most one of latest_at, latest_timestamp and ttl"
                              : "give latest_at or ttl, not both");
        return -1;
    }
    if (la && !json_is_null(la)) {
        if (!json_is_string(la) || json_string_length(la) > 64 ||
            !bc_rfc3339_valid(json_string_value(la))) {
            snprintf(why, cap, "latest_at must be an RFC3339 timestamp with a timezone offset, "
                               "e.g. 2026-06-15T18:00:00Z");
            return -1;
        }
        spec->latest_at = json_string_value(la);
    }
    if (ttl && !json_is_null(ttl)) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
            json_integer_value(ttl) > MAX_TTL_S) {
            snprintf(why, cap, "ttl must be a whole number of seconds between 1 and %d (30 days)",
                     MAX_TTL_S);
            return -1;
        }
        spec->ttl_s = (long)json_integer_value(ttl);
    }
    if (lt && !json_is_null(lt)) {
        double v = json_is_integer(lt) ? (double)json_integer_value(lt)
                 : json_is_real(lt) ? json_real_value(lt) : -1;

        if (!(v >= 1 && v <= MAX_LATEST_MS)) {
            snprintf(why, cap, "latest_timestamp must be a Unix timestamp in milliseconds");
            return -1;
        }
        spec->latest_ms = (long long)v;
    }
    return 0;
}

static int hhmm(const char *s)
{
    return s && strlen(s) == 5 && s[2] == ':' && s[0] >= '0' && s[0] <= '2' &&
           s[1] >= '0' && s[1] <= '9' && s[3] >= '0' && s[3] <= '5' && s[4] >= '0' &&
           s[4] <= '9' && (s[0] < '2' || s[1] <= '3');
}

int bc_caller_pool_check(json_t *pool, char *why, size_t cap)
{
    json_t *nums, *x, *v;
    size_t i, n;
    const char *keys[] = { "calls_per_second", "max_concurrent_per_number" };
    const long max[] = { 1000, 100000 };

    if (!pool || json_is_null(pool))
        return 0;
    nums = json_object_get(pool, "numbers");
    n = json_array_size(nums);
    if (!json_is_object(pool) || !json_is_array(nums) || n < 1 || n > 50) {
        snprintf(why, cap, "caller_id_pool must be {\"numbers\": [1 to 50 phone number ids or "
                           "E.164 numbers], \"calls_per_second\"?, \"max_concurrent_per_number\"?}");
        return -1;
    }
    json_array_foreach(nums, i, x) {
        const char *s = json_string_value(x);
        if (!s || !*s || strlen(s) > 64) {
            snprintf(why, cap, "caller_id_pool.numbers[%zu] must be a phone number id or an "
                               "E.164 number", i);
            return -1;
        }
        for (size_t k = 0; k < i; k++)
            if (json_equal(json_array_get(nums, k), x)) {
                snprintf(why, cap, "caller_id_pool.numbers[%zu] repeats '%s'", i, s);
                return -1;
            }
    }
    for (int k = 0; k < 2; k++) {
        v = json_object_get(pool, keys[k]);
        if (v && !json_is_null(v) &&
            (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max[k])) {
            snprintf(why, cap, "caller_id_pool.%s must be an integer between 1 and %ld", keys[k],
                     max[k]);
            return -1;
        }
    }
    return 0;
}

int bc_recipient_timezone(json_t *src, json_t *dst, const char *where, size_t i,
                          char *why, size_t cap)
{
    json_t *tz = json_object_get(src, "timezone");
    const char *s;
    size_t n;

    if (!tz || json_is_null(tz))
        return 0;
    s = json_string_value(tz);
    n = s ? strlen(s) : 0;
    if (!s || n == 0 || n > 64 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789/_+-") != n) {
        snprintf(why, cap, "%s[%zu].timezone must be an IANA time zone name such as "
                           "America/New_York", where, i);
        return -1;
    }
    json_object_set(dst, "timezone", tz);
    return 0;
}

int bc_recipient_retry(json_t *src, json_t *dst, const char *where, size_t i, char *why,
                       size_t cap)
{
    char at[48];
    json_t *policy;
    int mr;

    snprintf(at, sizeof at, "%s[%zu].", where, i);
    if (bc_retry_parse(src, at, &mr, &policy, why, cap) < 0)
        return -1;
    if (mr >= 0)
        json_object_set_new(dst, "max_retries", json_integer(mr));
    if (policy)
        json_object_set_new(dst, "retry_policy", policy);
    return 0;
}

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

int bc_calling_hours_check(json_t *w, char *why, size_t cap)
{
    json_t *days, *d;
    size_t i;

    if (!w || json_is_null(w))
        return 0;
    if (!json_is_object(w) ||
        !hhmm(json_string_value(json_object_get(w, "start"))) ||
        !hhmm(json_string_value(json_object_get(w, "end")))) {
        snprintf(why, cap, "calling_hours must be {\"start\": \"HH:MM\", \"end\": \"HH:MM\", "
                           "\"days\": [1-7]} (days optional, ISO Monday = 1)");
        return -1;
    }
    if (!strcmp(json_string_value(json_object_get(w, "start")),
                json_string_value(json_object_get(w, "end")))) {
        snprintf(why, cap, "calling_hours start and end must differ");
        return -1;
    }
    days = json_object_get(w, "days");
    if (days && (!json_is_array(days) || json_array_size(days) == 0 || json_array_size(days) > 7)) {
        snprintf(why, cap, "calling_hours.days must be a non-empty array of 1-7");
        return -1;
    }
    json_array_foreach(days, i, d)
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > 7) {
            snprintf(why, cap, "calling_hours.days[%zu] must be 1 (Monday) to 7 (Sunday)", i);
            return -1;
        }
    return 0;
}

static PGresult *one(bc_pg *pg, const char *stmt, int n, const char *const *p,
                     bc_err *err)
{
    return bc_pg_exec(pg, stmt, n, p, err);
}

/* The audit row of a write by who, in the write's transaction. Takes
 * ownership of detail. */
static int audit(bc_pg *pg, const bc_principal *who, const char *action, const char *id,
                 json_t *detail, bc_err *err)
{
    bc_audit_actor a = { who->tenant_id, who->key_id, NULL, who->ip };

    return bc_audit_write(pg, &a, action, id, detail, err);
}

/* Resolves the from-number: by id, by E.164, or the tenant's default. */
static bc_batch_rc resolve_number(bc_pg *pg, const char *tenant,
                                  const bc_batch_spec *s, char *id, char *num,
                                  bc_err *err)
{
    PGresult *res;
    bc_batch_rc rc = BC_BATCH_NO_NUMBER;

    if (s->from_number_id) {
        const char *p[] = { s->from_number_id, tenant };
        res = one(pg, "number_by_id", 2, p, err);
    } else if (s->from_number) {
        const char *p[] = { tenant, s->from_number };
        res = one(pg, "number_by_e164", 2, p, err);
    } else {
        const char *p[] = { tenant };
        res = one(pg, "number_default", 1, p, err);
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

/* The recipients as COPY text rows: ids drawn at once, order kept in seq.
 * Values were validated by the surface; COPY escaping makes any text safe. */
static char *recipients_copy(json_t *recipients, const char *batch, const char *tenant,
                             size_t *len, bc_err *err)
{
    size_t n = json_array_size(recipients), i;
    char (*ids)[32] = malloc((n ? n : 1) * sizeof *ids), *buf = NULL;
    FILE *f;
    json_t *r;

    if (!ids || bc_ids_new(ids[0], sizeof ids[0], n, "abcr") < 0) {
        free(ids);
        bc_err_set(err, "no randomness for recipient ids");
        return NULL;
    }
    f = open_memstream(&buf, len);
    json_array_foreach(recipients, i, r) {
        json_t *from = json_object_get(r, "from_number"), *meta = json_object_get(r, "metadata");
        json_t *vars = json_object_get(r, "variables"), *mr = json_object_get(r, "max_retries");
        json_t *tz = json_object_get(r, "timezone"), *rp = json_object_get(r, "retry_policy");

        fprintf(f, "%s\t%s\t%s\t%zu\t", ids[i], batch, tenant, i);
        bc_pg_copy_escape(f, json_string_value(json_object_get(r, "to_number")));
        fputc('\t', f);
        if (json_is_string(from))
            bc_pg_copy_escape(f, json_string_value(from));
        else
            fputs("\\N", f);
        for (int k = 0; k < 2; k++) {
            json_t *j = k ? vars : meta;
            fputc('\t', f);
            if (j && !json_is_null(j)) {
                char *s = json_dumps(j, JSON_COMPACT);
                bc_pg_copy_escape(f, s ? s : "null");
                free(s);
            } else {
                fputs("\\N", f);
            }
        }
        if (json_is_integer(mr))
            fprintf(f, "\t%" JSON_INTEGER_FORMAT, json_integer_value(mr));
        else
            fputs("\t\\N", f);
        fputc('\t', f);
        if (json_is_string(tz))
            bc_pg_copy_escape(f, json_string_value(tz));
        else
            fputs("\\N", f);
        fputc('\t', f);
        if (json_is_object(rp)) {
            char *j = json_dumps(rp, JSON_COMPACT);
            bc_pg_copy_escape(f, j ? j : "null");
            free(j);
        } else {
            fputs("\\N", f);
        }
        fputc('\n', f);
    }
    fclose(f);
    free(ids);
    return buf;
}

/* Gives an admitted batch its lease slots (its reservation) and releases
 * its first window of jobs to the outbox. Returns the outbox rows, NULL on
 * error. */
static PGresult *open_window(bc_api *api, bc_pg *pg, const char *id,
                             const char *slots, const char *region, bc_err *err)
{
    char topic[160];
    const char *p[] = { id, slots };
    PGresult *res = one(pg, "leases_insert", 2, p, err);

    if (!res)
        return NULL;
    PQclear(res);
    bc_kafka_topic(topic, sizeof topic, api->topic_prefix, "jobs", region);
    const char *q[] = { id, BC_WINDOW_MULTIPLE, topic };
    return one(pg, "release", 3, q, err);
}

static int admit_or_wait(bc_api *api, bc_pg *pg, const char *tenant, long concurrency,
                         const char *id, const char *limit, const char *region,
                         int scheduled_ahead, PGresult **rel, bc_err *err);

/* The tenant's policy over the recipients just stored, inside the create's
 * transaction: with s->refuse_blocked, any it forbids make the create
 * BC_BATCH_BLOCKED (the numbers go to s->blocked); otherwise they end now,
 * undialed, with the rule as their end_reason. */
static bc_batch_rc apply_policy(bc_api *api, bc_pg *pg, const bc_principal *who,
                                const bc_batch_spec *s, const char *id, bc_err *err)
{
    const char *p[] = { id };
    PGresult *res = one(pg, s->refuse_blocked ? "policy_hits" : "policy_stop_batch", 1, p, err);
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

int bc_agent_leg_parse(json_t *in, bc_batch_spec *spec, char *why, size_t cap)
{
    json_t *rec = json_object_get(in, "record");

    if (rec && !json_is_null(rec) && !json_is_boolean(rec)) {
        snprintf(why, cap, "record must be a boolean");
        return -1;
    }
    if (bc_agent_voicemail_check(json_object_get(in, "voicemail"), why, cap) < 0)
        return -1;
    spec->voicemail = json_object_get(in, "voicemail");
    spec->record = json_is_boolean(rec) ? (json_is_true(rec) ? 2 : 1) : 0;
    return 0;
}

bc_batch_rc bc_batch_create(bc_api *api, bc_pg *pg, const bc_principal *who,
                            const bc_batch_spec *s, char id_out[48], bc_err *err)
{
    bc_batch_rc rc = BC_BATCH_ERROR;
    PGresult *res = NULL, *rel = NULL;
    char num_id[48] = "", number[24] = "", region[16], limit[16], ring[16],
         dur[16], retries[16], total[16], *vars = NULL, *meta = NULL, *post = NULL,
         *hours = NULL, pool[1024] = "", pool_cps[16] = "", *retry = NULL,
         *doc = NULL, sched[40] = "", latest[40] = "";
    const char *state;
    long concurrency;
    int lim, in_txn = 0;
    size_t doclen = 0;

    if (bc_id_new(id_out, 48, "acb") < 0) {
        bc_err_set(err, "no randomness for batch id");
        return BC_BATCH_ERROR;
    }
    {
        char why[200];

        if (bc_agent_voicemail_check(s->voicemail, why, sizeof why) < 0) {
            bc_err_set(err, "%s", why);
            return BC_BATCH_BAD_VOICEMAIL;
        }
    }
    if (s->timezone) {
        const char *p[] = { s->timezone };
        if (!(res = one(pg, "tz_check", 1, p, err))) {
            if (strncmp(bc_pg_sqlstate(pg), "22", 2))
                return BC_BATCH_ERROR;
            bc_err_set(err, "timezone '%s' is not an IANA time zone", s->timezone);
            return BC_BATCH_BAD_TIME;
        }
        PQclear(res);
        res = NULL;
    }
    {
        /* Every distinct recipient time zone must be one PostgreSQL knows:
         * calling hours are read in it. */
        json_t *zones = json_array(), *r;
        size_t i;
        char *doc;

        json_array_foreach(s->recipients, i, r) {
            json_t *tz = json_object_get(r, "timezone");
            if (json_is_string(tz) && json_array_size(zones) < 512) {
                int seen = 0;
                for (size_t k = 0; k < json_array_size(zones) && !seen; k++)
                    seen = json_equal(json_array_get(zones, k), tz);
                if (!seen)
                    json_array_append(zones, tz);
            }
        }
        if (json_array_size(zones) > 0) {
            doc = json_dumps(zones, JSON_COMPACT);
            const char *p[] = { doc };
            res = doc ? one(pg, "tz_unknown", 1, p, err) : NULL;
            free(doc);
            json_decref(zones);
            if (!res)
                return BC_BATCH_ERROR;
            if (PQntuples(res) > 0) {
                bc_err_set(err, "timezone '%s' of a recipient is not an IANA time zone",
                           PQgetvalue(res, 0, 0));
                PQclear(res);
                return BC_BATCH_BAD_TIME;
            }
            PQclear(res);
            res = NULL;
        } else {
            json_decref(zones);
        }
    }
    if (s->scheduled_at) {
        const char *p[] = { s->scheduled_at };
        if (!(res = one(pg, "time_check", 1, p, err))) {
            /* The shape was checked; a bad date (Feb 30) lands here. */
            return !strncmp(bc_pg_sqlstate(pg), "22", 2) ? BC_BATCH_BAD_TIME
                                                         : BC_BATCH_ERROR;
        }
        /* A draft may carry any time; it is checked when it is sent. */
        int ok = s->draft || (!strcmp(bc_pg_val(res, 0, "future"), "t") &&
                              !strcmp(bc_pg_val(res, 0, "within"), "t"));
        snprintf(sched, sizeof sched, "%s", bc_pg_val(res, 0, "norm"));
        PQclear(res);
        res = NULL;
        if (!ok) {
            bc_err_set(err, "scheduled_at must be in the future and within 30 days");
            return BC_BATCH_BAD_TIME;
        }
    }
    if (s->latest_at || s->latest_ms > 0 || s->ttl_s > 0) {
        char ttl[24], ms[24];
        snprintf(ttl, sizeof ttl, "%ld", s->ttl_s);
        snprintf(ms, sizeof ms, "%lld", s->latest_ms);
        const char *p[] = { s->latest_at, sched[0] ? sched : NULL, ttl,
                            s->latest_ms > 0 ? ms : NULL };
        if (!(res = one(pg, "latest_check", 4, p, err)))
            return !strncmp(bc_pg_sqlstate(pg), "22", 2) ? BC_BATCH_BAD_TIME : BC_BATCH_ERROR;
        int ok = !strcmp(bc_pg_val(res, 0, "ok"), "t");
        snprintf(latest, sizeof latest, "%s", bc_pg_val(res, 0, "norm"));
        PQclear(res);
        res = NULL;
        if (!ok) {
            bc_err_set(err, "latest_at must be in the future and after the batch's start");
            return BC_BATCH_BAD_TIME;
        }
    }
    if (bc_pg_begin(pg, err) < 0)
        return BC_BATCH_ERROR;
    in_txn = 1;
    {
        const char *p[] = { s->agent_id, who->tenant_id };
        if (!(res = one(pg, "agent_get", 2, p, err)))
            goto out;
        if (PQntuples(res) != 1) {
            bc_err_set(err, "agent '%s' not found", s->agent_id);
            rc = BC_BATCH_NO_AGENT;
            goto out;
        }
        if (!bc_pg_val(res, 0, "endpoint")) {
            bc_err_set(err, "agent '%s' has no endpoint: give it one (wss://, https:// or "
                            "sip:) before calling for it", s->agent_id);
            rc = BC_BATCH_NO_ENDPOINT;
            goto out;
        }
        snprintf(region, sizeof region, "%s",
                 s->region ? s->region
                           : bc_pg_val(res, 0, "region") ? bc_pg_val(res, 0, "region")
                                                         : who->default_region);
        PQclear(res);
        res = NULL;
    }
    if ((rc = resolve_number(pg, who->tenant_id, s, num_id, number, err)) != BC_BATCH_OK) {
        if (rc == BC_BATCH_NO_NUMBER)
            bc_err_set(err, "phone number '%s' not found",
                       s->from_number_id ? s->from_number_id : "(default)");
        goto out;
    }
    rc = BC_BATCH_ERROR;
    concurrency = who->concurrency;
    lim = s->limit ? s->limit : bc_lease_default_limit((int)concurrency);
    if (s->caller_pool && !json_is_null(s->caller_pool)) {
        /* Every number must be the tenant's; the batch's slots are dealt
         * out over them, so a per-number cap caps the batch at n x cap. */
        json_t *nums = json_object_get(s->caller_pool, "numbers");
        json_t *per = json_object_get(s->caller_pool, "max_concurrent_per_number");
        json_t *cps = json_object_get(s->caller_pool, "calls_per_second");
        char *doc = json_dumps(nums, JSON_COMPACT);
        const char *p[] = { who->tenant_id, doc };

        res = doc ? one(pg, "pool_resolve", 2, p, err) : NULL;
        free(doc);
        if (!res)
            goto out;
        if (bc_pg_val(res, 0, "missing")) {
            bc_err_set(err, "phone number '%s' of caller_id_pool not found",
                       bc_pg_val(res, 0, "missing"));
            rc = BC_BATCH_NO_NUMBER;
            goto out;
        }
        snprintf(pool, sizeof pool, "%s", bc_pg_val(res, 0, "numbers"));
        PQclear(res);
        res = NULL;
        if (json_is_integer(per) &&
            (json_int_t)lim > json_integer_value(per) * (json_int_t)json_array_size(nums))
            lim = (int)(json_integer_value(per) * (json_int_t)json_array_size(nums));
        if (json_is_integer(cps))
            snprintf(pool_cps, sizeof pool_cps, "%" JSON_INTEGER_FORMAT, json_integer_value(cps));
    }
    if (lim > concurrency) {
        bc_err_set(err, "target_concurrency_limit %d exceeds the organization's "
                        "concurrency limit of %ld", lim, concurrency);
        rc = BC_BATCH_OVER_LIMIT;
        goto out;
    }
    {
        /* A batch its tenant cannot pay one call of is refused (402 on
         * every surface), whatever created it: credits are the core's
         * rule, checked here and again before each dial. */
        char mins[16];
        snprintf(mins, sizeof mins, "%d", s->max_call_duration_min);
        const char *p[] = { who->tenant_id, mins };
        if (!(res = one(pg, "credits_afford", 2, p, err)))
            goto out;
        if (strcmp(bc_pg_val(res, 0, "ok"), "t")) {
            bc_err_set(err, "insufficient credits: the balance cannot pay one call of "
                            "%d minutes", s->max_call_duration_min);
            rc = BC_BATCH_NO_CREDIT;
            goto out;
        }
        PQclear(res);
        res = NULL;
    }
    /* An immediate batch is stored as pending and admitted at the end, under
     * the tenant lock: holding that lock through the COPY would serialise
     * every batch of a tenant behind the slowest insert. */
    state = s->draft ? "draft" : sched[0] ? "scheduled" : "pending";
    snprintf(limit, sizeof limit, "%d", lim);
    snprintf(ring, sizeof ring, "%d", s->ringing_timeout_s);
    snprintf(dur, sizeof dur, "%d", s->max_call_duration_min);
    snprintf(retries, sizeof retries, "%d", s->max_retries);
    snprintf(total, sizeof total, "%zu", json_array_size(s->recipients));
    vars = s->variables ? json_dumps(s->variables, JSON_COMPACT) : strdup("{}");
    meta = s->metadata ? json_dumps(s->metadata, JSON_COMPACT) : strdup("{}");
    post = s->post_call ? json_dumps(s->post_call, JSON_COMPACT) : NULL;
    hours = s->calling_hours && !json_is_null(s->calling_hours)
                ? json_dumps(s->calling_hours, JSON_COMPACT) : NULL;
    retry = s->retry_policy ? json_dumps(s->retry_policy, JSON_COMPACT) : NULL;
    {
        const char *p[] = { id_out, who->tenant_id, s->surface, s->name, s->agent_id,
                            num_id[0] ? num_id : NULL, number, region, limit, ring,
                            dur, retries, sched[0] ? sched : NULL,
                            s->timezone ? s->timezone : "UTC", vars, meta, state, total,
                            s->external_id, post, hours, retry };
        if (!(res = one(pg, "batch_insert", 22, p, err)))
            goto out;
        PQclear(res);
        res = NULL;
    }
    if (latest[0]) {
        const char *p[] = { id_out, latest };
        if (!(res = one(pg, "expiry_set", 2, p, err)))
            goto out;
        PQclear(res);
        res = NULL;
    }
    if ((s->voicemail && !json_is_null(s->voicemail)) || s->record > 0) {
        char *vm = s->voicemail && !json_is_null(s->voicemail)
                       ? json_dumps(s->voicemail, JSON_COMPACT) : NULL;
        const char *p[] = { id_out, vm, s->record > 0 ? (s->record == 2 ? "t" : "f") : NULL };

        res = one(pg, "agent_leg_set", 3, p, err);
        free(vm);
        if (!res)
            goto out;
        PQclear(res);
        res = NULL;
    }
    if (pool[0]) {
        const char *p[] = { id_out, pool, pool_cps[0] ? pool_cps : NULL };
        if (!(res = one(pg, "pool_set", 3, p, err)))
            goto out;
        PQclear(res);
        res = NULL;
    }
    /* COPY: the fastest way PostgreSQL takes rows, one round trip. */
    if (!(doc = recipients_copy(s->recipients, id_out, who->tenant_id, &doclen, err)) ||
        bc_pg_copy_in(pg, "COPY recipients (id, batch_id, tenant_id, seq, to_number,"
                          " from_number, metadata, variables, max_retries, timezone,"
                          " retry_policy)"
                          " FROM STDIN",
                      doc, doclen, err) < 0)
        goto out;
    if ((rc = apply_policy(api, pg, who, s, id_out, err)) != BC_BATCH_OK)
        goto out;
    rc = BC_BATCH_ERROR;
    if (!strcmp(state, "pending")) {
        /* The tenant row lock serialises admission: two batches cannot both
         * take the last free capacity. */
        const char *p[] = { who->tenant_id };
        if (!(res = one(pg, "tenant_lock", 1, p, err)))
            goto out;
        concurrency = bc_pg_int(res, 0, "concurrency", 1);
        PQclear(res);
        res = NULL;
        if (lim > concurrency) {
            bc_err_set(err, "target_concurrency_limit %d exceeds the organization's "
                            "concurrency limit of %ld", lim, concurrency);
            rc = BC_BATCH_OVER_LIMIT;
            goto out;
        }
        if (admit_or_wait(api, pg, who->tenant_id, concurrency, id_out, limit, region, 0,
                          &rel, err) < 0)
            goto out;
    }
    if (audit(pg, who, "batch.create", id_out,
              json_pack("{s:s,s:I,s:s}", "surface", s->surface,
                        "recipients", (json_int_t)json_array_size(s->recipients), "region", region),
              err) < 0)
        goto out;
    if (bc_pg_commit(pg, err) < 0)
        goto out;
    in_txn = 0;
    bc_failpoint("api.after_commit");
    /* Durable now. A failed publish leaves the rows for the relay. */
    if (rel)
        bc_publisher_outbox_rows(api->pub, rel, NULL);
    rc = BC_BATCH_OK;
out:
    if (in_txn)
        bc_pg_rollback(pg);
    PQclear(res);
    PQclear(rel);
    free(vars);
    free(meta);
    free(post);
    free(hours);
    free(retry);
    free(doc);
    return rc;
}

static json_t *json_col(const PGresult *res, int row, const char *col)
{
    const char *v = bc_pg_val(res, row, col);
    json_t *j = v ? json_loads(v, 0, NULL) : NULL;

    return j ? j : json_null();
}

static json_t *load(bc_pg *pg, const char *tenant_id, const char *batch_id,
                    int with_recipients, bc_err *err);

/* With its recipients, the batch's counters and its list are read in one
 * snapshot: read apart, a call ending between the two reads showed every
 * recipient ended beside a count of one still live. */
json_t *bc_batch_load(bc_pg *pg, const char *tenant_id, const char *batch_id,
                      int with_recipients, bc_err *err)
{
    json_t *b;

    if (!with_recipients || bc_pg_in_txn(pg))
        return load(pg, tenant_id, batch_id, with_recipients, err);
    if (bc_pg_begin_snapshot(pg, err) < 0)
        return NULL;
    if (!(b = load(pg, tenant_id, batch_id, with_recipients, err))) {
        bc_pg_rollback(pg);   /* err says why, or is "" for no such batch */
        return NULL;
    }
    if (bc_pg_commit(pg, err) < 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

static json_t *load(bc_pg *pg, const char *tenant_id, const char *batch_id,
                    int with_recipients, bc_err *err)
{
    const char *p[] = { batch_id, tenant_id };
    PGresult *res = bc_pg_exec(pg, "batch_get", 2, p, err);
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
    if (!with_recipients)
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
    if (!(res = one(pg, "batch_cancel", 2, p, err)))
        goto fail;
    n = atoll(PQcmdTuples(res));
    PQclear(res);
    if (!(res = one(pg, "batch_state", 2, p, err)))
        goto fail;
    if (PQntuples(res) != 1) {
        PQclear(res);
        bc_pg_rollback(pg);
        return BC_BATCH_NOT_FOUND;
    }
    PQclear(res);
    if (audit(pg, who, action, id, json_pack("{s:I}", "queued_cancelled", (json_int_t)n),
              err) < 0 ||
        bc_pg_commit(pg, err) < 0)
        goto fail;
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
    if (!(res = one(pg, "batch_hangup", 3, p, err)))
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
    if (!(res = one(pg, "batch_pause", 2, p, err))) {
        bc_pg_rollback(pg);
        return BC_BATCH_ERROR;
    }
    n = bc_pg_int(res, 0, "n", 0);
    PQclear(res);
    if (n == 1) {
        if (audit(pg, who, "batch.pause", id, NULL, err) < 0 || bc_pg_commit(pg, err) < 0) {
            bc_pg_rollback(pg);
            return BC_BATCH_ERROR;
        }
        return BC_BATCH_OK;
    }
    bc_pg_rollback(pg);
    if (!(res = one(pg, "batch_state", 2, p, err)))
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
    if (!(res = one(pg, "tenant_lock", 1, t, err)))
        goto fail;
    if (concurrency)
        *concurrency = bc_pg_int(res, 0, "concurrency", 1);
    PQclear(res);
    if (!(res = one(pg, "batch_lock", 2, p, err)))
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

/* Releases the first window of each batch in res (columns id, region) into
 * the outbox; the rows to publish are appended to rels (at most cap).
 * Inside the caller's transaction. */
static int release_each(bc_api *api, bc_pg *pg, PGresult *res, PGresult **rels, int cap,
                        int *nrel, bc_err *err)
{
    char topic[160];

    for (int i = 0; i < PQntuples(res); i++) {
        PGresult *rel;

        bc_kafka_topic(topic, sizeof topic, api->topic_prefix, "jobs", bc_pg_val(res, i, "region"));
        const char *q[] = { bc_pg_val(res, i, "id"), BC_WINDOW_MULTIPLE, topic };
        if (!(rel = one(pg, "release", 3, q, err)))
            return -1;
        if (*nrel < cap)
            rels[(*nrel)++] = rel;
        else
            PQclear(rel);   /* the scheduler's relay publishes those */
    }
    return 0;
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
    if (!(res = one(pg, "batch_resume", 2, p, err)))
        goto out;
    /* Admitted again: its window opens where it stopped. */
    if (PQntuples(res) == 1 && !strcmp(bc_pg_val(res, 0, "resumed"), "t") &&
        release_each(api, pg, res, &rel, 1, &nrel, err) < 0)
        goto out;
    if (audit(pg, who, "batch.resume", id, NULL, err) < 0)
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
    if (!(res = one(pg, "tenant_lock_paused", 1, t, err)))
        goto out;
    PQclear(res);
    if (!(res = one(pg, pause ? "tenant_pause" : "tenant_resume", 1, t, err)))
        goto out;
    if (pause) {
        out = json_pack("{s:b,s:s,s:I}", "paused", 1, "paused_at", bc_pg_val(res, 0, "paused_at"),
                        "batches", (json_int_t)bc_pg_int(res, 0, "n", 0));
    } else {
        if (!(rels = calloc(MAX_RESUMED, sizeof *rels)) ||
            release_each(api, pg, res, rels, MAX_RESUMED, &nrel, err) < 0)
            goto out;
        out = json_pack("{s:b,s:n,s:I}", "paused", 0, "paused_at", "batches",
                        (json_int_t)PQntuples(res));
    }
    if (audit(pg, who, pause ? "tenant.pause" : "tenant.resume", who->tenant_id,
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

/* Inside a transaction holding the tenant lock: admits the batch if its
 * region has a live worker and the tenant has room for what it can use,
 * min(limit, recipients still to finish) (opening its window: *rel gets
 * the outbox rows), else leaves it pending, saying why (wait_reason); a
 * batch whose time is ahead becomes scheduled. */
static int admit_or_wait(bc_api *api, bc_pg *pg, const char *tenant, long concurrency,
                         const char *id, const char *limit, const char *region,
                         int scheduled_ahead, PGresult **rel, bc_err *err)
{
    const char *t[] = { tenant };
    PGresult *res;
    long reserved;
    const char *state, *why = NULL;
    char slots[16];

    const char *o[] = { tenant, id };
    int older_waits, held, need, live, admit;

    *rel = NULL;
    /* Paused, itself or by its tenant: it waits as pending (or scheduled)
     * and is admitted once both pauses are over. */
    if (!(res = one(pg, "batch_held", 1, o + 1, err)))
        return -1;
    held = PQntuples(res) == 1 && !strcmp(bc_pg_val(res, 0, "held"), "t");
    PQclear(res);
    if (!(res = one(pg, "tenant_reserved", 1, t, err)))
        return -1;
    reserved = bc_pg_int(res, 0, "reserved", 0);
    PQclear(res);
    if (!(res = one(pg, "batch_need", 1, o + 1, err)))
        return -1;
    need = bc_lease_reservation(atoi(limit), bc_pg_int(res, 0, "need", 0));
    live = !strcmp(bc_pg_val(res, 0, "live"), "t");
    PQclear(res);
    /* Oldest first: a batch never jumps ahead of an older one still waiting,
     * even when it alone would fit. */
    if (!(res = one(pg, "older_pending", 2, o, err)))
        return -1;
    older_waits = !strcmp(bc_pg_val(res, 0, "waiting"), "t");
    PQclear(res);
    admit = !scheduled_ahead && !held && !older_waits && live &&
            bc_lease_admits((int)concurrency, reserved, need);
    state = scheduled_ahead ? "scheduled" : admit ? "admitted" : "pending";
    if (!scheduled_ahead && !admit && !held)
        why = !live ? "region" : "concurrency";
    const char *a[] = { id, state, why };
    if (!(res = one(pg, "batch_set_state", 3, a, err)))
        return -1;
    PQclear(res);
    snprintf(slots, sizeof slots, "%d", need);
    if (admit && !(*rel = open_window(api, pg, id, slots, region, err)))
        return -1;
    return 0;
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
    ok = admit_or_wait(api, pg, who->tenant_id, concurrency, id, limit, region, ahead, &rel,
                       err) == 0 &&
         audit(pg, who, "batch.send", id, NULL, err) == 0;
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
    if (!(res = one(pg, "batch_requeue", 2, p, err)))
        goto out;
    PQclear(res);
    res = NULL;
    if (!was_admitted) {
        if (admit_or_wait(api, pg, who->tenant_id, concurrency, id, limit, region, 0, &rel,
                          err) < 0)
            goto out;
    } else if (!paused) {
        /* Admitted: release the re-queued recipients into its window now. */
        char topic[160];
        bc_kafka_topic(topic, sizeof topic, api->topic_prefix, "jobs", region);
        const char *q[] = { id, BC_WINDOW_MULTIPLE, topic };
        if (!(rel = one(pg, "release", 3, q, err)))
            goto out;
    }
    if (audit(pg, who, "batch.retry", id, NULL, err) < 0)
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
    if (!(res = one(pg, "batch_list", 4, p, err))) {
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
    if (!(res = one(pg, "batch_page", 4, p, err))) {
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
