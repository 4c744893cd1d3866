#include "bc_batches_cli.h"

#include <ctype.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bc_client.h"
#include "bc_config.h"
#include "bc_crypto.h"
#include "bc_csv.h"
#include "bc_e164.h"
#include "bc_file.h"
#include "bc_term.h"

#define MAX_RECIPIENTS 5000          /* the Cartesia-style create's limit */
#define MAX_CSV_BYTES (64L << 20)
#define EXIT_API 1
#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130

static const bc_config_key keys[] = {
    { "api-url", "BC_API_URL", BC_STR, "http://127.0.0.1:8080", "base URL of the batchcall API" },
    { "api-key", "BC_API_KEY", BC_STR, NULL, "the tenant's secret API key (prefer the variable: flags show in ps)" },
    { "json", "BC_JSON", BC_BOOL, "false", "print JSON for machines instead of tables (watch: one object per line)" },
    { "file", "BC_CSV_FILE", BC_STR, "", "create: the recipients CSV (number column, optional from_number, variables)" },
    { "name", "BC_BATCH_NAME", BC_STR, "", "create: the batch's name (default: the file's name)" },
    { "agent", "BC_AGENT_ID", BC_STR, "", "create: agent id (default: the tenant's only agent)" },
    { "from", "BC_FROM_NUMBER", BC_STR, "", "create: caller ID, a number id or a registered E.164 number (default: the tenant's default)" },
    { "concurrency", "BC_TARGET_CONCURRENCY", BC_INT, "0", "create: the batch's concurrent-call limit (0: half the tenant's)" },
    { "limit-rate", "BC_LIMIT_RATE", BC_INT, "0", "create: upload at most this many bytes per second (0: no cap)" },
    { "idempotency-key", "BC_IDEMPOTENCY_KEY", BC_STR, "", "create: Idempotency-Key (default: a new random one)" },
    { "limit", "BC_LIST_LIMIT", BC_INT, "20", "list: how many batches, newest first (1-100)" },
    { "interval-ms", "BC_WATCH_INTERVAL_MS", BC_INT, "1000", "watch: milliseconds between reads (100-60000)" },
    { "timeout", "BC_HTTP_TIMEOUT", BC_INT, "120", "seconds before one request gives up" },
    { 0 },
};

static const char usage[] =
    "Usage: batchcall batches COMMAND [ID] [--flag=value ...]\n\n"
    "A tenant's commands, over the public HTTP API with the tenant's secret key\n"
    "(BC_API_KEY) at BC_API_URL:\n"
    "  create --file people.csv  create a batch from a CSV: a number column (number,\n"
    "                            phone_number or to_number), an optional from_number,\n"
    "                            every other column a variable for the agent\n"
    "  watch ID                  live progress redrawn in place until the batch is done\n"
    "  show ID                   where a batch stands, once\n"
    "  list                      the newest batches\n"
    "  cancel ID                 stop dialing: queued recipients are cancelled, live\n"
    "                            calls finish\n"
    "  retry ID                  queue the recipients whose last call failed again\n\n"
    "Tables for people by default; --json prints the API's JSON (watch: one object\n"
    "per line). Exit status: 0 done, 1 the API refused or could not be reached,\n"
    "2 bad usage or input, 130 interrupted.\n";

typedef struct cli {
    bc_config *cfg;
    bc_client *client;
    int json;
    const char *id;
    bc_err err;
} cli;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));

    printf("%s\n", s ? s : "null");
    fflush(stdout);
    free(s);
}

static long long jint(json_t *o, const char *path)
{
    char key[64];
    const char *dot = strchr(path, '.');

    if (dot) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        return jint(json_object_get(o, key), dot + 1);
    }
    return (long long)json_integer_value(json_object_get(o, path));
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "";
}

/* One request that must answer with a 2xx; anything else is an error that
 * names the API's own words. EXIT_API, or 0 with *out (caller decrefs). */
static int api(cli *c, const char *method, const char *path, const char *body, size_t len,
               const bc_client_opts *o, json_t **out)
{
    long status;

    if (bc_client_call(c->client, method, path, body, len, o, &status, out, &c->err) < 0)
        return EXIT_API;
    if (status < 200 || status > 299) {
        bc_client_error(status, *out, &c->err);
        json_decref(*out);
        *out = NULL;
        return EXIT_API;
    }
    if (!*out) {
        bc_err_set(&c->err, "the API answered HTTP %ld without a JSON body", status);
        return EXIT_API;
    }
    return 0;
}

