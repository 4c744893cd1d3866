#include "bc_publisher.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_kafka.h"
#include "bc_svc.h"

const bc_pg_stmt bc_publisher_stmts[] = {
    { "outbox_delete", "DELETE FROM outbox WHERE id = ANY($1::bigint[])" },
    { 0, 0 },
};

/* What a delivery report refers to: an outbox row, or a waiting caller. */
typedef struct pending {
    long long outbox_id;      /* > 0 for outbox rows */
    pthread_mutex_t *mu;      /* sync waiters only */
    pthread_cond_t *cv;
    int done, ok;
    void (*then)(void *ud, int ok);   /* async callers only */
    void *then_ud;
} pending;

/* A thread serving one producer's delivery reports. */
typedef struct poller {
    struct bc_publisher *p;
    bc_kafka *k;
    pthread_t thread;
} poller;

struct bc_publisher {
    bc_kafka *k[2];           /* BC_PUB_BATCHED, BC_PUB_PROMPT (may be NULL) */
    int nk;
    poller poll[2];           /* one for each producer */
    bc_log *log;
    bc_metric *published, *failed, *prompt, *switches;
    atomic_int stop;
    pthread_mutex_t mu;
    long long *acked;         /* outbox ids to delete */
    size_t nacked, capacked;
    pthread_mutex_t route_mu; /* the route, and the produce it decides */
    bc_pub_route route;
};

/* The rate's window (bc_publisher.h): 1 s. */
#define ROUTE_WINDOW_MS 1000

void bc_pub_route_init(bc_pub_route *r, long prompt_below)
{
    memset(r, 0, sizeof *r);
    r->prompt_below = prompt_below > 0 ? prompt_below : 0;
    r->cur = r->prompt_below ? BC_PUB_PROMPT : BC_PUB_BATCHED;
}

int bc_pub_route_next(bc_pub_route *r, long long now_ms, int outq_cur)
{
    long mark = r->prompt_below * ROUTE_WINDOW_MS / 1000;
    long long span = now_ms - r->win_start;

    if (!r->prompt_below)
        return BC_PUB_BATCHED;
    if (mark < 1)
        mark = 1;
    if (span >= ROUTE_WINDOW_MS) {
        /* The window closed. Under half the mark, or followed by a whole
         * window with no message at all, the rate is low. */
        if (span >= 2 * ROUTE_WINDOW_MS || r->win_n * ROUTE_WINDOW_MS < mark * span / 2)
            r->high = 0;
        r->win_start = now_ms;
        r->win_n = 0;
    }
    if (++r->win_n >= mark)
        r->high = 1;
    if (outq_cur == 0)
        r->cur = r->high ? BC_PUB_BATCHED : BC_PUB_PROMPT;
    return r->cur;
}

static void on_delivery(void *ud, void *opaque, int ok, const char *why)
{
    bc_publisher *p = ud;
    pending *pd = opaque;

    bc_metric_add(ok ? p->published : p->failed, 1);
    if (!ok)
        bc_log(p->log, BC_WARN, "publish.failed", "{s:s,s:I}", "reason", why,
               "outbox_id", (json_int_t)pd->outbox_id);
    if (pd->then) {
        pd->then(pd->then_ud, ok);
        free(pd);
        return;
    }
    if (pd->cv) {
        pthread_mutex_lock(pd->mu);
        pd->ok = ok;
        pd->done = 1;
        pthread_cond_broadcast(pd->cv);
        pthread_mutex_unlock(pd->mu);
        return;
    }
    if (ok) {
        pthread_mutex_lock(&p->mu);
        if (p->nacked == p->capacked) {
            size_t cap = p->capacked ? p->capacked * 2 : 256;
            long long *n = realloc(p->acked, cap * sizeof *n);
            if (n) {
                p->acked = n;
                p->capacked = cap;
            }
        }
        /* Out of memory: the row stays and the relay sends it again. */
        if (p->nacked < p->capacked)
            p->acked[p->nacked++] = pd->outbox_id;
        pthread_mutex_unlock(&p->mu);
    }
    free(pd);
}

static void *poll_loop(void *arg)
{
    poller *pl = arg;

    while (!pl->p->stop)
        bc_kafka_poll(pl->k, 50);
    return NULL;
}

/* Enqueues one message on the producer the route picks (bc_publisher.h). */
static int produce(bc_publisher *p, const char *topic, const char *key,
                   const char *payload, pending *pd, bc_err *err)
{
    int rc, was, i;

    if (p->nk == 1)
        return bc_kafka_produce(p->k[0], topic, key, payload, strlen(payload), pd, err);
    pthread_mutex_lock(&p->route_mu);
    was = p->route.cur;
    i = bc_pub_route_next(&p->route, bc_now_ms(), bc_kafka_outq_len(p->k[was]));
    rc = bc_kafka_produce(p->k[i], topic, key, payload, strlen(payload), pd, err);
    if (i != was) {
        bc_metric_add(p->switches, 1);
        bc_metric_set(p->prompt, i == BC_PUB_PROMPT);
    }
    pthread_mutex_unlock(&p->route_mu);
    return rc;
}

