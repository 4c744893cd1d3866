#include "bc_reconcile.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_credits.h"
#include "bc_kafka.h"
#include "bc_sql.h"

const bc_pg_stmt bc_reconcile_stmts[] = {
    /* Leases of the region whose holder stopped renewing, with their call.
     * $1 region */
    { "rc_expired",
      "SELECT c.id, c.batch_id, c.tenant_id, c.status, c.to_number, c.carrier_call_id,"
      "       extract(epoch FROM c.created_at)::bigint AS created_s, l.slot, l.token"
      "  FROM leases l JOIN calls c ON c.id = l.call_id JOIN batches b ON b.id = l.batch_id"
      " WHERE b.region = $1 AND l.call_id IS NOT NULL AND l.expires_at < now()"
      "   AND call_status_rank(c.status) < 9"
      " ORDER BY l.expires_at LIMIT 50" },
    /* The take-over: a new fencing token for the lease and its call, only
     * while the old one is current. $1 batch $2 slot $3 token $4 holder
     * $5 ttl s */
    { "rc_take",
      "WITH l AS (UPDATE leases SET token = nextval('lease_token_seq'), holder = $4,"
      "                  expires_at = now() + make_interval(secs => $5::int)"
      "            WHERE batch_id = $1 AND slot = $2::int AND token = $3::bigint"
      "           RETURNING token, call_id)"
      " UPDATE calls SET lease_token = l.token FROM l WHERE calls.id = l.call_id"
      " RETURNING calls.lease_token" },
    /* A call the carrier never had: gone, its slot freed, its recipient
     * queued again for the same attempt (cancelled with its batch). $1 call */
    { "rc_abandon",
      "WITH c AS (DELETE FROM calls WHERE id = $1 AND carrier_call_id IS NULL"
      "             AND status IN ('claimed', 'dialing')"
      "           RETURNING id, tenant_id, recipient_id, batch_id, lease_slot,"
      "                     lease_token, hold_cents, price_per_min_cents,"
      "                     NULL::bigint AS cost_cents, NULL::int AS billed_min),"
      /* An abandoned dial gives its credit hold back (bc_credits.h). */
      BC_SQL_CREDITS_SETTLE_CTES("c") ","
      " l AS (UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL FROM c"
      "        WHERE leases.batch_id = c.batch_id AND leases.slot = c.lease_slot"
      "          AND leases.token = c.lease_token RETURNING 1),"
      " r AS (UPDATE recipients SET attempts = attempts - 1,"
      "              status = CASE WHEN (SELECT state FROM batches b"
      "                                   WHERE b.id = c.batch_id) = 'cancelled'"
      "                            THEN 'cancelled' ELSE 'queued' END,"
      "              released = false, last_call_id = NULL, updated_at = now()"
      "         FROM c WHERE recipients.id = c.recipient_id"
      "          AND recipients.last_call_id = $1 RETURNING 1)"
      " SELECT (SELECT count(*) FROM c) AS n" },
    /* Calls of the region not ended that heard nothing for $2 seconds. */
    { "rc_quiet",
      "SELECT c.id, c.batch_id, c.tenant_id, c.status, c.to_number, c.carrier_call_id,"
      "       extract(epoch FROM c.created_at)::bigint AS created_s"
      "  FROM calls c JOIN batches b ON b.id = c.batch_id"
      " WHERE c.ended_at IS NULL AND b.region = $1 AND c.status <> 'claimed'"
      "   AND call_status_rank(c.status) < 9"
      "   AND greatest(c.created_at, c.checked_at)"
      "       < now() - make_interval(secs => $2::int)"
      " ORDER BY c.created_at LIMIT 20" },
    { "rc_checked",
      "UPDATE calls SET checked_at = now() WHERE id = $1" },
    { "rc_sid_known",
      "SELECT 1 FROM calls WHERE carrier_call_id = $1 LIMIT 1" },
    /* A call the carrier has: its id, and 'queued' if we had not seen it
     * sent. $1 call $2 carrier's id */
    { "rc_adopt",
      "UPDATE calls SET carrier_call_id = $2,"
      "       status = CASE WHEN status IN ('claimed', 'dialing') THEN 'queued' ELSE status END"
      " WHERE id = $1 AND carrier_call_id IS NULL" },
    /* Hang-ups to send (again): open calls of the region asked to hang up
     * (a cancel with hang-up, the voicemail policy on a machine) that the
     * carrier has, whose last command is older than $2 seconds or was
     * never sent (no sid then). Each is marked sent and its command
     * written to the outbox (sql/0033). $1 region $2 seconds $3 the
     * region's carrier events */
    { "rc_hangups",
      "WITH c AS (UPDATE calls SET hangup_sent_at = now()"
      "            WHERE id IN (SELECT c.id FROM calls c JOIN batches b ON b.id = c.batch_id"
      "                          WHERE c.ended_at IS NULL AND b.region = $1"
      "                            AND c.hangup_requested_at IS NOT NULL"
      "                            AND c.carrier_call_id IS NOT NULL"
      "                            AND call_status_rank(c.status) < 9"
      "                            AND coalesce(c.hangup_sent_at, '-infinity')"
      "                                < now() - make_interval(secs => $2::int)"
      "                          LIMIT 100)"
      "           RETURNING id, batch_id, tenant_id, carrier_call_id)"
      " INSERT INTO outbox (topic, key, payload) "
      BC_SQL_HANGUP_ROWS("c", "$3")
      " RETURNING id, topic, key, payload" },
    { 0, 0 },
};