static int progress(cli *c, const char *id, json_t **out)
{
    char path[128];

    snprintf(path, sizeof path, "/progress/batches/%s", id);
    return api(c, "GET", path, NULL, 0, NULL, out);
}

/* Batch ids are letters, digits, '_' and '-': checked so a typo cannot
 * wander into another route. */
static int id_ok(const char *id)
{
    size_t n = 0;

    for (; id[n]; n++)
        if (!isalnum((unsigned char)id[n]) && id[n] != '_' && id[n] != '-')
            return 0;
    return n > 0 && n <= 64;
}

/* ---- create ------------------------------------------------------------- */

typedef struct upload {
    const char *label;
    long long last_ms;
    int cols, width, finished;   /* terminal columns, bar cells */
} upload;

/* Drawn on stderr, in place on one line, at most every 100 ms and once at
 * 100%: stdout stays clean for the result (and for --json). */
static void upload_progress(void *ud, long long sent, long long total)
{
    upload *u = ud;
    char bar[128], a[32], b[32], line[512];
    long long t = now_ms();

    if (u->finished || (sent < total && t - u->last_ms < 100))
        return;
    u->last_ms = t;
    u->finished = sent >= total;
    bc_term_bar(bar, sizeof bar, u->width, (double)sent / (double)total);
    bc_term_bytes(a, sizeof a, sent);
    bc_term_bytes(b, sizeof b, total);
    snprintf(line, sizeof line, "uploading %s  %s %3d%%  %s of %s%s", u->label, bar,
             (int)(sent * 100 / total), a, b, u->finished ? ", waiting for the API" : "");
    /* Cut to the terminal: a wrapped line could not be redrawn with \r. */
    fprintf(stderr, "\r%.*s\033[K", u->cols - 1, line);
    fflush(stderr);
}

/* The agent: --agent, else the tenant's only one. */
static int pick_agent(cli *c, char *out, size_t cap)
{
    const char *given = bc_config_str(c->cfg, "agent");
    json_t *r, *agents;
    int rc;

    if (*given) {
        snprintf(out, cap, "%s", given);
        return 0;
    }
    if ((rc = api(c, "GET", "/v1/agents?limit=200", NULL, 0, NULL, &r)))
        return rc;
    agents = json_object_get(r, "agents");
    if (json_array_size(agents) == 1) {
        snprintf(out, cap, "%s", jstr(json_array_get(agents, 0), "id"));
        rc = 0;
    } else {
        bc_err_set(&c->err, json_array_size(agents)
                       ? "the tenant has %zu agents: pick one with --agent"
                       : "the tenant has no agent yet: create one first (POST /v1/agents)",
                   json_array_size(agents));
        rc = EXIT_USAGE;
    }
    json_decref(r);
    return rc;
}

/* The caller ID's number id: --from as an id, or as a registered E.164
 * number, else the tenant's default number. */
static int pick_number(cli *c, char *out, size_t cap)
{
    const char *given = bc_config_str(c->cfg, "from");
    char e164[BC_E164_MAX];
    int by_number = *given && bc_e164_normalize(given, e164) == 0, rc;
    json_t *r, *nums, *n;
    size_t i;

    if (*given && !by_number) {
        snprintf(out, cap, "%s", given);
        return 0;
    }
    if ((rc = api(c, "GET", "/v1/numbers?limit=200", NULL, 0, NULL, &r)))
        return rc;
    nums = json_object_get(r, "numbers");
    out[0] = '\0';
    json_array_foreach(nums, i, n) {
        int is_default = json_is_true(json_object_get(n, "is_default"));

        if (by_number ? !strcmp(jstr(n, "number"), e164) : is_default) {
            snprintf(out, cap, "%s", jstr(n, "id"));
            break;
        }
        if (!by_number && !out[0])
            snprintf(out, cap, "%s", jstr(n, "id"));   /* no default: the first */
    }
    json_decref(r);
    if (out[0])
        return 0;
    if (by_number)
        bc_err_set(&c->err, "--from %s is not a number registered to this tenant", e164);
    else
        bc_err_set(&c->err, "the tenant has no phone number: register one (POST /v1/numbers)");
    return EXIT_USAGE;
}