bc_publisher *bc_publisher_new(const bc_config *cfg, bc_log *log,
                               bc_metrics *metrics, bc_err *err)
{
    long linger = bc_config_int(cfg, "kafka-linger-ms");
    long below = bc_config_int(cfg, "kafka-prompt-below");
    const char *brokers = bc_config_str(cfg, "kafka-brokers");
    bc_publisher *p;

    if (linger < 0 || linger > 900000) {
        bc_err_set(err, "--kafka-linger-ms must be 0-900000, not %ld", linger);
        return NULL;
    }
    if (below < 0 || below > 10000000) {
        bc_err_set(err, "--kafka-prompt-below must be 0-10000000, not %ld", below);
        return NULL;
    }
    if (!(p = calloc(1, sizeof *p)))
        return NULL;
    p->log = log;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->route_mu, NULL);
    /* With no linger there is nothing to send sooner. */
    bc_pub_route_init(&p->route, linger > 0 ? below : 0);
    p->published = bc_metrics_get(metrics, BC_COUNTER, "kafka_messages_published_total",
                                  "Messages acknowledged by Kafka", NULL, NULL, 0);
    p->failed = bc_metrics_get(metrics, BC_COUNTER, "kafka_publish_failures_total",
                               "Messages Kafka did not acknowledge (left in the outbox)",
                               NULL, NULL, 0);
    p->prompt = bc_metrics_get(metrics, BC_GAUGE, "kafka_publisher_prompt",
                               "1 while messages go out at once, on the producer with no "
                               "linger (the rate is under --kafka-prompt-below)",
                               NULL, NULL, 0);
    p->switches = bc_metrics_get(metrics, BC_COUNTER, "kafka_publisher_switches_total",
                                 "Times the publisher moved between its batched and its "
                                 "prompt producer", NULL, NULL, 0);
    bc_metric_set(p->prompt, p->route.cur == BC_PUB_PROMPT);
    if (!(p->k[BC_PUB_BATCHED] = bc_kafka_producer_new(brokers, (int)linger, log,
                                                       on_delivery, p, err)))
        goto fail;
    p->nk = 1;
    if (p->route.prompt_below &&
        !(p->k[BC_PUB_PROMPT] = bc_kafka_producer_new(brokers, 0, log, on_delivery, p, err)))
        goto fail;
    if (p->k[BC_PUB_PROMPT])
        p->nk = 2;
    for (int i = 0; i < p->nk; i++) {
        p->poll[i].p = p;
        p->poll[i].k = p->k[i];
        if (pthread_create(&p->poll[i].thread, NULL, poll_loop, &p->poll[i])) {
            bc_err_set(err, "publisher: cannot start thread");
            p->stop = 1;
            while (i-- > 0)
                pthread_join(p->poll[i].thread, NULL);
            goto fail;
        }
    }
    return p;
fail:
    bc_kafka_free(p->k[BC_PUB_PROMPT], 0);
    bc_kafka_free(p->k[BC_PUB_BATCHED], 0);
    pthread_mutex_destroy(&p->route_mu);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

int bc_publisher_warm(bc_publisher *p, const char *const *topics, int n, int timeout_ms)
{
    long long until = bc_now_ms() + timeout_ms;
    int ok = 0;

    for (int i = 0; i < n; i++) {
        long long left = until - bc_now_ms();
        bc_err err = { "" };

        if (left > 0 && bc_kafka_warm(p->k[BC_PUB_BATCHED], topics[i], (int)left, &err) == 0 &&
            (p->nk == 1 || bc_kafka_warm(p->k[BC_PUB_PROMPT], topics[i], (int)left, &err) == 0)) {
            ok++;
            continue;
        }
        bc_log(p->log, BC_WARN, "kafka.lookup_failed", "{s:s,s:s}", "topic", topics[i], "error",
               left > 0 ? err.msg : "no time left");
    }
    bc_log(p->log, BC_INFO, "kafka.topics_looked_up", "{s:i,s:i}", "looked_up", ok, "topics", n);
    return ok;
}

