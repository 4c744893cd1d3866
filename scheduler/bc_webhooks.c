#include "bc_webhooks.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bc_crypto.h"
#include "bc_kafka.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_url.h"

#define MAX_BATCH 500          /* events per insert statement */
#define CLAIM_MARGIN_MS 5000   /* a claim outlives its request by this much */
#define RELAY_AFTER_S 3        /* a dead-letter row not acknowledged by then is sent again */

typedef struct xfer xfer;
struct xfer {
    xfer *prev, *next;         /* in flight */
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    long long id, token, started_us;
    char errbuf[CURL_ERROR_SIZE];
    int blocked;               /* the address resolved is not public */
};

struct bc_webhooks {
    bc_ctx *ctx;
    bc_pg *pg;
    bc_kafka *consumer;
    bc_publisher *pub;
    CURLM *multi;
    pthread_t thread;
    int started;
    atomic_int stop;           /* set by bc_webhooks_free */
    char dlq_topic[160];
    char max_attempts[16], backoff_ms[16], backoff_max_ms[16], claim_ms[16];
    long timeout_ms, concurrency, poll_ms;
    int allow_private;         /* connect to any address (local receivers) */
    int inflight;
    xfer *sends;
    json_t *outcomes;          /* [{"id","t","ok","code","err"}] not yet written */
    long long next_claim, next_relay, next_gauge;
    long long intake_at, record_at;   /* after a database error: not before */
    bc_metric *m_delivered, *m_failed, *m_error, *m_seconds, *m_dead, *m_consumed,
              *m_queued, *m_pending, *m_inflight, *m_rejected, *m_claims;
};

