/* An example analytics consumer of batchcall's call-result events, in C with
 * librdkafka and jansson only (docs/analytics.md).
 *
 * Reads <prefix>.call-results from the beginning of every partition to its
 * current end, counts each call once (events are delivered at least once,
 * so a repeat of a call_id is skipped) and prints one JSON line per batch:
 *
 *   {"batch_id": "...", "calls": 12, "answered": 9, "answer_rate": 0.75,
 *    "mean_duration_s": 31.4}
 *
 * answered = carrier_status "completed"; mean_duration_s is over answered
 * calls (null when none was). Flags and their environment variables:
 *   --brokers       BC_KAFKA_BROKERS  (127.0.0.1:9092)
 *   --topic-prefix  BC_TOPIC_PREFIX   (batchcall)
 *   --timeout-ms    BC_ANALYTICS_TIMEOUT_MS (30000): give up reading then */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The versions this program reads: it uses only fields both have. */
#define SCHEMA_V1 "batchcall.call-result/v1"
#define SCHEMA_V2 "batchcall.call-result/v2"
#define SCHEMA_V3 "batchcall.call-result/v3"

typedef struct opts {
    const char *brokers, *prefix;
    long timeout_ms;
} opts;

static const char *flag_or_env(int argc, char **argv, const char *flag, const char *env,
                               const char *def)
{
    const char *v = getenv(env);

    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], flag))
            v = argv[i + 1];
    return v && *v ? v : def;
}

static int parse_args(int argc, char **argv, opts *o)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--brokers HOST:PORT] [--topic-prefix P] [--timeout-ms N]\n"
                   "Reads <prefix>.call-results from the beginning and prints, per batch,\n"
                   "the answer rate and the mean duration of answered calls (JSON lines).\n"
                   "  --brokers       BC_KAFKA_BROKERS         default 127.0.0.1:9092\n"
                   "  --topic-prefix  BC_TOPIC_PREFIX          default batchcall\n"
                   "  --timeout-ms    BC_ANALYTICS_TIMEOUT_MS  default 30000\n", argv[0]);
            return 1;
        }
        if (strcmp(argv[i], "--brokers") && strcmp(argv[i], "--topic-prefix") &&
            strcmp(argv[i], "--timeout-ms")) {
            fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", argv[0], argv[i]);
            return -1;
        }
        if (++i == argc) {
            fprintf(stderr, "%s: %s needs a value\n", argv[0], argv[i - 1]);
            return -1;
        }
    }
    o->brokers = flag_or_env(argc, argv, "--brokers", "BC_KAFKA_BROKERS", "127.0.0.1:9092");
    o->prefix = flag_or_env(argc, argv, "--topic-prefix", "BC_TOPIC_PREFIX", "batchcall");
    o->timeout_ms = atol(flag_or_env(argc, argv, "--timeout-ms", "BC_ANALYTICS_TIMEOUT_MS", "30000"));
    if (o->timeout_ms <= 0) {
        fprintf(stderr, "%s: BC_ANALYTICS_TIMEOUT_MS (--timeout-ms) must be a positive number\n",
                argv[0]);
        return -1;
    }
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Adds one event to the per-batch totals unless its call was seen before. */
static void count(json_t *batches, json_t *seen, json_t *ev)
{
    const char *call = json_string_value(json_object_get(ev, "call_id"));
    const char *batch = json_string_value(json_object_get(ev, "batch_id"));
    const char *status = json_string_value(json_object_get(ev, "carrier_status"));
    const char *schema = json_string_value(json_object_get(ev, "schema"));
    const char *what = json_string_value(json_object_get(ev, "event"));
    json_t *b;

    /* A call's end: v1, v2, or v3's call.ended (which every end has, and
     * the only one with BC_CALL_RESULT_V2=0); the fields used are in all. */
    if (!call || !batch || !status || !schema ||
        (strcmp(schema, SCHEMA_V1) && strcmp(schema, SCHEMA_V2) &&
         (strcmp(schema, SCHEMA_V3) || !what || strcmp(what, "call.ended"))))
        return;   /* not a call end of a version this program knows */
    if (json_object_get(seen, call))
        return;   /* at-least-once delivery: a repeat */
    json_object_set_new(seen, call, json_true());
    if (!(b = json_object_get(batches, batch))) {
        b = json_pack("{s:I,s:I,s:I}", "calls", (json_int_t)0, "answered", (json_int_t)0,
                      "duration", (json_int_t)0);
        json_object_set_new(batches, batch, b);
    }
    json_object_set_new(b, "calls", json_integer(json_integer_value(json_object_get(b, "calls")) + 1));
    if (!strcmp(status, "completed")) {
        json_object_set_new(b, "answered",
                            json_integer(json_integer_value(json_object_get(b, "answered")) + 1));
        json_object_set_new(b, "duration",
                            json_integer(json_integer_value(json_object_get(b, "duration")) +
                                         json_integer_value(json_object_get(ev, "duration_s"))));
    }
}