void bc_publisher_free(bc_publisher *p, int flush_ms)
{
    if (!p)
        return;
    bc_publisher_flush(p, flush_ms);
    p->stop = 1;
    for (int i = 0; i < p->nk; i++)
        pthread_join(p->poll[i].thread, NULL);
    /* Reports for anything still queued run here, freeing their records. */
    for (int i = 0; i < p->nk; i++)
        bc_kafka_free(p->k[i], 0);
    free(p->acked);
    pthread_mutex_destroy(&p->route_mu);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int bc_publisher_outbox(bc_publisher *p, long long id, const char *topic,
                        const char *key, const char *payload, bc_err *err)
{
    pending *pd = calloc(1, sizeof *pd);

    if (!pd) {
        bc_err_set(err, "publish: out of memory");
        return -1;
    }
    pd->outbox_id = id;
    if (produce(p, topic, key, payload, pd, err) < 0) {
        free(pd);
        return -1;
    }
    return 0;
}

int bc_publisher_outbox_rows(bc_publisher *p, const PGresult *res, bc_err *err)
{
    int rc = 0;

    for (int i = 0; i < PQntuples(res); i++)
        if (bc_publisher_outbox(p, bc_pg_int(res, i, "id", 0), bc_pg_val(res, i, "topic"),
                                bc_pg_val(res, i, "key"), bc_pg_val(res, i, "payload"),
                                err) < 0)
            rc = -1;   /* keep going: each row left behind is relayed later */
    return rc;
}

int bc_publisher_async(bc_publisher *p, const char *topic, const char *key,
                       const char *payload, void (*then)(void *ud, int ok), void *ud,
                       bc_err *err)
{
    pending *pd = calloc(1, sizeof *pd);

    if (!pd) {
        bc_err_set(err, "publish: out of memory");
        return -1;
    }
    pd->then = then;
    pd->then_ud = ud;
    if (produce(p, topic, key, payload, pd, err) < 0) {
        free(pd);
        return -1;
    }
    return 0;
}

int bc_publisher_sync(bc_publisher *p, const char *topic, const char *key,
                      const char *payload, int timeout_ms, bc_err *err)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    pthread_condattr_t attr;
    pending *pd = calloc(1, sizeof *pd);
    struct timespec until;
    int ok = 0, timed_out = 0;

    if (!pd) {
        bc_err_set(err, "publish: out of memory");
        return -1;
    }
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &attr);
    pthread_condattr_destroy(&attr);
    pd->mu = &mu;
    pd->cv = &cv;
    if (produce(p, topic, key, payload, pd, err) < 0) {
        free(pd);
        pthread_cond_destroy(&cv);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mu);
    while (!pd->done && !timed_out)
        timed_out = pthread_cond_timedwait(&cv, &mu, &until) != 0;
    ok = pd->done && pd->ok;
    /* On timeout the report may still come: it must not touch our stack.
     * Wait for it without a deadline; message.timeout.ms bounds the wait. */
    while (!pd->done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    free(pd);
    pthread_cond_destroy(&cv);
    if (!ok)
        bc_err_set(err, "publish to %s: %s", topic,
                   timed_out ? "not acknowledged in time" : "rejected by the broker");
    return ok ? 0 : -1;
}

int bc_publisher_tick(bc_publisher *p, bc_pg *pg, bc_err *err)
{
    long long *ids;
    size_t n;
    char *arr = NULL;
    size_t len = 0;
    FILE *f;
    PGresult *res;

    pthread_mutex_lock(&p->mu);
    ids = p->acked;
    n = p->nacked;
    p->acked = NULL;
    p->nacked = p->capacked = 0;
    pthread_mutex_unlock(&p->mu);
    if (!n) {
        free(ids);
        return 0;
    }
    /* One array literal parameter: a single round trip for many rows. */
    f = open_memstream(&arr, &len);
    fputc('{', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%lld", i ? "," : "", ids[i]);
    fputc('}', f);
    fclose(f);
    const char *params[] = { arr };
    res = bc_pg_exec(pg, "outbox_delete", 1, params, err);
    free(arr);
    if (!res) {
        /* Put them back for the next tick. */
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < n; i++) {
            if (p->nacked == p->capacked) {
                size_t cap = p->capacked ? p->capacked * 2 : 256;
                long long *nn = realloc(p->acked, cap * sizeof *nn);
                if (!nn)
                    break;
                p->acked = nn;
                p->capacked = cap;
            }
            p->acked[p->nacked++] = ids[i];
        }
        pthread_mutex_unlock(&p->mu);
        free(ids);
        return -1;
    }
    PQclear(res);
    free(ids);
    return (int)n;
}

int bc_publisher_inflight(bc_publisher *p)
{
    int n = 0;

    for (int i = 0; i < p->nk; i++)
        n += bc_kafka_outq_len(p->k[i]);
    return n;
}

int bc_publisher_flush(bc_publisher *p, int timeout_ms)
{
    long long until = bc_now_ms() + timeout_ms;
    int rc = 0;

    for (int i = 0; i < p->nk; i++) {
        long long left = until - bc_now_ms();

        if (bc_kafka_flush(p->k[i], left > 0 ? (int)left : 0) < 0)
            rc = -1;
    }
    return rc;
}