static const bc_pg_stmt stmts[] = {
    BC_PG_INCLUDE(bc_publisher_stmts),
    /* One row per (subscribed, enabled endpoint of the event's tenant, event)
     * for a batch of call-result events: call.completed or call.failed for
     * each call end (v3 call.ended, or v2), call.report and call.recording
     * for those v3 events, and batch.completed when the event was its
     * recipient's last and no recipient of the batch is left to call. An endpoint only gets
     * events that ended after it was created. Event ids are derived from the
     * call (or the batch and its retry round), so a redelivered event finds
     * its row already there. Events of tenants without an enabled endpoint
     * are dropped first, and a batch's recipients are counted
     * (batch_completed_data, sql/0014) only once none is left active (found
     * by batch_id): counted for every final event of every tenant, this
     * statement took 870 ms a call in B5.
     * $1 call-result events, each after a U+001E (enqueue) */
    { "webhook_enqueue",
      "WITH e AS (SELECT x, x->>'call_id' AS call_id, x->>'batch_id' AS batch_id,"
      "                  x->>'tenant_id' AS tenant_id,"
      "                  (CASE WHEN x->>'schema' = 'batchcall.call-result/v3' THEN x->>'at'"
      "                        ELSE x->>'ended_at' END)::timestamptz AS ended_at,"
      /* v3 says what happened in event. A call end is told by its v3
       * call.ended, which carries every v2 field, and by its v2 twin when
       * v2 goes out (BC_CALL_RESULT_V2, written and published first): both
       * make the same call.completed or call.failed, with the same event
       * id and data, so the first one stored is the one kept. v1 always
       * has a v3 twin and words a voicemail as agent_hangup: not read. */
      "                  CASE x->>'schema' WHEN 'batchcall.call-result/v2' THEN 'end'"
      "                       WHEN 'batchcall.call-result/v3'"
      "                       THEN CASE x->>'event' WHEN 'call.ended' THEN 'end'"
      "                                 ELSE x->>'event' END END AS kind"
      "             FROM (SELECT t::jsonb AS x FROM string_to_table($1, chr(30)) AS t"
      "                    WHERE t <> '') AS j"
      "            WHERE EXISTS (SELECT 1 FROM webhooks w"
      "                           WHERE w.tenant_id = x->>'tenant_id' AND w.enabled)),"
      " ev AS (SELECT 'evt_' || e.call_id AS event_id,"
      "               CASE WHEN e.x->>'carrier_status' = 'completed' THEN 'call.completed'"
      "                    ELSE 'call.failed' END AS type, e.tenant_id, e.ended_at,"
      "               jsonb_build_object('call_id', e.x->'call_id', 'batch_id', e.x->'batch_id',"
      "                 'recipient_id', e.x->'recipient_id', 'attempt', e.x->'attempt',"
      "                 'status', e.x->'carrier_status', 'end_reason', e.x->'end_reason',"
      "                 'duration_s', e.x->'duration_s', 'to_number', e.x->'to_number',"
      "                 'from_number', e.x->'from_number',"
      "                 'recipient_status', e.x->'recipient_status', 'final', e.x->'final',"
      "                 'ended_at', e.x->'ended_at') AS data"
      "          FROM e WHERE e.kind = 'end'"
      /* A report replaced by another is a new event; the same report
       * told twice is one. A call's recording is told once. */
      "        UNION ALL"
      "        SELECT 'evt_' || e.call_id || '_report_' || left(md5((e.x->'report')::text), 16),"
      "               'call.report', e.tenant_id, e.ended_at,"
      "               jsonb_build_object('call_id', e.x->'call_id', 'batch_id', e.x->'batch_id',"
      "                 'recipient_id', e.x->'recipient_id', 'agent_id', e.x->'agent_id',"
      "                 'attempt', e.x->'attempt', 'status', e.x->'carrier_status',"
      "                 'disposition', e.x->'disposition', 'summary', e.x->'summary',"
      "                 'transcript', e.x->'report'->'transcript', 'data', e.x->'report'->'data',"
      "                 'reported_at', e.x->'at')"
      "          FROM e WHERE e.kind = 'call.report'"
      "        UNION ALL"
      "        SELECT 'evt_' || e.call_id || '_recording', 'call.recording', e.tenant_id,"
      "               e.ended_at,"
      "               jsonb_build_object('call_id', e.x->'call_id', 'batch_id', e.x->'batch_id',"
      "                 'recipient_id', e.x->'recipient_id', 'agent_id', e.x->'agent_id',"
      "                 'attempt', e.x->'attempt', 'recording_url', e.x->'recording_url',"
      "                 'duration_s', e.x->'recording_duration_s', 'recorded_at', e.x->'at')"
      "          FROM e WHERE e.kind = 'call.recording'"
      "        UNION ALL"
      "        (SELECT DISTINCT ON (b.id) 'evt_' || b.id || '_' || b.retry_count,"
      "                'batch.completed', b.tenant_id, e.ended_at,"
      "                batch_completed_data(b.id, e.x->'ended_at')"
      "           FROM e JOIN batches b ON b.id = e.batch_id AND b.tenant_id = e.tenant_id"
      "          WHERE e.kind = 'end' AND e.x->'final' = 'true'::jsonb"
      "            AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.batch_id = b.id"
      "                            AND r.status IN ('queued', 'dispatched', 'started') OFFSET 0)"
      "          ORDER BY b.id, e.ended_at DESC))"
      " INSERT INTO webhook_deliveries (webhook_id, tenant_id, event_id, event_type, payload)"
      " SELECT w.id, w.tenant_id, ev.event_id, ev.type,"
      "        jsonb_build_object('id', ev.event_id, 'type', ev.type,"
      "                           'created_at', rfc3339(ev.ended_at), 'data', ev.data)::text"
      "   FROM ev JOIN webhooks w ON w.tenant_id = ev.tenant_id AND w.enabled"
      "    AND ev.type = ANY (w.events) AND date_trunc('second', w.created_at) <= ev.ended_at"
      " ON CONFLICT (webhook_id, event_id) DO NOTHING" },
    /* Due deliveries of enabled endpoints, oldest first; each claim moves
     * the row's next try past the request's timeout, so a sender that dies
     * leaves it to be claimed again then. $1 how many $2 claim ms */
    { "webhook_claim",
      "WITH s AS (SELECT d.id FROM webhook_deliveries d"
      "            WHERE d.status = 'pending' AND d.next_attempt_at <= now()"
      "              AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id AND w.enabled)"
      "            ORDER BY d.next_attempt_at LIMIT $1::int FOR UPDATE OF d SKIP LOCKED)"
      " UPDATE webhook_deliveries d SET claim_token = nextval('webhook_claim_seq'),"
      "        next_attempt_at = now() + make_interval(secs => $2::int / 1000.0)"
      "   FROM s, webhooks w WHERE d.id = s.id AND w.id = d.webhook_id"
      " RETURNING d.id, d.claim_token, d.attempts, d.event_id, d.event_type, d.payload,"
      "           w.url, w.secret" },
    /* The outcomes of finished tries, only where the claim is still ours:
     * delivered, pending again after base * 2^(tries - 1) (+-10%, capped),
     * or dead after the last try, with its dead letter in the outbox.
     * $1 [{"id","t","ok","code","err"}] $2 max tries $3 base ms $4 cap ms
     * $5 dead-letter topic */
    { "webhook_record",
      "WITH r AS (SELECT r.* FROM list_rows($1::jsonb) x, jsonb_to_record(x)"
      "             AS r(id bigint, t bigint, ok bool, code int, err text)),"
      " u AS (UPDATE webhook_deliveries d SET attempts = d.attempts + 1,"
      "        status = CASE WHEN r.ok THEN 'delivered'"
      "                      WHEN d.attempts + 1 >= $2::int THEN 'dead' ELSE 'pending' END,"
      "        next_attempt_at = CASE WHEN r.ok OR d.attempts + 1 >= $2::int THEN now()"
      "          ELSE now() + make_interval(secs => least($4::float8,"
      "                 $3::float8 * power(2, d.attempts) * (0.9 + 0.2 * random())) / 1000.0) END,"
      "        claim_token = NULL, last_status = r.code, last_error = r.err,"
      "        delivered_at = CASE WHEN r.ok THEN now() END, updated_at = now()"
      "       FROM r WHERE d.id = r.id AND d.claim_token = r.t AND d.status = 'pending'"
      "      RETURNING d.id, d.webhook_id, d.tenant_id, d.event_id, d.event_type, d.status,"
      "                d.attempts, d.last_status, d.last_error, d.payload)"
      " INSERT INTO outbox (topic, key, payload)"
      " SELECT $5, u.webhook_id, json_build_object('delivery_id', 'whd_' || u.id,"
      "        'webhook_id', u.webhook_id, 'tenant_id', u.tenant_id, 'event_id', u.event_id,"
      "        'event_type', u.event_type, 'attempts', u.attempts,"
      "        'last_status_code', u.last_status, 'last_error', u.last_error,"
      "        'dead_at', rfc3339(now()), 'event', u.payload::json)::text"
      "   FROM u WHERE u.status = 'dead'"
      " RETURNING id, topic, key, payload" },
    /* Claims handed back unanswered at shutdown: due again at once.
     * $1 [{"id","t"}] */
    { "webhook_unclaim",
      "UPDATE webhook_deliveries d SET claim_token = NULL, next_attempt_at = now()"
      "  FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, t bigint)"
      " WHERE d.id = r.id AND d.claim_token = r.t AND d.status = 'pending'" },
    /* Dead letters this process (or one that died) did not see acknowledged. */
    { "webhook_dlq_stragglers",
      "SELECT id, topic, key, payload FROM outbox WHERE topic = $1"
      "   AND created_at < now() - make_interval(secs => $2::int)"
      " ORDER BY id LIMIT 100" },
    { "webhook_pending",
      "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'" },
    { 0, 0 },
};