struct bc_reconcile {
    bc_ctx *ctx;
    bc_pg *pg;
    bc_publisher *pub;
    CURL *curl;
    char base[512], userpwd[256], holder[64], region[16], ttl[16], topic[160];
    bc_metric *m_abandoned, *m_adopted, *m_ended, *m_taken, *m_lookup_failed, *m_quiet;
    bc_metric *m_hangups;
};

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t len = size * n;
    char *q;

    if (b->n + len > (8u << 20))
        return 0;   /* a carrier answer this large is not one we want */
    if (!(q = realloc(b->p, b->n + len + 1)))
        return 0;
    b->p = q;
    memcpy(b->p + b->n, p, len);
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

/* GET a carrier resource; returns its JSON or NULL. */
static json_t *carrier_get(bc_reconcile *r, const char *url)
{
    buf b = { 0 };
    long status = 0;
    json_t *j = NULL;

    curl_easy_reset(r->curl);
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    curl_easy_setopt(r->curl, CURLOPT_USERPWD, r->userpwd);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(r->curl) == CURLE_OK &&
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        status == 200 && b.p)
        j = json_loads(b.p, 0, NULL);
    free(b.p);
    return j;
}

bc_reconcile *bc_reconcile_new(bc_ctx *ctx, bc_pg *pg, bc_publisher *pub, bc_err *err)
{
    bc_reconcile *r = calloc(1, sizeof *r);
    const bc_config *c = ctx->cfg;

    if (!r || !(r->curl = curl_easy_init())) {
        free(r);
        bc_err_set(err, "reconcile: cannot create a curl handle");
        return NULL;
    }
    r->ctx = ctx;
    r->pg = pg;
    r->pub = pub;
    snprintf(r->base, sizeof r->base, "%s/2010-04-01/Accounts/%s",
             bc_config_str(c, "carrier-url"), bc_config_str(c, "carrier-account-sid"));
    snprintf(r->userpwd, sizeof r->userpwd, "%s:%s", bc_config_str(c, "carrier-account-sid"),
             bc_config_str(c, "carrier-auth-token"));
    snprintf(r->region, sizeof r->region, "%s", bc_config_str(c, "region"));
    snprintf(r->holder, sizeof r->holder, "scheduler:%s", r->region);
    snprintf(r->ttl, sizeof r->ttl, "%ld", bc_config_int(c, "lease-ttl"));
    bc_kafka_topic(r->topic, sizeof r->topic, bc_config_str(c, "topic-prefix"),
                   "carrier-events", r->region);
#define M(f, name, help) r->f = bc_metrics_get(ctx->metrics, BC_COUNTER, name, help, NULL, NULL, 0)
    M(m_taken, "reconcile_leases_taken_over_total", "Expired leases taken over with a new token");
    M(m_abandoned, "reconcile_attempts_requeued_total",
      "Attempts the carrier never saw, queued again for the same attempt");
    M(m_adopted, "reconcile_calls_adopted_total", "Calls found at the carrier by number");
    M(m_quiet, "reconcile_quiet_calls_checked_total",
      "Calls asked about because the carrier had been silent too long");
    M(m_lookup_failed, "reconcile_lookups_failed_total",
      "Carrier lookups that failed; the call is asked about again later");
    M(m_ended, "reconcile_calls_ended_total", "Final statuses fetched from the carrier");
    M(m_hangups, "reconcile_hangups_sent_total",
      "Hang-up commands sent by the sweep: a call's first after its sid was found, or again");
#undef M
    return r;
}

