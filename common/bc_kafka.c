#include "bc_kafka.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bc_kafka {
    rd_kafka_t *rk;
    int consumer;
    atomic_int assigned_once;     /* a first assignment has arrived */
    bc_log *log;
    bc_kafka_dr_fn dr;
    void *ud;
    long long lag, lag_at_ms;     /* bc_kafka_lag's last answer and when */
    rd_kafka_topic_t *warm[16];   /* topics looked up ahead (bc_kafka_warm) */
    int nwarm;
};

void bc_kafka_topic(char *out, size_t cap, const char *prefix, const char *kind,
                    const char *region)
{
    if (region && *region)
        snprintf(out, cap, "%s.%s.%s", prefix, kind, region);
    else
        snprintf(out, cap, "%s.%s", prefix, kind);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    bc_kafka *k = rd_kafka_opaque(rk);

    if (k)
        bc_log(k->log, level <= 3 ? BC_ERROR : level <= 4 ? BC_WARN : BC_INFO,
               "kafka.log", "{s:s,s:s}", "facility", fac, "msg", buf);
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    bc_kafka *k = opaque;

    (void)rk;
    bc_log(k->log, BC_WARN, "kafka.error", "{s:s,s:s}", "code",
           rd_kafka_err2name(code), "reason", reason);
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    bc_kafka *k = opaque;

    (void)rk;
    if (k->dr)
        k->dr(k->ud, m->_private, m->err == 0,
              m->err ? rd_kafka_err2str(m->err) : NULL);
}

/* Applies assignments ourselves (incrementally, as the cooperative protocol
 * wants) to learn when the first one arrived: see bc_kafka_free. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    bc_kafka *k = opaque;
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *e = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        k->assigned_once = 1;
    } else if (coop) {
        e = rd_kafka_incremental_unassign(rk, parts);
    } else {
        rd_kafka_assign(rk, NULL);
    }
    if (e) {
        bc_log(k->log, BC_WARN, "kafka.rebalance_failed", "{s:s}", "reason",
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static int set(rd_kafka_conf_t *conf, const char *name, const char *val,
               bc_err *err)
{
    char why[256];

    if (rd_kafka_conf_set(conf, name, val, why, sizeof why) != RD_KAFKA_CONF_OK) {
        bc_err_set(err, "kafka config %s=%s: %s", name, val, why);
        return -1;
    }
    return 0;
}

/* A producer or consumer for k: the settings every client of ours has, then
 * the role's (name, value pairs, ending with NULL), our callbacks. NULL with
 * err set. */