static void wr_log(bc_webhooks *w, bc_level lvl, const char *ev, const char *what, const bc_err *err)
{
    bc_log(w->ctx->log, lvl, ev, "{s:s,s:s}", "what", what, "error", bc_err_msg(err));
}

/* ---- intake: call-results -> webhook_deliveries ------------------------ */

/* Whether an event can go to the database: it must fit in a text
 * parameter. The database parses it and reads what it needs; one it cannot
 * read fails the batch, which is then tried event by event (intake). */
static int event_ok(const rd_kafka_message_t *m)
{
    return m->payload && m->len > 0 && !memchr(m->payload, 0, m->len);
}

/* Inserts the deliveries of the events msgs[i] for each i with ok[i]
 * set, in one statement; 0 or -1. Their payloads go as they came, each
 * after a record separator (U+001E, as in RFC 7464), which no JSON text
 * holds unescaped: the database parses each on its own. Parsing them here
 * to check them and dumping them again into one array was two thirds of
 * the scheduler's CPU in B2 (bench/RESULTS.md). */
static int enqueue(bc_webhooks *w, rd_kafka_message_t *const *msgs, const int *ok, int n,
                   bc_err *err)
{
    size_t len = 0, at = 0;
    char *doc;
    PGresult *res;

    for (int i = 0; i < n; i++)
        len += ok[i] ? msgs[i]->len + 1 : 0;
    if (!(doc = malloc(len + 1))) {
        bc_err_set(err, "webhook events: out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        doc[at++] = '\x1e';
        memcpy(doc + at, msgs[i]->payload, msgs[i]->len);
        at += msgs[i]->len;
    }
    doc[at] = '\0';
    res = bc_pg_exec(w->pg, "webhook_enqueue", 1, (const char *[]){ doc }, err);
    free(doc);
    if (!res)
        return -1;
    bc_metric_add(w->m_queued, atof(PQcmdTuples(res)));
    PQclear(res);
    return 0;
}

/* Consumes up to MAX_BATCH events (waiting up to wait_ms for the first),
 * enqueues them in one statement and only then stores their offsets.
 * Returns how many were consumed. */
static int intake(bc_webhooks *w, int wait_ms)
{
    rd_kafka_message_t *msgs[MAX_BATCH], *m;
    int ok_ev[MAX_BATCH] = { 0 };
    bc_err err = { "" };
    int n = 0, good = 0, ok = 1;

    if (bc_now_ms() < w->intake_at) {
        if (wait_ms > 0)
            usleep((useconds_t)wait_ms * 1000);
        return 0;
    }
    while (n < MAX_BATCH && (m = bc_kafka_consume(w->consumer, n ? 0 : wait_ms))) {
        msgs[n] = m;
        if ((ok_ev[n] = event_ok(m)))
            good++;
        else
            bc_log(w->ctx->log, BC_WARN, "webhook.event_malformed", "{s:i,s:I}", "partition",
                   (int)m->partition, "offset", (json_int_t)m->offset);
        n++;
    }
    if (good > 0 && enqueue(w, msgs, ok_ev, n, &err) < 0) {
        ok = 0;
        if (bc_pg_alive(w->pg)) {
            /* The database answered but refused the batch: find the event
             * it refuses, so one bad event cannot hold back the rest. */
            ok = 1;
            for (int i = 0; i < n && ok; i++) {
                if (!ok_ev[i])
                    continue;
                if (enqueue(w, &msgs[i], &ok_ev[i], 1, &err) < 0) {
                    if (bc_pg_alive(w->pg))
                        bc_log(w->ctx->log, BC_WARN, "webhook.event_rejected",
                               "{s:i,s:I,s:s}", "partition", (int)msgs[i]->partition,
                               "offset", (json_int_t)msgs[i]->offset, "error", err.msg);
                    else
                        ok = 0;
                }
            }
        }
    }
    if (ok) {
        for (int i = 0; i < n; i++)
            bc_kafka_store(w->consumer, msgs[i]);
        bc_metric_add(w->m_consumed, n);
    } else {
        /* Nothing is stored: read them again once the database is back. */
        wr_log(w, BC_WARN, "webhook.enqueue_failed", "insert deliveries", &err);
        bc_kafka_rewind(w->consumer, msgs, n);
        w->intake_at = bc_now_ms() + 1000;
    }
    for (int i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    return ok ? n : 0;
}

/* ---- sending ------------------------------------------------------------ */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static struct curl_slist *header(struct curl_slist *h, const char *name, const char *val)
{
    char line[600];

    snprintf(line, sizeof line, "%s: %s", name, val);
    return curl_slist_append(h, line);
}

/* Opens a connection only to a public address: the URL was checked when
 * it was registered, but a name can resolve anywhere by the time of the
 * delivery (and to a new place on every try). */
static curl_socket_t open_public(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    xfer *s = ud;

    if (purpose == CURLSOCKTYPE_IPCXN && !bc_addr_public(&a->addr)) {
        s->blocked = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* Starts one signed POST for a claimed row. 0 or -1 (the claim then lapses
 * and the row is tried again later). */
static int start(bc_webhooks *w, const PGresult *res, int i)
{
    xfer *s = calloc(1, sizeof *s);
    const char *payload = bc_pg_val(res, i, "payload");
    char ts[24], sig[BC_SHA256_HEX], sighdr[80], attempt[16], did[32], *signed_text = NULL;
    size_t len = strlen(payload);

    if (!s || !(s->body = strdup(payload)) || !(s->easy = curl_easy_init()))
        goto fail;
    s->id = bc_pg_int(res, i, "id", 0);
    s->token = bc_pg_int(res, i, "claim_token", 0);
    /* The signature covers "<timestamp>.<body>": a receiver can refuse old
     * timestamps, so a captured request cannot be replayed later. */
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    if (!(signed_text = malloc(strlen(ts) + 1 + len + 1)))
        goto fail;
    sprintf(signed_text, "%s.%s", ts, payload);
    if (bc_hmac_sha256_hex(bc_pg_val(res, i, "secret"), signed_text, strlen(signed_text), sig) < 0)
        goto fail;
    free(signed_text);
    signed_text = NULL;
    snprintf(sighdr, sizeof sighdr, "v1=%s", sig);
    snprintf(attempt, sizeof attempt, "%lld", bc_pg_int(res, i, "attempts", 0) + 1);
    snprintf(did, sizeof did, "whd_%lld", s->id);
    s->hdrs = header(s->hdrs, "Content-Type", "application/json");
    s->hdrs = header(s->hdrs, "User-Agent", "batchcall-webhooks/1");
    s->hdrs = header(s->hdrs, "X-Batchcall-Event-Id", bc_pg_val(res, i, "event_id"));
    s->hdrs = header(s->hdrs, "X-Batchcall-Event-Type", bc_pg_val(res, i, "event_type"));
    s->hdrs = header(s->hdrs, "X-Batchcall-Delivery-Id", did);
    s->hdrs = header(s->hdrs, "X-Batchcall-Attempt", attempt);
    s->hdrs = header(s->hdrs, "X-Batchcall-Timestamp", ts);
    s->hdrs = header(s->hdrs, "X-Batchcall-Signature", sighdr);
    /* No "Expect: 100-continue" round trip before the body. */
    s->hdrs = curl_slist_append(s->hdrs, "Expect:");
    curl_easy_setopt(s->easy, CURLOPT_URL, bc_pg_val(res, i, "url"));
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, w->timeout_ms);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, w->timeout_ms < 5000 ? w->timeout_ms : 5000L);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    /* A redirect is an answer we do not follow: it counts as a failure. */
    curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L);
    if (!w->allow_private) {
        curl_easy_setopt(s->easy, CURLOPT_OPENSOCKETFUNCTION, open_public);
        curl_easy_setopt(s->easy, CURLOPT_OPENSOCKETDATA, s);
    }
    if (curl_multi_add_handle(w->multi, s->easy) != CURLM_OK)
        goto fail;
    s->started_us = bc_now_us();
    s->next = w->sends;
    if (w->sends)
        w->sends->prev = s;
    w->sends = s;
    w->inflight++;
    return 0;
fail:
    free(signed_text);
    if (s) {
        curl_easy_cleanup(s->easy);
        curl_slist_free_all(s->hdrs);
        free(s->body);
        free(s);
    }
    bc_log(w->ctx->log, BC_WARN, "webhook.start_failed", "{s:I}", "delivery_id",
           (json_int_t)bc_pg_int(res, i, "id", 0));
    return -1;
}

/* Claims as many due deliveries as there is room for; -1 on a database
 * error. */
static int claim(bc_webhooks *w)
{
    char n[16];
    bc_err err = { "" };
    PGresult *res;

    if (w->inflight >= w->concurrency)
        return 0;
    snprintf(n, sizeof n, "%ld", w->concurrency - w->inflight);
    const char *p[] = { n, w->claim_ms };
    if (!(res = bc_pg_exec(w->pg, "webhook_claim", 2, p, &err))) {
        wr_log(w, BC_WARN, "webhook.claim_failed", "claim deliveries", &err);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++)
        start(w, res, i);
    PQclear(res);
    /* The gauge before the count: a scrape that sees this pass counted
     * sees what it left in flight (tests wait on the two). */
    bc_metric_set(w->m_inflight, w->inflight);
    bc_metric_add(w->m_claims, 1);
    return 0;
}

static void unlink_xfer(bc_webhooks *w, xfer *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sends = s->next;
    if (s->next)
        s->next->prev = s->prev;
    curl_multi_remove_handle(w->multi, s->easy);
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->hdrs);
    free(s->body);
    free(s);
    w->inflight--;
}