void bc_reconcile_free(bc_reconcile *r)
{
    if (!r)
        return;
    curl_easy_cleanup(r->curl);
    free(r);
}

static int terminal(const char *st)
{
    return st && (!strcmp(st, "completed") || !strcmp(st, "busy") || !strcmp(st, "no-answer") ||
                  !strcmp(st, "failed") || !strcmp(st, "canceled"));
}

/* Publishes the carrier's final word as if its callback had come. */
static void publish_end(bc_reconcile *r, const PGresult *row, const char *sid, json_t *res)
{
    const char *st = json_string_value(json_object_get(res, "status"));
    const char *dur = json_string_value(json_object_get(res, "duration"));
    /* Who answered (the call resource's answered_by), so a voicemail found
     * here is a voicemail as its callback would have said. */
    const char *by = json_string_value(json_object_get(res, "answered_by"));
    json_t *ev = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s*}", "v", 1,
                           "call_id", bc_pg_val(row, 0, "id"),
                           "batch_id", bc_pg_val(row, 0, "batch_id"),
                           "tenant_id", bc_pg_val(row, 0, "tenant_id"), "carrier_call_id", sid,
                           "status", st, "duration", dur ? atoi(dur) : 0, "sequence", 99,
                           "source", "reconcile",
                           "answered_by", by && strlen(by) <= 32 ? by : NULL);
    char *payload = json_dumps(ev, JSON_COMPACT);
    bc_err err = { "" };

    if (payload && bc_publisher_sync(r->pub, r->topic, bc_pg_val(row, 0, "id"), payload, 10000,
                                     &err) == 0)
        bc_metric_add(r->m_ended, 1);
    else
        bc_log(r->ctx->log, BC_WARN, "reconcile.publish_failed", "{s:s}", "error", err.msg);
    free(payload);
    json_decref(ev);
}

/* Finds the carrier's call to this number placed since our claim: 0 with
 * *found set or NULL (the carrier has none), -1 if the carrier could not be
 * asked. Only a clean "none" may requeue the attempt. */