/* Assigns every partition of topic from its beginning; returns how many. */
static int assign_all(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_topic_partition_list_t *parts;
    int n = -1;

    if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_destroy(t);
        return -1;
    }
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        n = md->topics[0].partition_cnt;
        parts = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)
                ->offset = RD_KAFKA_OFFSET_BEGINNING;
        if (rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
            n = -1;
        rd_kafka_topic_partition_list_destroy(parts);
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return n;
}

int main(int argc, char **argv)
{
    opts o;
    char topic[256], why[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    json_t *batches = json_object(), *seen = json_object(), *b;
    const char *id;
    int rc = 1, parts, at_end = 0;
    char *ended = NULL;   /* per partition: its end was reported */
    long long deadline;
    int a = parse_args(argc, argv, &o);

    if (a) {
        rd_kafka_conf_destroy(conf);
        json_decref(batches);
        json_decref(seen);
        return a > 0 ? 0 : 2;
    }
    snprintf(topic, sizeof topic, "%s.call-results", o.prefix);
    /* No offsets are committed: every run reads the whole topic. */
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o.brokers, why, sizeof why) ||
        rd_kafka_conf_set(conf, "group.id", "batchcall-analytics-example", why, sizeof why) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof why) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof why)) {
        fprintf(stderr, "kafka config: %s\n", why);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why))) {
        fprintf(stderr, "kafka consumer: %s\n", why);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    rd_kafka_poll_set_consumer(rk);
    if ((parts = assign_all(rk, topic)) < 0) {
        fprintf(stderr, "cannot read the partitions of %s\n", topic);
        goto out;
    }
    if (!(ended = calloc((size_t)parts + 1, 1)))
        goto out;
    deadline = now_ms() + o.timeout_ms;
    /* Each partition reports its end once; then we have read everything
     * that was in the topic when we started. */
    while (at_end < parts) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

        if (now_ms() > deadline) {
            fprintf(stderr, "%s: not at the end after %ld ms\n", topic, o.timeout_ms);
            goto out;
        }
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* A partition that grows reports its end again: count it once. */
            if (m->partition >= 0 && m->partition < parts && !ended[m->partition]) {
                ended[m->partition] = 1;
                at_end++;
            }
        } else if (m->err) {
            fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
        } else {
            json_t *ev = json_loadb(m->payload, m->len, 0, NULL);
            if (json_is_object(ev))
                count(batches, seen, ev);
            json_decref(ev);
        }
        rd_kafka_message_destroy(m);
    }
    json_object_foreach(batches, id, b) {
        json_int_t calls = json_integer_value(json_object_get(b, "calls"));
        json_int_t answered = json_integer_value(json_object_get(b, "answered"));
        json_int_t dur = json_integer_value(json_object_get(b, "duration"));
        json_t *line = json_pack("{s:s,s:I,s:I,s:f,s:o}", "batch_id", id, "calls", calls,
                                 "answered", answered, "answer_rate",
                                 (double)answered / (double)calls, "mean_duration_s",
                                 answered ? json_real((double)dur / (double)answered)
                                          : json_null());
        char *s = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));

        puts(s);
        free(s);
        json_decref(line);
    }
    rc = 0;
out:
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    free(ended);
    json_decref(batches);
    json_decref(seen);
    return rc;
}