static void finish(bc_webhooks *w, CURL *easy, CURLcode code)
{
    xfer *s = NULL;
    long status = 0;
    int ok;
    char why[CURL_ERROR_SIZE + 64];

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s);
    if (code == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    ok = code == CURLE_OK && status >= 200 && status < 300;
    bc_metric_observe(w->m_seconds, (double)(bc_now_us() - s->started_us) / 1e6);
    bc_metric_add(ok ? w->m_delivered : code == CURLE_OK ? w->m_failed : w->m_error, 1);
    if (code != CURLE_OK && s->blocked)
        snprintf(why, sizeof why, "refused to connect: the url's host is a loopback, private"
                 " or link-local address");
    else if (code != CURLE_OK)
        snprintf(why, sizeof why, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(code));
    else if (!ok)
        snprintf(why, sizeof why, "HTTP %ld", status);
    json_array_append_new(w->outcomes,
                          json_pack("{s:I,s:I,s:b,s:o,s:o}", "id", (json_int_t)s->id, "t",
                                    (json_int_t)s->token, "ok", ok, "code",
                                    status ? json_integer(status) : json_null(), "err",
                                    ok ? json_null() : json_string(why)));
    unlink_xfer(w, s);
}

/* Writes the outcomes gathered so far in one statement; dead letters go to
 * Kafka from the outbox. Kept for the next turn if the write fails. */