static int find_by_number(bc_reconcile *r, const char *to, long long since_s, json_t **found)
{
    char url[700], *enc = curl_easy_escape(r->curl, to, 0);
    json_t *list, *c, *calls;
    size_t i;

    *found = NULL;
    snprintf(url, sizeof url, "%s/Calls.json?To=%s", r->base, enc ? enc : "");
    curl_free(enc);
    if (!(list = carrier_get(r, url)))
        return -1;
    if (!json_is_array(calls = json_object_get(list, "calls"))) {
        json_decref(list);
        return -1;
    }
    json_array_foreach(calls, i, c) {
        struct tm tm = { 0 };
        const char *d = json_string_value(json_object_get(c, "date_created"));
        /* A few seconds of slack for clock skew between us and the carrier. */
        const char *sid = json_string_value(json_object_get(c, "sid"));
        const char *p[] = { sid };
        PGresult *known;
        int mine;

        if (!sid || !d || !strptime(d, "%a, %d %b %Y %H:%M:%S", &tm) || timegm(&tm) < since_s - 5)
            continue;
        /* An earlier attempt's call to the same number is not this one. */
        if (!(known = bc_pg_exec(r->pg, "rc_sid_known", 1, p, NULL))) {
            json_decref(list);
            return -1;
        }
        mine = PQntuples(known) == 0;
        PQclear(known);
        if (mine) {
            *found = json_incref(c);
            break;
        }
    }
    json_decref(list);
    return 0;
}

/* Records the carrier's sid found for an attempt whose accepted dial was
 * never written (p: call id, sid). */
static void adopt(bc_reconcile *r, const char *const *p)
{
    bc_err err = { "" };

    if (bc_pg_run(r->pg, "rc_adopt", 2, p, &err) < 0) {
        bc_log(r->ctx->log, BC_WARN, "reconcile.adopt_failed", "{s:s,s:s}", "call_id", p[0],
               "error", err.msg);
        return;
    }
    bc_metric_add(r->m_adopted, 1);
}

static void settle(bc_reconcile *r, PGresult *row)
{
    const char *id = bc_pg_val(row, 0, "id"), *sid = bc_pg_val(row, 0, "carrier_call_id");
    const char *st = bc_pg_val(row, 0, "status");
    json_t *c = NULL;
    char url[700];
    PGresult *res;

    if (!sid && strcmp(st, "claimed")) {
        /* Dialing, answer unknown: did the carrier get it? */
        if (find_by_number(r, bc_pg_val(row, 0, "to_number"), bc_pg_int(row, 0, "created_s", 0),
                           &c) < 0) {
            /* Unknown either way: keep the lease; it lapses and we ask again. */
            bc_metric_add(r->m_lookup_failed, 1);
            return;
        }
        if (c) {
            sid = json_string_value(json_object_get(c, "sid"));
            const char *p[] = { id, sid };
            adopt(r, p);
        }
    }
    if (!sid) {
        /* The carrier never saw it: give the attempt back, same number. */
        const char *p[] = { id };
        if ((res = bc_pg_exec(r->pg, "rc_abandon", 1, p, NULL))) {
            if (bc_pg_int(res, 0, "n", 0) > 0) {
                bc_metric_add(r->m_abandoned, 1);
                bc_log(r->ctx->log, BC_INFO, "reconcile.requeued", "{s:s,s:s}", "call_id", id,
                       "batch_id", bc_pg_val(row, 0, "batch_id"));
            }
            PQclear(res);
        }
        return;
    }
    if (!c) {
        snprintf(url, sizeof url, "%s/Calls/%s.json", r->base, sid);
        c = carrier_get(r, url);
    }
    if (c && terminal(json_string_value(json_object_get(c, "status"))))
        publish_end(r, row, sid, c);
    /* Live at the carrier: the lease stays ours until its final callback. */
    json_decref(c);
}

/* A one-row copy of row i of res: settle() and publish_end() read row 0. */
static PGresult *row_view(const PGresult *res, int i)
{
    PGresult *row = PQcopyResult(res, PG_COPYRES_ATTRS);

    for (int c = 0; row && c < PQnfields(res); c++)
        PQsetvalue(row, 0, c, PQgetisnull(res, i, c) ? NULL : PQgetvalue(res, i, c),
                   PQgetisnull(res, i, c) ? -1 : PQgetlength(res, i, c));
    return row;
}