static void default_name(const char *file, char *out, size_t cap)
{
    const char *base = strrchr(file, '/');
    char *dot;

    snprintf(out, cap, "%s", base ? base + 1 : file);
    if ((dot = strrchr(out, '.')) && dot != out)
        *dot = '\0';
}

static int cmd_create(cli *c)
{
    const char *file = bc_config_str(c->cfg, "file");
    char *csv = NULL, *doc = NULL, agent[128], number[128], name[256], idem[64];
    size_t len = 0;
    json_t *recips = NULL, *body = NULL, *r = NULL;
    long conc = bc_config_int(c->cfg, "concurrency");
    upload u = { 0 };
    bc_client_opts o = { 0 };
    int rc = EXIT_USAGE;

    if (!*file) {
        bc_err_set(&c->err, "create needs the recipients: --file people.csv");
        return EXIT_USAGE;
    }
    if (bc_file_read(file, (size_t)MAX_CSV_BYTES, &csv, &len, &c->err) < 0)
        return EXIT_USAGE;
    if (!(recips = bc_csv_recipients(csv, len, MAX_RECIPIENTS, (size_t)MAX_CSV_BYTES, &c->err))) {
        bc_err_wrap(&c->err, "%s", file);
        if (strstr(c->err.msg, "more than 5000 recipients"))
            bc_err_wrap(&c->err, "a batch holds at most %d recipients; split the file",
                        MAX_RECIPIENTS);
        goto out;
    }
    if (json_array_size(recips) == 0) {
        bc_err_set(&c->err, "%s: no recipients, only a header", file);
        goto out;
    }
    if (conc < 0) {
        bc_err_set(&c->err, "--concurrency must be 1 or more (0: the default)");
        goto out;
    }
    if ((rc = pick_agent(c, agent, sizeof agent)) || (rc = pick_number(c, number, sizeof number)))
        goto out;
    if (*bc_config_str(c->cfg, "name"))
        snprintf(name, sizeof name, "%s", bc_config_str(c->cfg, "name"));
    else
        default_name(file, name, sizeof name);
    body = json_pack("{s:s,s:s,s:s,s:O}", "name", name, "agent_id", agent,
                     "from_number_id", number, "recipients", recips);
    if (conc > 0)
        json_object_set_new(body, "target_concurrency_limit", json_integer(conc));
    if (!body || !(doc = json_dumps(body, JSON_COMPACT))) {
        bc_err_set(&c->err, "out of memory");
        rc = EXIT_API;
        goto out;
    }
    /* One key per create: if the answer is lost, the same command with
     * this key cannot make a second batch. */
    if (*bc_config_str(c->cfg, "idempotency-key"))
        snprintf(idem, sizeof idem, "%s", bc_config_str(c->cfg, "idempotency-key"));
    else
        bc_id_new(idem, sizeof idem, "cli");
    o.idempotency_key = idem;
    o.max_send_bytes_per_s = bc_config_int(c->cfg, "limit-rate");
    if (isatty(STDERR_FILENO)) {
        u.label = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
        u.cols = bc_term_width(STDERR_FILENO, 80);
        u.width = u.cols / 4;
        o.progress = upload_progress;
        o.ud = &u;
    }
    rc = api(c, "POST", "/agents/calls/batches", doc, strlen(doc), &o, &r);
    if (o.progress && u.last_ms)
        fputc('\n', stderr);
    if (rc) {
        if (!strncmp(c->err.msg, "cannot reach", 12))
            bc_err_wrap(&c->err, "the batch may or may not exist: rerun with "
                                 "--idempotency-key %s to be sure it is created once; "
                                 "create", idem);
        goto out;
    }
    if (c->json) {
        print_json(r);
    } else {
        printf("created batch %s \"%s\": %lld recipients, status %s, concurrency limit %lld\n"
               "watch it: batchcall batches watch %s\n",
               jstr(r, "id"), jstr(r, "name"), jint(r, "total_calls_scheduled"),
               jstr(r, "status"), jint(r, "target_concurrency_limit"), jstr(r, "id"));
    }
out:
    json_decref(r);
    json_decref(body);
    json_decref(recips);
    free(doc);
    free(csv);
    return rc;
}

/* ---- watch, show ------------------------------------------------------- */

typedef struct outcome {
    const char *name;
    long long n;
} outcome;