static void record(bc_webhooks *w)
{
    char *doc;
    bc_err err = { "" };
    PGresult *res;

    if (json_array_size(w->outcomes) == 0 || bc_now_ms() < w->record_at)
        return;
    if (!(doc = json_dumps(w->outcomes, JSON_COMPACT)))
        return;
    const char *p[] = { doc, w->max_attempts, w->backoff_ms, w->backoff_max_ms, w->dlq_topic };
    res = bc_pg_exec(w->pg, "webhook_record", 5, p, &err);
    free(doc);
    if (!res) {
        wr_log(w, BC_WARN, "webhook.record_failed", "record outcomes", &err);
        w->record_at = bc_now_ms() + 1000;
        return;
    }
    json_array_clear(w->outcomes);
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *dl = json_loads(bc_pg_val(res, i, "payload"), 0, NULL);
        bc_log(w->ctx->log, BC_WARN, "webhook.dead_lettered", "{s:O,s:O,s:O,s:O}",
               "delivery_id", json_object_get(dl, "delivery_id"),
               "webhook_id", json_object_get(dl, "webhook_id"),
               "tenant_id", json_object_get(dl, "tenant_id"),
               "event_id", json_object_get(dl, "event_id"));
        json_decref(dl);
    }
    bc_metric_add(w->m_dead, PQntuples(res));
    bc_publisher_outbox_rows(w->pub, res, NULL);
    PQclear(res);
}