static rd_kafka_t *client_new(bc_kafka *k, rd_kafka_type_t type, const char *brokers,
                              const char *const *settings, bc_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char why[256];

    if (set(conf, "bootstrap.servers", brokers, err) < 0 ||
        set(conf, "client.id", "batchcall", err) < 0 ||
        /* Reconnect fast after a broker restart. */
        set(conf, "reconnect.backoff.max.ms", "1000", err) < 0)
        goto fail;
    for (; *settings; settings += 2)
        if (set(conf, settings[0], settings[1], err) < 0)
            goto fail;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    else
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    if (!(rk = rd_kafka_new(type, conf, why, sizeof why))) {
        bc_err_set(err, "kafka %s: %s", type == RD_KAFKA_PRODUCER ? "producer" : "consumer",
                   why);
        goto fail;
    }
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

bc_kafka *bc_kafka_producer_new(const char *brokers, int linger_ms, bc_log *log,
                                bc_kafka_dr_fn dr, void *ud, bc_err *err)
{
    char linger[16];
    const char *const settings[] = {
        /* Idempotence gives acks=all and no duplicates from internal retries;
         * a message that still fails is retried from the outbox, not dropped. */
        "enable.idempotence", "true",
        "acks", "all",
        /* The process's --kafka-linger-ms (bc_publisher.h): a trade
         * between an event's latency and the CPU of many small requests. */
        "linger.ms", linger,
        "message.timeout.ms", "30000",
        NULL,
    };
    bc_kafka *k = calloc(1, sizeof *k);

    if (!k)
        return NULL;
    snprintf(linger, sizeof linger, "%d", linger_ms);
    k->log = log;
    k->dr = dr;
    k->ud = ud;
    if (!(k->rk = client_new(k, RD_KAFKA_PRODUCER, brokers, settings, err))) {
        free(k);
        return NULL;
    }
    /* What the client itself holds, read back, not what was asked. */
    size_t n = sizeof linger;
    if (rd_kafka_conf_get(rd_kafka_conf(k->rk), "linger.ms", linger, &n) == RD_KAFKA_CONF_OK)
        bc_log(log, BC_INFO, "kafka.producer_ready", "{s:s}", "linger_ms", linger);
    return k;
}

bc_kafka *bc_kafka_consumer_new(const char *brokers, const char *group,
                                const char *const *topics, int n, bc_log *log,
                                bc_err *err)
{
    const char *const settings[] = {
        "group.id", group,
        /* Offsets are stored by hand once the effect is in PostgreSQL. */
        "enable.auto.offset.store", "false",
        "enable.auto.commit", "true",
        "auto.commit.interval.ms", "500",
        "auto.offset.reset", "earliest",
        "partition.assignment.strategy", "cooperative-sticky",
        "session.timeout.ms", "10000",
        "heartbeat.interval.ms", "1000",
        /* A fetch is answered as soon as there is anything to read, and
         * otherwise held by the broker for 100 ms. Holding it for 4 KiB
         * with a 10 ms limit made every idle consumer ask 100 times a
         * second: three of them cost the broker 0.22 cores doing nothing,
         * a third of its CPU in B2 at 150 calls/s. At 415 attempts/s the
         * broker's CPU was the same either way (0.24 and 0.25 cores):
         * under load a fetch finds data waiting, and the producers'
         * linger already batches it. */
        "fetch.wait.max.ms", "100",
        "fetch.min.bytes", "1",
        NULL,
    };
    bc_kafka *k = calloc(1, sizeof *k);
    rd_kafka_topic_partition_list_t *subs = NULL;
    rd_kafka_resp_err_t e;

    if (!k)
        return NULL;
    k->log = log;
    k->consumer = 1;
    if (!(k->rk = client_new(k, RD_KAFKA_CONSUMER, brokers, settings, err)))
        goto fail;
    rd_kafka_poll_set_consumer(k->rk);
    subs = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(k->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        bc_err_set(err, "kafka subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(k->rk);
        goto fail;
    }
    return k;
fail:
    free(k);
    return NULL;
}

void bc_kafka_free(bc_kafka *k, int flush_ms)
{
    if (!k)
        return;
    if (k->consumer) {
        /* librdkafka before 2.3 aborts when a cooperative-sticky consumer is
         * destroyed before its first assignment (its issue 4312). A process
         * stopped right after it started waits for that assignment first,
         * bounded by a group join's worth of time. Messages are not stored
         * in this wait, so nothing is taken from other members. */
        for (int i = 0; i < 150 && !k->assigned_once; i++) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 100);
            if (m)
                rd_kafka_message_destroy(m);
        }
        rd_kafka_commit(k->rk, NULL, 0);
        rd_kafka_consumer_close(k->rk);
    } else {
        rd_kafka_flush(k->rk, flush_ms);
    }
    for (int i = 0; i < k->nwarm; i++)
        rd_kafka_topic_destroy(k->warm[i]);
    rd_kafka_destroy(k->rk);
    free(k);
}