int bc_reconcile_quiet(bc_reconcile *r, long quiet_s)
{
    char q[24];
    const char *p[] = { r->region, q };
    PGresult *res, *row;
    bc_err err = { "" };
    int n = 0;

    snprintf(q, sizeof q, "%ld", quiet_s);
    if (!(res = bc_pg_exec(r->pg, "rc_quiet", 2, p, NULL)))
        return 0;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = bc_pg_val(res, i, "id"), *sid = bc_pg_val(res, i, "carrier_call_id");
        const char *one[] = { id };
        json_t *c = NULL;
        char url[700];

        if (!(row = row_view(res, i)))
            break;
        if (!sid) {
            /* Its accepted dial was never recorded: find it by number. */
            if (find_by_number(r, bc_pg_val(res, i, "to_number"),
                               bc_pg_int(res, i, "created_s", 0), &c) == 0 && c) {
                sid = json_string_value(json_object_get(c, "sid"));
                const char *a[] = { id, sid };
                adopt(r, a);
            }
        } else {
            snprintf(url, sizeof url, "%s/Calls/%s.json", r->base, sid);
            c = carrier_get(r, url);
        }
        if (!c)
            bc_metric_add(r->m_lookup_failed, 1);
        else if (terminal(json_string_value(json_object_get(c, "status"))))
            publish_end(r, row, sid, c);
        bc_metric_add(r->m_quiet, 1);
        json_decref(c);
        PQclear(row);
        /* Unmarked, the call is looked at again next sweep: a repeat. */
        if (bc_pg_run(r->pg, "rc_checked", 1, one, &err) < 0)
            bc_log(r->ctx->log, BC_WARN, "reconcile.mark_failed", "{s:s,s:s}", "call_id", id,
                   "error", err.msg);
        n++;
    }
    PQclear(res);
    return n;
}

int bc_reconcile_run(bc_reconcile *r)
{
    const char *p[] = { r->region };
    PGresult *res = bc_pg_exec(r->pg, "rc_expired", 1, p, NULL), *one;
    int n = 0;

    if (!res)
        return 0;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *t[] = { bc_pg_val(res, i, "batch_id"), bc_pg_val(res, i, "slot"),
                            bc_pg_val(res, i, "token"), r->holder, r->ttl };
        /* Fence first: from here the old holder's writes are refused. */
        if (!(one = bc_pg_exec(r->pg, "rc_take", 5, t, NULL)))
            continue;
        int taken = PQntuples(one) == 1;
        PQclear(one);
        if (!taken)
            continue;
        bc_metric_add(r->m_taken, 1);
        bc_log(r->ctx->log, BC_INFO, "lease.taken_over", "{s:s,s:s,s:s}", "call_id",
               bc_pg_val(res, i, "id"), "batch_id", bc_pg_val(res, i, "batch_id"),
               "status", bc_pg_val(res, i, "status"));
        PGresult *row = row_view(res, i);
        if (!row)
            break;
        settle(r, row);
        PQclear(row);
        n++;
    }
    PQclear(res);
    return n;
}

int bc_reconcile_hangups(bc_reconcile *r, long again_s)
{
    char a[24];
    const char *p[] = { r->region, a, r->topic };
    bc_err err = { "" };
    PGresult *res;
    int n;

    snprintf(a, sizeof a, "%ld", again_s);
    if (!(res = bc_pg_exec(r->pg, "rc_hangups", 3, p, &err))) {
        bc_log(r->ctx->log, BC_WARN, "reconcile.hangups_failed", "{s:s}", "error", err.msg);
        return 0;
    }
    if ((n = PQntuples(res)) > 0) {
        bc_metric_add(r->m_hangups, n);
        bc_log(r->ctx->log, BC_INFO, "reconcile.hangups_sent", "{s:i}", "calls", n);
        /* Durable in the outbox already: a publish that fails is relayed. */
        if (bc_publisher_outbox_rows(r->pub, res, &err) < 0)
            bc_log(r->ctx->log, BC_WARN, "publish.deferred", "{s:s}", "error", err.msg);
    }
    PQclear(res);
    return n;
}