static void perform(bc_webhooks *w, int wait_ms)
{
    int running = 0, left;
    CURLMsg *m;

    if (w->inflight && wait_ms > 0)
        curl_multi_poll(w->multi, NULL, 0, wait_ms, NULL);
    curl_multi_perform(w->multi, &running);
    while ((m = curl_multi_info_read(w->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            finish(w, m->easy_handle, m->data.result);
}

/* ---- the thread ----------------------------------------------------------- */

static void periodic(bc_webhooks *w)
{
    long long now = bc_now_ms();
    bc_err err = { "" };
    PGresult *res;

    if (now >= w->next_relay) {
        char after[16];
        snprintf(after, sizeof after, "%d", RELAY_AFTER_S);
        const char *p[] = { w->dlq_topic, after };
        /* Only while nothing of ours is unacknowledged: it would go twice. */
        if (bc_publisher_inflight(w->pub) == 0 &&
            (res = bc_pg_exec(w->pg, "webhook_dlq_stragglers", 2, p, NULL))) {
            bc_publisher_outbox_rows(w->pub, res, NULL);
            PQclear(res);
        }
        if (bc_publisher_tick(w->pub, w->pg, &err) < 0)
            wr_log(w, BC_WARN, "outbox.delete_failed", "dead letters", &err);
        w->next_relay = now + 1000;
    }
    if (now >= w->next_gauge) {
        if ((res = bc_pg_exec(w->pg, "webhook_pending", 0, NULL, NULL))) {
            bc_metric_set(w->m_pending, (double)bc_pg_int(res, 0, "n", 0));
            PQclear(res);
        }
        w->next_gauge = now + 5000;
    }
    bc_metric_set(w->m_inflight, w->inflight);
}

static void *run(void *arg)
{
    bc_webhooks *w = arg;

    while (!w->stop) {
        long long now;
        /* Wait on Kafka only when no request is in flight; otherwise on
         * the sockets, below. */
        int n = intake(w, w->inflight ? 0 : 20);

        perform(w, 0);
        record(w);
        now = bc_now_ms();
        if (n > 0 || now >= w->next_claim)
            w->next_claim = now + (claim(w) < 0 ? 1000 : w->poll_ms);
        perform(w, 20);
        record(w);
        periodic(w);
    }
    return NULL;
}

/* Lets requests in flight finish, then hands back the claims of the rest. */
static void drain(bc_webhooks *w)
{
    long long until = bc_now_ms() + w->timeout_ms;
    json_t *back;
    char *doc;

    while (w->inflight > 0 && bc_now_ms() < until)
        perform(w, 50);
    record(w);
    if (!w->sends)
        return;
    back = json_array();
    while (w->sends) {
        json_array_append_new(back, json_pack("{s:I,s:I}", "id", (json_int_t)w->sends->id,
                                              "t", (json_int_t)w->sends->token));
        unlink_xfer(w, w->sends);
    }
    if ((doc = json_dumps(back, JSON_COMPACT))) {
        const char *p[] = { doc };
        bc_err err = { "" };
        /* Unreturned, they are claimed again once their claim times out. */
        if (bc_pg_run(w->pg, "webhook_unclaim", 1, p, &err) < 0)
            bc_log(w->ctx->log, BC_WARN, "webhooks.hand_back_failed", "{s:s}", "error",
                   err.msg);
        free(doc);
    }
    bc_log(w->ctx->log, BC_INFO, "webhooks.handed_back", "{s:i}", "deliveries",
           (int)json_array_size(back));
    json_decref(back);
}

bc_webhooks *bc_webhooks_new(bc_ctx *ctx, bc_err *err)
{
    bc_webhooks *w = calloc(1, sizeof *w);
    const bc_config *c = ctx->cfg;
    const char *prefix = bc_config_str(c, "topic-prefix");
    char topic[160], group[200];
    const char *topics[1] = { topic };
    static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1, 2.5, 5, 10, 30 };

    if (!w)
        return NULL;
    w->ctx = ctx;
    w->outcomes = json_array();
    w->timeout_ms = bc_config_int(c, "webhook-timeout-ms");
    w->allow_private = bc_config_bool(c, "webhook-allow-private");
    w->concurrency = bc_config_int(c, "webhook-concurrency");
    w->poll_ms = bc_config_int(c, "webhook-poll-ms");
    if (bc_config_int(c, "webhook-max-attempts") < 1 || w->timeout_ms < 1 ||
        w->concurrency < 1 || w->poll_ms < 1 || bc_config_int(c, "webhook-backoff-ms") < 0 ||
        bc_config_int(c, "webhook-backoff-max-ms") < 0) {
        bc_err_set(err, "BC_WEBHOOK_MAX_ATTEMPTS, BC_WEBHOOK_TIMEOUT_MS, BC_WEBHOOK_CONCURRENCY "
                        "and BC_WEBHOOK_POLL_MS must be at least 1, the back-offs at least 0");
        goto fail;
    }
    snprintf(w->max_attempts, sizeof w->max_attempts, "%ld", bc_config_int(c, "webhook-max-attempts"));
    snprintf(w->backoff_ms, sizeof w->backoff_ms, "%ld", bc_config_int(c, "webhook-backoff-ms"));
    snprintf(w->backoff_max_ms, sizeof w->backoff_max_ms, "%ld",
             bc_config_int(c, "webhook-backoff-max-ms"));
    snprintf(w->claim_ms, sizeof w->claim_ms, "%ld", w->timeout_ms + CLAIM_MARGIN_MS);
    bc_kafka_topic(w->dlq_topic, sizeof w->dlq_topic, prefix, "webhooks-dlq", NULL);
    bc_kafka_topic(topic, sizeof topic, prefix, "call-results", NULL);
    snprintf(group, sizeof group, "%s.webhooks", prefix);
    if (!(w->multi = curl_multi_init())) {
        bc_err_set(err, "webhooks: cannot create a curl multi handle");
        goto fail;
    }
    curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    if (!(w->pg = bc_pg_connect(bc_config_str(c, "pg-dsn"), stmts, err)) ||
        !(w->pub = bc_publisher_new(c, ctx->log, ctx->metrics, err)) ||
        !(w->consumer = bc_kafka_consumer_new(bc_config_str(c, "kafka-brokers"), group, topics,
                                              1, ctx->log, err)))
        goto fail;
#define M(f, type, name, help, labels) \
    w->f = bc_metrics_get(ctx->metrics, type, name, help, labels, NULL, 0)
    M(m_delivered, BC_COUNTER, "webhook_deliveries_total",
      "Webhook tries by outcome: delivered (2xx), failed (another status), error (no answer)",
      "outcome=\"delivered\"");
    M(m_failed, BC_COUNTER, "webhook_deliveries_total", NULL, "outcome=\"failed\"");
    M(m_error, BC_COUNTER, "webhook_deliveries_total", NULL, "outcome=\"error\"");
    M(m_dead, BC_COUNTER, "webhook_dead_letters_total",
      "Webhook deliveries given up after the last try", NULL);
    M(m_consumed, BC_COUNTER, "webhook_events_consumed_total",
      "Call-result events read by the webhook consumer", NULL);
    M(m_queued, BC_COUNTER, "webhook_deliveries_queued_total",
      "Webhook deliveries created (one per subscribed endpoint and event)", NULL);
    M(m_pending, BC_GAUGE, "webhook_deliveries_pending",
      "Webhook deliveries waiting for a first or further try (all processes)", NULL);
    M(m_inflight, BC_GAUGE, "webhook_requests_in_flight",
      "Webhook requests this process has in flight", NULL);
    M(m_claims, BC_COUNTER, "webhook_claim_passes_total",
      "Passes that looked for due deliveries and sent them", NULL);
#undef M
    w->m_seconds = bc_metrics_get(ctx->metrics, BC_HISTOGRAM, "webhook_delivery_seconds",
                                  "Time from sending a webhook to its answer (or giving up)",
                                  NULL, buckets, sizeof buckets / sizeof *buckets);
    if (pthread_create(&w->thread, NULL, run, w)) {
        bc_err_set(err, "webhooks: cannot start thread");
        goto fail;
    }
    w->started = 1;
    bc_log(ctx->log, BC_INFO, "webhooks.started", "{s:s,s:s}", "group", group, "dlq", w->dlq_topic);
    return w;
fail:
    bc_webhooks_free(w);
    return NULL;
}

void bc_webhooks_free(bc_webhooks *w)
{
    if (!w)
        return;
    if (w->started) {
        w->stop = 1;
        pthread_join(w->thread, NULL);
        drain(w);
    }
    /* Closing commits the stored offsets and leaves the group. */
    bc_kafka_free(w->consumer, 0);
    if (w->pub) {
        bc_publisher_flush(w->pub, 5000);
        if (w->pg)
            bc_publisher_tick(w->pub, w->pg, NULL);
        bc_publisher_free(w->pub, 0);
    }
    if (w->multi)
        curl_multi_cleanup(w->multi);
    json_decref(w->outcomes);
    bc_pg_free(w->pg);
    free(w);
}