int bc_kafka_warm(bc_kafka *k, const char *topic, int timeout_ms, bc_err *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t;
    rd_kafka_resp_err_t e;

    if (k->nwarm == (int)(sizeof k->warm / sizeof *k->warm)) {
        bc_err_set(err, "kafka: no room to look up %s ahead", topic);
        return -1;
    }
    if (!(t = rd_kafka_topic_new(k->rk, topic, NULL))) {
        bc_err_set(err, "kafka: topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    k->warm[k->nwarm++] = t;
    e = rd_kafka_metadata(k->rk, 0, t, &md, timeout_ms);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err)
        e = md->topics[0].err;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        bc_err_set(err, "kafka: topic %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

rd_kafka_t *bc_kafka_handle(bc_kafka *k) { return k->rk; }

int bc_kafka_produce(bc_kafka *k, const char *topic, const char *key,
                     const void *val, size_t len, void *opaque, bc_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->rk, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)val, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);

    if (e) {
        bc_err_set(err, "produce to %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

void bc_kafka_poll(bc_kafka *k, int timeout_ms)
{
    rd_kafka_poll(k->rk, timeout_ms);
}

int bc_kafka_flush(bc_kafka *k, int timeout_ms)
{
    return rd_kafka_flush(k->rk, timeout_ms) ? -1 : 0;
}

int bc_kafka_outq_len(bc_kafka *k)
{
    return rd_kafka_outq_len(k->rk);
}

void bc_kafka_wake(bc_kafka *k, int fd)
{
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(k->rk);

    /* The consumer's queue is the last of the forwarded ones (partitions
     * and, after rd_kafka_poll_set_consumer, the main queue), where
     * librdkafka wants the event enabled. */
    rd_kafka_queue_io_event_enable(q, fd, "k", 1);
    rd_kafka_queue_destroy(q);
}

rd_kafka_message_t *bc_kafka_consume(bc_kafka *k, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, timeout_ms);

    if (m && m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            bc_log(k->log, BC_WARN, "kafka.consume_error", "{s:s}", "reason",
                   rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return m;
}

int bc_kafka_store(bc_kafka *k, const rd_kafka_message_t *m)
{
    (void)k;
    return rd_kafka_offset_store(m->rkt, m->partition, m->offset) ? -1 : 0;
}

int bc_kafka_rewind(bc_kafka *k, rd_kafka_message_t *const *msgs, int n)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    rd_kafka_error_t *e;
    int rc = 0;

    for (int i = 0; i < n; i++) {
        const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(parts, topic, msgs[i]->partition);

        if (!p)
            rd_kafka_topic_partition_list_add(parts, topic, msgs[i]->partition)->offset =
                msgs[i]->offset;
        else if (msgs[i]->offset < p->offset)
            p->offset = msgs[i]->offset;
    }
    if ((e = rd_kafka_seek_partitions(k->rk, parts, 5000))) {
        bc_log(k->log, BC_WARN, "kafka.rewind_failed", "{s:s}", "reason", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

long long bc_kafka_lag(bc_kafka *k)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    struct timespec ts;
    long long now, lag = 0;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (!k->consumer || now - k->lag_at_ms < 1000)
        return k->lag;
    k->lag_at_ms = now;
    if (rd_kafka_assignment(k->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return k->lag;
    rd_kafka_position(k->rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t lo = -1, hi = -1;

        /* A partition not fetched from yet has no position: no lag known. */
        if (p->offset < 0 ||
            rd_kafka_get_watermark_offsets(k->rk, p->topic, p->partition, &lo, &hi) ||
            hi < p->offset)
            continue;
        lag += hi - p->offset;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    k->lag = lag;
    return lag;
}

void bc_kafka_pause(bc_kafka *k, int pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;

    if (rd_kafka_assignment(k->rk, &parts) || !parts)
        return;
    if (pause)
        rd_kafka_pause_partitions(k->rk, parts);
    else
        rd_kafka_resume_partitions(k->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}

int bc_kafka_create_topics(const char *brokers, const char *const *names,
                           const int *partitions, int n, int replication,
                           int timeout_ms, bc_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    rd_kafka_NewTopic_t **topics = calloc((size_t)n, sizeof *topics);
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_event_t *ev = NULL;
    char why[256];
    int rc = -1;

    if (!topics)
        goto out;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof why)) {
        bc_err_set(err, "kafka admin: %s", why);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why))) {
        bc_err_set(err, "kafka admin: %s", why);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        topics[i] = rd_kafka_NewTopic_new(names[i], partitions[i], replication,
                                          why, sizeof why);
        if (!topics[i]) {
            bc_err_set(err, "topic %s: %s", names[i], why);
            goto out;
        }
    }
    q = rd_kafka_queue_new(rk);
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, why, sizeof why);
    rd_kafka_CreateTopics(rk, topics, (size_t)n, opts, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        bc_err_set(err, "create topics: timed out");
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        bc_err_set(err, "create topics: %s", rd_kafka_event_error_string(ev));
        goto out;
    }
    {
        size_t cnt;
        const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
            rd_kafka_event_CreateTopics_result(ev), &cnt);

        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);

            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                bc_err_set(err, "create topic %s: %s",
                           rd_kafka_topic_result_name(res[i]),
                           rd_kafka_topic_result_error_string(res[i]));
                goto out;
            }
        }
    }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (q)
        rd_kafka_queue_destroy(q);
    for (int i = 0; topics && i < n; i++)
        if (topics[i])
            rd_kafka_NewTopic_destroy(topics[i]);
    free(topics);
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}