static int by_count(const void *a, const void *b)
{
    const outcome *x = a, *y = b;

    return x->n != y->n ? (y->n > x->n ? 1 : -1) : strcmp(x->name, y->name);
}

static void outcomes_text(json_t *p, char *out, size_t cap)
{
    outcome o[32];
    const char *k;
    json_t *v;
    size_t n = 0, used = 0;

    json_object_foreach(json_object_get(p, "outcomes"), k, v)
        if (n < 32)
            o[n++] = (outcome){ k, (long long)json_integer_value(v) };
    qsort(o, n, sizeof *o, by_count);
    out[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s %lld", i ? "   " : "",
                                 o[i].name, o[i].n);
    if (!n)
        snprintf(out, cap, "none yet");
}

static long long finished_of(json_t *p)
{
    return jint(p, "counts.completed") + jint(p, "counts.failed") + jint(p, "counts.cancelled");
}

static void eta_text(json_t *p, char *out, size_t cap)
{
    json_t *eta = json_object_get(p, "eta_seconds");

    if (json_is_true(json_object_get(p, "done")))
        snprintf(out, cap, "done");
    else if (json_is_integer(eta))
        bc_term_duration(out, cap, (long long)json_integer_value(eta));
    else
        snprintf(out, cap, "-");
}

enum { FRAME_LINES = 7 };

/* The frame of watch and show: one labelled line per concept. */
static void render(json_t *p, int width, char lines[FRAME_LINES][512])
{
    long long total = jint(p, "total"), fin = finished_of(p);
    char bar[256], eta[32], outs[400];
    int barw = width - 40;

    if (barw > 60)
        barw = 60;
    if (barw < 10)
        barw = 10;
    bc_term_bar(bar, sizeof bar, barw, total ? (double)fin / (double)total : 0);
    eta_text(p, eta, sizeof eta);
    outcomes_text(p, outs, sizeof outs);
    snprintf(lines[0], 512, "batch     %s  \"%s\"", jstr(p, "id"), jstr(p, "name"));
    snprintf(lines[1], 512, "status    %s", jstr(p, "status"));
    snprintf(lines[2], 512, "progress  %s %3lld%%  %lld of %lld finished", bar,
             total ? fin * 100 / total : 0, fin, total);
    snprintf(lines[3], 512, "counts    queued %lld   live %lld   completed %lld   failed %lld"
                            "   cancelled %lld",
             jint(p, "counts.queued"), jint(p, "counts.live"), jint(p, "counts.completed"),
             jint(p, "counts.failed"), jint(p, "counts.cancelled"));
    snprintf(lines[4], 512, "live      %lld/%lld calls (batch limit)   %lld/%lld (tenant limit)",
             jint(p, "counts.live"), jint(p, "target_concurrency_limit"),
             jint(p, "tenant.live_calls"), jint(p, "tenant.concurrency_limit"));
    snprintf(lines[5], 512, "rate      %.1f calls/min   eta %s",
             json_number_value(json_object_get(p, "rate_per_min")), eta);
    snprintf(lines[6], 512, "outcomes  %s", outs);
}

/* One line per change, for a log or a pipe (no cursor movement there). */
static void plain_line(json_t *p, char *out, size_t cap)
{
    char eta[32], clock[16];
    time_t t = time(NULL);
    struct tm tm;

    eta_text(p, eta, sizeof eta);
    strftime(clock, sizeof clock, "%H:%M:%S", localtime_r(&t, &tm));
    snprintf(out, cap, "%s  %s  %lld/%lld finished  queued %lld  live %lld/%lld  completed %lld"
                       "  failed %lld  cancelled %lld  %.1f/min  eta %s",
             clock, jstr(p, "status"), finished_of(p), jint(p, "total"),
             jint(p, "counts.queued"), jint(p, "counts.live"),
             jint(p, "target_concurrency_limit"), jint(p, "counts.completed"),
             jint(p, "counts.failed"), jint(p, "counts.cancelled"),
             json_number_value(json_object_get(p, "rate_per_min")), eta);
}

static void sleep_ms(long ms)
{
    long long until = now_ms() + ms;

    while (!interrupted && now_ms() < until) {
        struct timespec ts = { 0, 50 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static int cmd_watch(cli *c, int once)
{
    int tty = !c->json && isatty(STDOUT_FILENO), width = bc_term_width(STDOUT_FILENO, 100);
    long interval = bc_config_int(c->cfg, "interval-ms");
    char lines[FRAME_LINES][512], last[1024] = "", now[1024];
    const char *ptrs[FRAME_LINES];
    long long t0 = now_ms();
    bc_term_frame f;
    json_t *p = NULL;
    int rc = 0, done = 0;

    if (interval < 100 || interval > 60000) {
        bc_err_set(&c->err, "--interval-ms must be between 100 and 60000");
        return EXIT_USAGE;
    }
    bc_term_frame_init(&f, stdout, width);
    if (!once) {
        /* Ctrl-C ends the watch, not the batch; the cursor comes back. */
        struct sigaction sa;

        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        if (tty)
            bc_term_cursor(stdout, 0);
    }
    for (;;) {
        if ((rc = progress(c, c->id, &p)))
            break;
        done = json_is_true(json_object_get(p, "done"));
        if (c->json) {
            print_json(p);
        } else if (tty || once) {
            render(p, width, lines);
            for (int i = 0; i < FRAME_LINES; i++)
                ptrs[i] = lines[i];
            if (once)
                for (int i = 0; i < FRAME_LINES; i++)
                    printf("%s\n", lines[i]);
            else
                bc_term_frame_draw(&f, ptrs, FRAME_LINES);
        } else {
            /* Only when something but the clock moved. */
            plain_line(p, now, sizeof now);
            if (strcmp(now + 10, last + (last[0] ? 10 : 0))) {
                printf("%s\n", now);
                fflush(stdout);
                snprintf(last, sizeof last, "%s", now);
            }
        }
        json_decref(p);
        p = NULL;
        if (done || once)
            break;
        sleep_ms(interval);
        if (interrupted) {
            rc = EXIT_INTERRUPTED;
            break;
        }
    }
    if (tty && !once) {
        bc_term_cursor(stdout, 1);
        if (done) {
            char d[32];
            bc_term_duration(d, sizeof d, (now_ms() - t0) / 1000);
            printf("done: watched for %s\n", d);
        }
    }
    return rc;
}

/* ---- list, cancel, retry ----------------------------------------------- */

static int cmd_list(cli *c)
{
    long limit = bc_config_int(c->cfg, "limit");
    char path[64];
    json_t *r, *b;
    size_t i;
    int rc;
    bc_term_table *t;
    static const char *head[] = { "ID", "NAME", "STATUS", ">FINISHED", ">%", ">LIVE",
                                  ">COMPLETED", ">FAILED", ">CANCELLED", "CREATED" };

    if (limit < 1 || limit > 100) {
        bc_err_set(&c->err, "--limit must be between 1 and 100");
        return EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/progress/batches?limit=%ld", limit);
    if ((rc = api(c, "GET", path, NULL, 0, NULL, &r)))
        return rc;
    if (c->json) {
        print_json(r);
        json_decref(r);
        return 0;
    }
    if (!(t = bc_term_table_new(10))) {
        json_decref(r);
        bc_err_set(&c->err, "out of memory");
        return EXIT_API;
    }
    bc_term_table_row(t, head);
    json_array_foreach(json_object_get(r, "data"), i, b) {
        char fin[48], pct[8], live[32], comp[24], fail[24], canc[24], name[32];
        long long total = jint(b, "total");

        snprintf(name, sizeof name, "%.24s%s", jstr(b, "name"),
                 strlen(jstr(b, "name")) > 24 ? "..." : "");
        snprintf(fin, sizeof fin, "%lld/%lld", finished_of(b), total);
        snprintf(pct, sizeof pct, "%lld%%", total ? finished_of(b) * 100 / total : 0);
        snprintf(live, sizeof live, "%lld/%lld", jint(b, "counts.live"),
                 jint(b, "target_concurrency_limit"));
        snprintf(comp, sizeof comp, "%lld", jint(b, "counts.completed"));
        snprintf(fail, sizeof fail, "%lld", jint(b, "counts.failed"));
        snprintf(canc, sizeof canc, "%lld", jint(b, "counts.cancelled"));
        const char *row[] = { jstr(b, "id"), name, jstr(b, "status"), fin, pct, live,
                              comp, fail, canc, jstr(b, "created_at") };
        bc_term_table_row(t, row);
    }
    if (json_array_size(json_object_get(r, "data")))
        bc_term_table_print(t, stdout);
    else
        printf("no batches yet\n");
    printf("tenant: %lld of %lld live calls%s\n", jint(r, "tenant.live_calls"),
           jint(r, "tenant.concurrency_limit"),
           json_is_true(json_object_get(r, "has_more")) ? "; more batches: raise --limit" : "");
    bc_term_table_free(t);
    json_decref(r);
    return 0;
}

static int cmd_action(cli *c, const char *verb)
{
    char path[160];
    json_t *before = NULL, *r = NULL, *after = NULL;
    int rc;

    /* Read first: retry says how many it queued again. */
    if ((rc = progress(c, c->id, &before)))
        return rc;
    snprintf(path, sizeof path, "/agents/calls/batches/%s/%s", c->id, verb);
    if ((rc = api(c, "POST", path, NULL, 0, NULL, &r)) || (rc = progress(c, c->id, &after)))
        goto out;
    if (c->json)
        print_json(after);
    else if (!strcmp(verb, "cancel"))
        printf("cancelled batch %s: %lld recipients will not be called, %lld live calls "
               "finish normally\n", c->id, jint(after, "counts.cancelled"),
               jint(after, "counts.live"));
    else
        printf("retried batch %s (retry %lld): %lld failed recipients queued again\n", c->id,
               jint(after, "retry_count"), jint(before, "counts.failed"));
out:
    json_decref(before);
    json_decref(r);
    json_decref(after);
    return rc;
}

/* ---- main --------------------------------------------------------------- */

int bc_batches_cli_main(int argc, char **argv)
{
    cli c = { 0 };
    const char *verb = argc > 1 ? argv[1] : "";
    char **args = NULL;
    int help = 0, rc = EXIT_USAGE, n = 0;

    if (!*verb || !strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
        fputs(usage, *verb ? stdout : stderr);
        bc_config_usage(keys, "batchcall batches COMMAND [ID]", "", *verb ? stdout : stderr);
        return *verb ? 0 : EXIT_USAGE;
    }
    /* argv minus the batch id, which is positional: "watch ID --json". */
    if (!(args = calloc((size_t)argc + 1, sizeof *args)))
        return EXIT_API;
    args[n++] = argv[1];
    for (int i = 2; i < argc; i++) {
        if (!c.id && i == 2 && argv[i][0] != '-')
            c.id = argv[i];
        else
            args[n++] = argv[i];
    }
    c.cfg = bc_config_load(keys, n, args, &help, &c.err);
    if (help) {
        fputs(usage, stdout);
        bc_config_usage(keys, "batchcall batches COMMAND [ID]", "", stdout);
        rc = 0;
        goto out;
    }
    if (!c.cfg)
        goto out;
    c.json = bc_config_bool(c.cfg, "json");
    if (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "watch") &&
        strcmp(verb, "show") && strcmp(verb, "cancel") && strcmp(verb, "retry")) {
        bc_err_set(&c.err, "unknown command 'batches %s' (see batchcall batches --help)", verb);
        goto out;
    }
    if (!strcmp(verb, "create") || !strcmp(verb, "list")) {
        if (c.id) {
            bc_err_set(&c.err, "batches %s takes no batch id ('%s')", verb, c.id);
            goto out;
        }
    } else if (!c.id) {
        bc_err_set(&c.err, "batches %s needs a batch id: batchcall batches %s ID", verb, verb);
        goto out;
    } else if (!id_ok(c.id)) {
        bc_err_set(&c.err, "'%s' is not a batch id", c.id);
        goto out;
    }
    if (!(c.client = bc_client_new(bc_config_str(c.cfg, "api-url"), bc_config_str(c.cfg, "api-key"),
                                   bc_config_int(c.cfg, "timeout"), &c.err)))
        goto out;
    if (!strcmp(verb, "create"))
        rc = cmd_create(&c);
    else if (!strcmp(verb, "watch") || !strcmp(verb, "show"))
        rc = cmd_watch(&c, !strcmp(verb, "show"));
    else if (!strcmp(verb, "list"))
        rc = cmd_list(&c);
    else
        rc = cmd_action(&c, verb);
out:
    if (rc && rc != EXIT_INTERRUPTED)
        fprintf(stderr, "batchcall: %s\n", c.err.msg);
    bc_client_free(c.client);
    bc_config_free(c.cfg);
    free(args);
    return rc;
}
