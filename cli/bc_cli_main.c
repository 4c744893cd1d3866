/* batchcall: the admin and operator command line. It talks to PostgreSQL
 * (and Kafka for topics) directly; tenants, first keys, credits and plan
 * limits are managed here, never through a public route. `batchcall
 * batches ...` is the tenant's side (cli/bc_batches_cli.c): it talks only to
 * the public API, with the tenant's key. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_agent.h"
#include "bc_apikey.h"
#include "bc_audit.h"
#include "bc_batches_cli.h"
#include "bc_config.h"
#include "bc_credits.h"
#include "bc_crypto.h"
#include "bc_dnc.h"
#include "bc_e164.h"
#include "bc_file.h"
#include "bc_kafka.h"
#include "bc_log.h"
#include "bc_migrate.h"
#include "bc_pg.h"

static const bc_config_key keys[] = {
    { "pg-dsn", "BC_PG_DSN", BC_STR, "postgresql://batchcall@127.0.0.1:5432/batchcall", "PostgreSQL connection string" },
    { "kafka-brokers", "BC_KAFKA_BROKERS", BC_STR, "127.0.0.1:9092", "Kafka bootstrap servers" },
    { "topic-prefix", "BC_TOPIC_PREFIX", BC_STR, "batchcall", "prefix of every Kafka topic name" },
    { "regions", "BC_REGIONS", BC_STR, "us,eu,apac", "regions to create topics for" },
    { "partitions", "BC_PARTITIONS", BC_INT, "6", "partitions of every topic but the carrier events (topics create)" },
    { "events-partitions", "BC_EVENTS_PARTITIONS", BC_INT, "3", "partitions of each region's carrier events topic (topics create): each linger's events go out in one request per partition they fall in, so more cost the broker and the API CPU on every call (docs/operations.md)" },
    { "tenant", "BC_TENANT", BC_STR, "", "tenant id (key, agent, number, limits, credits)" },
    { "name", "BC_NAME", BC_STR, "demo", "name of the tenant or agent to create" },
    { "plan", "BC_PLAN", BC_STR, "go", "plan name: free, go, plus, custom" },
    { "concurrency", "BC_CONCURRENCY", BC_INT, "10", "tenant concurrent-call limit" },
    { "rate-per-min", "BC_RATE_PER_MIN", BC_INT, "300", "tenant API requests per minute" },
    { "burst", "BC_BURST", BC_INT, "25", "tenant API burst allowance" },
    { "cents", "BC_CENTS", BC_INT, "0", "credits to add, in cents" },
    { "price-per-min", "BC_PRICE_PER_MIN", BC_INT, "-1", "tenant price per minute of call, in cents (tenant-create, tenant-limits); -1: the plan's price (docs/api.md, Credits)" },
    { "region", "BC_REGION", BC_STR, "us", "region of the tenant or agent" },
    { "kind", "BC_KEY_KIND", BC_STR, "secret", "key kind: secret or publishable" },
    { "number", "BC_NUMBER", BC_STR, "", "E.164 phone number to register" },
    { "agent-endpoint", "BC_AGENT_ENDPOINT", BC_STR, "", "how the agent's calls reach it: wss:// (Media Streams), https:// (TwiML URL) or sip: (docs/agents.md); agent-create, demo" },
    { "limit", "BC_AUDIT_LIMIT", BC_INT, "50", "audit: rows to show, newest first (1-1000)" },
    { "offset", "BC_AUDIT_OFFSET", BC_INT, "0", "audit: rows to skip" },
    { "action", "BC_AUDIT_ACTION", BC_STR, "", "audit: only rows of this action (batch.create, credits.add, ...)" },
    { "file", "BC_FILE", BC_STR, "", "file to import: dnc-import, a CSV with a header naming a phone_number, to_number or number column; tz-load, deploy/tz-prefixes.py's output" },
    { "legal-hours", "BC_LEGAL_HOURS", BC_STR, "on", "tenant-legal-hours: on or off, the tenant's legal calling hours policy (docs/api.md)" },
    { "legal-start", "BC_LEGAL_START", BC_STR, "08:00", "tenant-legal-hours: opening of the legal window, HH:MM in the recipient's local time" },
    { "legal-end", "BC_LEGAL_END", BC_STR, "21:00", "tenant-legal-hours: end of the legal window, HH:MM, after legal-start; no call starts at or after it" },
    { "reason", "BC_DNC_REASON", BC_STR, "", "why the numbers are listed (dnc-import; empty: none)" },
    { "log-level", "BC_LOG_LEVEL", BC_STR, "warn", "debug, info, warn or error" },
    { 0 },
};

static const bc_pg_stmt stmts[] = {
    /* A tenant's first credit is a top-up in the ledger like any other
     * (the ledger row is checked against tenants at the statement's end).
     * Its price per minute is its plan's (plan_prices) unless given. */
    { "tenant_insert",
      "WITH l AS (INSERT INTO credit_ledger (tenant_id, kind, cents, balance_after, actor)"
      "           SELECT $1, 'topup', $7::bigint, $7::bigint, $10 WHERE $7::bigint <> 0)"
      " INSERT INTO tenants (id, name, plan, concurrency, rate_per_min, burst,"
      " credits_cents, default_region, price_per_min_cents) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,"
      " coalesce(nullif($9::int, -1),"
      "          (SELECT p.price_per_min_cents FROM plan_prices p WHERE p.plan = $3), 10))" },
    { "tenant_limits",
      "UPDATE tenants SET plan = $2, concurrency = $3, rate_per_min = $4, burst = $5,"
      " price_per_min_cents = coalesce(nullif($6::int, -1),"
      "   (SELECT p.price_per_min_cents FROM plan_prices p WHERE p.plan = $2), price_per_min_cents)"
      " WHERE id = $1" },
    { "tenant_legal_hours",
      "UPDATE tenants SET legal_hours = $2::boolean, legal_start = $3::time, legal_end = $4::time"
      " WHERE id = $1" },
    /* Replaces the prefix-to-zone map with the file's, in one statement:
     * prefixes the file no longer has go, changed ones are updated, the
     * same file again changes nothing. A zone PostgreSQL does not know is
     * left out (and counted) rather than failing every lookup it is in.
     * $1 [{"p" prefix,"z" [zones]}] */
    /* Loads of the map take turns (every API pod's init container runs
     * one, deploy/k8s/base/api.yaml): the later one, its snapshot taken
     * after the lock, finds the map loaded and changes nothing. */
    { "tz_load_lock", "SELECT pg_advisory_xact_lock(hashtext('batchcall.tz_load'))" },
    { "tz_load",
      "WITH d AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS d(p text, z text[])),"
      " k AS MATERIALIZED (SELECT name FROM pg_timezone_names),"
      /* One join of every (prefix, zone) pair to the known zones: a test
       * per prefix rebuilt the hash of k for each of 3,240 (0.47 s). */
      " kz AS (SELECT d.p, array_agg(u.zone ORDER BY u.zone) AS z"
      "          FROM d, unnest(d.z) AS u(zone) WHERE u.zone IN (SELECT name FROM k)"
      "         GROUP BY d.p),"
      " ok AS MATERIALIZED (SELECT d.p, coalesce(kz.z, '{}') AS z"
      "          FROM d LEFT JOIN kz ON kz.p = d.p),"
      " del AS (DELETE FROM tz_prefixes t WHERE NOT EXISTS"
      "           (SELECT 1 FROM ok WHERE ok.p = t.prefix AND cardinality(ok.z) > 0)"
      "         RETURNING 1),"
      " up AS (INSERT INTO tz_prefixes (prefix, zones)"
      "        SELECT p, z FROM ok WHERE cardinality(z) > 0"
      "        ON CONFLICT (prefix) DO UPDATE SET zones = excluded.zones"
      "         WHERE tz_prefixes.zones IS DISTINCT FROM excluded.zones RETURNING 1)"
      " SELECT (SELECT count(*) FROM ok WHERE cardinality(z) > 0) AS prefixes,"
      "        (SELECT count(*) FROM up) AS changed, (SELECT count(*) FROM del) AS removed,"
      "        (SELECT coalesce(string_agg(DISTINCT u.zone, ','), '')"
      "           FROM d, unnest(d.z) AS u(zone)"
      "          WHERE u.zone NOT IN (SELECT name FROM k)) AS unknown" },
    BC_PG_INCLUDE(bc_credits_stmts),
    BC_PG_INCLUDE(bc_audit_stmts),
    { "key_insert",
      "INSERT INTO api_keys (id, tenant_id, kind, lookup, hash) VALUES ($1,$2,$3,$4,$5)" },
    { "agent_insert",
      "INSERT INTO agents (id, tenant_id, name, region, endpoint)"
      " VALUES ($1,$2,$3,$4,nullif($5, ''))" },
    { "number_insert",
      "INSERT INTO phone_numbers (id, tenant_id, number, is_default)"
      " VALUES ($1,$2,$3,NOT EXISTS (SELECT 1 FROM phone_numbers WHERE tenant_id = $2))" },
    BC_PG_INCLUDE(bc_dnc_stmts),
    { 0, 0 },
};

static const char usage[] =
    "Usage: batchcall COMMAND [--flag=value ...]\n\n"
    "Commands:\n"
    "  migrate               apply the SQL migrations not yet applied\n"
    "  topics                create the Kafka topics of every region\n"
    "  tenant-create         create a tenant (--name --plan --concurrency --rate-per-min --burst --cents --region)\n"
    "  tenant-limits         set a tenant's plan limits (--tenant --plan --concurrency --rate-per-min --burst)\n"
    "  tenant-legal-hours    set a tenant's legal calling hours policy, on by default\n"
    "                        (--tenant --legal-hours on|off --legal-start --legal-end)\n"
    "  credits-add           add credits to a tenant (--tenant --cents)\n"
    "  key-create            issue an API key, shown once (--tenant --kind)\n"
    "  agent-create          create an agent (--tenant --name --region --agent-endpoint)\n"
    "  number-create         register a from-number (--tenant --number); the first is the default\n"
    "  dnc-import            add a CSV of numbers to a tenant's do-not-call list, all or none\n"
    "                        (--tenant --file --reason)\n"
    "  tz-load               load libphonenumber's prefix-to-time-zone map, made by\n"
    "                        deploy/tz-prefixes.py (--file); idempotent (docs/operations.md)\n"
    "  demo                  all of the above for a demo tenant; prints its ids and key\n"
    "  audit                 a tenant's audit log, newest first (--tenant --limit --offset --action)\n"
    "  batches ...           a tenant's commands over the public API, not PostgreSQL:\n"
    "                        create, watch, show, list, cancel, retry (batchcall batches --help)\n";

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);

    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(j);
}

/* Runs one write of an admin command and its audit row (action on target,
 * by the operator op, for tenant) in one transaction: neither is kept
 * without the other. A write that changes no row is an error. Takes
 * ownership of detail. With res, the statement's result is left there
 * (caller PQclear()s it). */
static int admin_write(bc_pg *pg, const bc_audit_actor *op, const char *tenant,
                       const char *stmt, int n, const char *const *p, const char *action,
                       const char *target, json_t *detail, PGresult **out, bc_err *err)
{
    bc_audit_actor a = *op;
    PGresult *res = NULL;

    a.tenant_id = tenant;
    if (bc_pg_begin(pg, err) < 0) {
        json_decref(detail);
        return -1;
    }
    if (!(res = bc_pg_exec(pg, stmt, n, p, err)))
        goto fail;
    if (PQcmdTuples(res)[0] == '0') {
        bc_err_set(err, "%s: no such row", stmt);
        goto fail;
    }
    if (bc_audit_write(pg, &a, action, target, detail, err) < 0) {
        detail = NULL;
        goto fail;
    }
    detail = NULL;
    if (bc_pg_commit(pg, err) < 0)
        goto fail;
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
fail:
    bc_pg_rollback(pg);
    PQclear(res);
    json_decref(detail);
    return -1;
}

static int tenant_create(bc_pg *pg, const bc_audit_actor *op, bc_config *c,
                         long cents_default, char *id, size_t cap, bc_err *err)
{
    char conc[24], rate[24], burst[24], cents[24], price[24];
    long credit = bc_config_int(c, "cents");

    if (bc_id_new(id, cap, "org") < 0)
        return -1;
    snprintf(conc, sizeof conc, "%ld", bc_config_int(c, "concurrency"));
    snprintf(rate, sizeof rate, "%ld", bc_config_int(c, "rate-per-min"));
    snprintf(burst, sizeof burst, "%ld", bc_config_int(c, "burst"));
    snprintf(cents, sizeof cents, "%ld", credit ? credit : cents_default);
    snprintf(price, sizeof price, "%ld", bc_config_int(c, "price-per-min"));
    const char *p[] = { id, bc_config_str(c, "name"), bc_config_str(c, "plan"),
                        conc, rate, burst, cents, bc_config_str(c, "region"), price,
                        op->operator_name };
    return admin_write(pg, op, id, "tenant_insert", 10, p, "tenant.create", id,
                       json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "name", p[1], "plan", p[2],
                                 "region", p[7], "concurrency", (json_int_t)atoll(conc),
                                 "rate_per_min", (json_int_t)atoll(rate),
                                 "burst", (json_int_t)atoll(burst),
                                 "credits_cents", (json_int_t)atoll(cents)),
                       NULL, err);
}

static json_t *key_create(bc_pg *pg, const bc_audit_actor *op, const char *tenant,
                          int publishable, bc_err *err)
{
    char token[BC_APIKEY_MAX], lookup[BC_APIKEY_LOOKUP], hash[BC_SHA256_HEX], id[48];

    if (bc_apikey_new(publishable, token, lookup, hash) < 0 ||
        bc_id_new(id, sizeof id, "key") < 0) {
        bc_err_set(err, "key: no randomness");
        return NULL;
    }
    const char *p[] = { id, tenant, publishable ? "publishable" : "secret", lookup, hash };
    if (admin_write(pg, op, tenant, "key_insert", 5, p, "key.issue", id,
                    json_pack("{s:s}", "type", p[2]), NULL, err) < 0)
        return NULL;
    /* The key in two halves, for the batch-call surface's two headers. */
    return json_pack("{s:s,s:s,s:s,s:s#,s:s}", "key_id", id, "kind", p[2],
                     "api_key", token, "x_api_key", token, (int)22,
                     "x_api_secret", token + 23);
}

/* An agent without an endpoint can be made, but no batch for it until it
 * has one (the API says so). */
static int agent_create(bc_pg *pg, const bc_audit_actor *op, const char *tenant,
                        const char *name, const char *region, const char *endpoint, char *id,
                        size_t cap, bc_err *err)
{
    char why[200];

    if (*endpoint && bc_agent_endpoint_check(endpoint, why, sizeof why) < 0) {
        bc_err_set(err, "--agent-endpoint: %s", why);
        return -1;
    }
    if (bc_id_new(id, cap, "agent") < 0)
        return -1;
    const char *p[] = { id, tenant, name, region, endpoint };
    return admin_write(pg, op, tenant, "agent_insert", 5, p, "agent.create", id,
                       json_pack("{s:s,s:s}", "name", name, "region", region), NULL, err);
}

static int number_create(bc_pg *pg, const bc_audit_actor *op, const char *tenant,
                         const char *number, char *id, size_t cap, bc_err *err)
{
    if (bc_id_new(id, cap, "ap") < 0)
        return -1;
    const char *p[] = { id, tenant, number };
    return admin_write(pg, op, tenant, "number_insert", 3, p, "number.create", id,
                       json_pack("{s:s}", "number", number), NULL, err);
}

/* The tenant's audit log, operators and hosts included. */
static int audit_show(bc_pg *pg, bc_config *c, const char *tenant, bc_err *err)
{
    long limit = bc_config_int(c, "limit"), offset = bc_config_int(c, "offset");
    const char *action = bc_config_str(c, "action");
    long long total = 0;
    json_t *rows;

    if (limit < 1 || limit > 1000 || offset < 0 || offset > 1000000000) {
        bc_err_set(err, "--limit must be 1 to 1000 and --offset 0 to 1000000000");
        return -1;
    }
    if (!(rows = bc_audit_list(pg, tenant, *action ? action : NULL, (int)limit, (int)offset, 1,
                               &total, err)))
        return -1;
    print_json(json_pack("{s:o,s:I,s:i,s:i}", "audit_logs", rows, "total", (json_int_t)total,
                         "limit", (int)limit, "offset", (int)offset));
    return 0;
}

#define MAX_DNC_FILE (256L << 20)   /* bytes: ~15 million numbers */

/* dnc-import: the tenant's DNC list gains every number of the file, in one
 * transaction, BC_DNC_CHUNK numbers per statement. */
static int dnc_import(bc_pg *pg, const bc_audit_actor *op, const char *tenant, bc_config *c,
                      bc_err *err)
{
    bc_audit_actor who = *op;
    const char *file = bc_config_str(c, "file"), *reason = bc_config_str(c, "reason");
    char *buf = NULL;
    size_t len = 0;
    long long rows, added;
    int rc;

    if (!*file) {
        bc_err_set(err, "dnc-import needs --file numbers.csv");
        return -1;
    }
    if (bc_file_read(file, (size_t)MAX_DNC_FILE, &buf, &len, err) < 0)
        return -1;
    who.tenant_id = tenant;
    rc = bc_dnc_import_csv(pg, &who, buf, len, *reason ? reason : NULL, &rows, &added, err);
    free(buf);
    if (rc < 0) {
        bc_err_wrap(err, "%s: nothing was listed", file);
        return -1;
    }
    print_json(json_pack("{s:s,s:I,s:I,s:I}", "tenant_id", tenant, "numbers", (json_int_t)rows,
                         "added", (json_int_t)added, "already_listed", (json_int_t)(rows - added)));
    return 0;
}

/* "HH:MM" into minutes since midnight, or -1. */
static int hhmm(const char *s)
{
    if (strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

/* tenant-legal-hours: the tenant's legal calling hours policy, on or off,
 * and its window (sql/0023_legal_hours.sql). */
static int legal_hours_set(bc_pg *pg, const bc_audit_actor *op, const char *tenant, bc_config *c,
                           bc_err *err)
{
    const char *on = bc_config_str(c, "legal-hours"), *start = bc_config_str(c, "legal-start"),
               *end = bc_config_str(c, "legal-end");
    int s = hhmm(start), e = hhmm(end);

    if (strcmp(on, "on") && strcmp(on, "off")) {
        bc_err_set(err, "--legal-hours must be on or off, not '%s'", on);
        return -1;
    }
    if (s < 0 || e < 0 || s >= e) {
        bc_err_set(err, "--legal-start and --legal-end must be HH:MM, start before end "
                   "(got '%s' and '%s')", start, end);
        return -1;
    }
    const char *p[] = { tenant, !strcmp(on, "on") ? "true" : "false", start, end };
    if (admin_write(pg, op, tenant, "tenant_legal_hours", 4, p, "tenant.legal_hours", tenant,
                    json_pack("{s:b,s:s,s:s}", "legal_hours", !strcmp(on, "on"),
                              "start", start, "end", end), NULL, err) < 0)
        return -1;
    print_json(json_pack("{s:s,s:b,s:s,s:s}", "tenant_id", tenant, "legal_hours",
                         !strcmp(on, "on"), "start", start, "end", end));
    return 0;
}

#define TZ_MAX_ZONES 64   /* zones of one prefix; libphonenumber's widest has 42 */

/* One line of the map, "prefix|zone&zone..." (libphonenumber's own
 * timezones/map_data.txt format), appended to rows. Returns -1 with err
 * set if the line is malformed. */
static int tz_line(char *line, long lineno, json_t *rows, bc_err *err)
{
    char *bar = strchr(line, '|'), *save = NULL;
    json_t *zones;
    size_t plen;

    if (!bar || (plen = (size_t)(bar - line)) == 0 || plen > 15 ||
        strspn(line, "0123456789") != plen) {
        bc_err_set(err, "line %ld: not 'digits|zone&zone...'", lineno);
        return -1;
    }
    *bar = '\0';
    zones = json_array();
    for (char *z = strtok_r(bar + 1, "&", &save); z; z = strtok_r(NULL, "&", &save)) {
        size_t n = strlen(z);
        if (n == 0 || n > 64 || strspn(z, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789_/+-") != n ||
            json_array_size(zones) == TZ_MAX_ZONES) {
            bc_err_set(err, "line %ld: bad zone list", lineno);
            json_decref(zones);
            return -1;
        }
        json_array_append_new(zones, json_string(z));
    }
    if (json_array_size(zones) == 0) {
        bc_err_set(err, "line %ld: no zone", lineno);
        json_decref(zones);
        return -1;
    }
    json_array_append_new(rows, json_pack("{s:s,s:o}", "p", line, "z", zones));
    return 0;
}

/* tz-load: replaces tz_prefixes with the file's map, all or nothing. */
static int tz_load(bc_pg *pg, bc_config *c, bc_err *err)
{
    const char *file = bc_config_str(c, "file");
    char *buf = NULL, *doc = NULL, *save = NULL;
    size_t len = 0;
    long lineno = 0;
    json_t *rows = json_array();
    PGresult *res = NULL;
    int rc = -1;

    if (!*file) {
        bc_err_set(err, "tz-load needs --file tz-prefixes.txt (deploy/tz-prefixes.py)");
        goto out;
    }
    if (bc_file_read(file, (size_t)MAX_DNC_FILE, &buf, &len, err) < 0)
        goto out;
    /* bc_file_read() gives bytes, not a string. */
    {
        char *t = realloc(buf, len + 1);
        if (!t) {
            bc_err_set(err, "tz-load: out of memory");
            goto out;
        }
        buf = t;
        buf[len] = '\0';
    }
    for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        lineno++;
        l[strcspn(l, "\r")] = '\0';
        if (*l == '#' || *l == '\0')
            continue;
        if (tz_line(l, lineno, rows, err) < 0) {
            bc_err_wrap(err, "%s", file);
            goto out;
        }
    }
    if (json_array_size(rows) == 0) {
        bc_err_set(err, "%s: no prefix; nothing was loaded", file);
        goto out;
    }
    if (!(doc = json_dumps(rows, JSON_COMPACT))) {
        bc_err_set(err, "tz-load: out of memory");
        goto out;
    }
    const char *p[] = { doc };
    if (bc_pg_begin(pg, err) < 0)
        goto out;
    if (bc_pg_run(pg, "tz_load_lock", 0, NULL, err) < 0 ||
        !(res = bc_pg_exec(pg, "tz_load", 1, p, err)) || bc_pg_commit(pg, err) < 0) {
        bc_pg_rollback(pg);
        goto out;
    }
    print_json(json_pack("{s:I,s:I,s:I,s:s}",
                         "prefixes", (json_int_t)bc_pg_int(res, 0, "prefixes", 0),
                         "changed", (json_int_t)bc_pg_int(res, 0, "changed", 0),
                         "removed", (json_int_t)bc_pg_int(res, 0, "removed", 0),
                         "unknown_zones", PQgetvalue(res, 0, PQfnumber(res, "unknown"))));
    rc = 0;
out:
    PQclear(res);
    free(doc);
    free(buf);
    json_decref(rows);
    return rc;
}

/* The carrier events get fewer partitions than the rest. Keyed by call,
 * a linger's events fall in every partition, one produce request each:
 * with all topics at 12, as deployed before, B2 spent about 15 % more CPU
 * per attempt than with the events alone at 3 (bench/RESULTS.md,
 * thirty-fifth session). Three consumers of a region's events are enough:
 * any worker may end any call, and the rest still dial. */
static int topics(bc_config *c, bc_err *err)
{
    char *regions = strdup(bc_config_str(c, "regions")), *save = NULL;
    char names[32][160];
    const char *ptrs[32];
    int parts[32];
    const char *prefix = bc_config_str(c, "topic-prefix");
    int n = 0, rc, all = (int)bc_config_int(c, "partitions");
    int events = (int)bc_config_int(c, "events-partitions");

    if (all < 1 || events < 1) {
        bc_err_set(err, "--partitions and --events-partitions must be at least 1");
        free(regions);
        return -1;
    }
    parts[n] = all;
    bc_kafka_topic(names[n++], sizeof names[0], prefix, "call-results", NULL);
    parts[n] = all;
    bc_kafka_topic(names[n++], sizeof names[0], prefix, "webhooks-dlq", NULL);
    for (char *r = strtok_r(regions, ",", &save); r && n < 30;
         r = strtok_r(NULL, ",", &save)) {
        parts[n] = all;
        bc_kafka_topic(names[n++], sizeof names[0], prefix, "jobs", r);
        parts[n] = events;
        bc_kafka_topic(names[n++], sizeof names[0], prefix, "carrier-events", r);
    }
    free(regions);
    for (int i = 0; i < n; i++)
        ptrs[i] = names[i];
    rc = bc_kafka_create_topics(bc_config_str(c, "kafka-brokers"), ptrs, parts, n, 1,
                                10000, err);
    if (rc == 0) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, json_string(names[i]));
        print_json(json_pack("{s:o}", "topics", arr));
    }
    return rc;
}

static int command(const char *cmd, bc_config *c, bc_log *log, bc_err *err)
{
    const char *dsn = bc_config_str(c, "pg-dsn"), *tenant = bc_config_str(c, "tenant");
    char id[48], agent[48], number[48], opname[128], host[256];
    bc_pg *pg = NULL;
    json_t *key = NULL;
    PGresult *res = NULL;
    int rc = -1, applied;
    bc_audit_actor op = { NULL, NULL, opname, host };

    if (!strcmp(cmd, "migrate")) {
        if (bc_migrate_run(dsn, log, &applied, err) < 0)
            return -1;
        print_json(json_pack("{s:i}", "applied", applied));
        return 0;
    }
    if (!strcmp(cmd, "topics"))
        return topics(c, err);
    if (!(pg = bc_pg_connect(dsn, stmts, err)))
        return -1;
    bc_audit_operator(opname, sizeof opname, host, sizeof host);
    if (!strcmp(cmd, "tz-load")) {
        rc = tz_load(pg, c, err);
        goto out;
    }
    if (strcmp(cmd, "tenant-create") && strcmp(cmd, "demo") && !*tenant) {
        bc_err_set(err, "%s needs --tenant", cmd);
        goto out;
    }
    if (!strcmp(cmd, "tenant-create")) {
        if (tenant_create(pg, &op, c, 0, id, sizeof id, err) < 0)
            goto out;
        print_json(json_pack("{s:s}", "tenant_id", id));
    } else if (!strcmp(cmd, "tenant-limits")) {
        char conc[24], rate[24], burst[24], price[24];
        snprintf(conc, sizeof conc, "%ld", bc_config_int(c, "concurrency"));
        snprintf(rate, sizeof rate, "%ld", bc_config_int(c, "rate-per-min"));
        snprintf(burst, sizeof burst, "%ld", bc_config_int(c, "burst"));
        snprintf(price, sizeof price, "%ld", bc_config_int(c, "price-per-min"));
        const char *p[] = { tenant, bc_config_str(c, "plan"), conc, rate, burst, price };
        if (admin_write(pg, &op, tenant, "tenant_limits", 6, p, "tenant.limits", tenant,
                        json_pack("{s:s,s:I,s:I,s:I}", "plan", p[1],
                                  "concurrency", (json_int_t)atoll(conc),
                                  "rate_per_min", (json_int_t)atoll(rate),
                                  "burst", (json_int_t)atoll(burst)), NULL, err) < 0)
            goto out;
        print_json(json_pack("{s:s}", "tenant_id", tenant));
    } else if (!strcmp(cmd, "tenant-legal-hours")) {
        if (legal_hours_set(pg, &op, tenant, c, err) < 0)
            goto out;
    } else if (!strcmp(cmd, "credits-add")) {
        char cents[24];
        snprintf(cents, sizeof cents, "%ld", bc_config_int(c, "cents"));
        const char *p[] = { tenant, cents, op.operator_name };
        /* Through the ledger: the grant and its row, in one statement. */
        if (admin_write(pg, &op, tenant, "credits_topup", 3, p, "credits.add", tenant,
                        json_pack("{s:I}", "cents", (json_int_t)bc_config_int(c, "cents")), &res,
                        err) < 0)
            goto out;
        print_json(json_pack("{s:s,s:I}", "tenant_id", tenant, "credits_cents",
                             (json_int_t)bc_pg_int(res, 0, "credits_cents", 0)));
    } else if (!strcmp(cmd, "key-create")) {
        if (!(key = key_create(pg, &op, tenant, !strcmp(bc_config_str(c, "kind"), "publishable"),
                               err)))
            goto out;
        print_json(key);
    } else if (!strcmp(cmd, "agent-create")) {
        if (agent_create(pg, &op, tenant, bc_config_str(c, "name"), bc_config_str(c, "region"),
                         bc_config_str(c, "agent-endpoint"), id, sizeof id, err) < 0)
            goto out;
        print_json(json_pack("{s:s}", "agent_id", id));
    } else if (!strcmp(cmd, "number-create")) {
        if (!bc_e164_valid(bc_config_str(c, "number"))) {
            bc_err_set(err, "--number '%s' is not E.164", bc_config_str(c, "number"));
            goto out;
        }
        if (number_create(pg, &op, tenant, bc_config_str(c, "number"), id, sizeof id, err) < 0)
            goto out;
        print_json(json_pack("{s:s}", "from_number_id", id));
    } else if (!strcmp(cmd, "dnc-import")) {
        if (dnc_import(pg, &op, tenant, c, err) < 0)
            goto out;
    } else if (!strcmp(cmd, "demo")) {
        const char *num = *bc_config_str(c, "number") ? bc_config_str(c, "number")
                                                       : "+14155550100";
        /* A demo tenant starts with credit to spend: $10,000. */
        if (tenant_create(pg, &op, c, 1000000, id, sizeof id, err) < 0 ||
            !(key = key_create(pg, &op, id, 0, err)) ||
            agent_create(pg, &op, id, "demo agent", bc_config_str(c, "region"),
                         bc_config_str(c, "agent-endpoint"), agent, sizeof agent, err) < 0 ||
            number_create(pg, &op, id, num, number, sizeof number, err) < 0)
            goto out;
        json_object_set_new(key, "tenant_id", json_string(id));
        json_object_set_new(key, "agent_id", json_string(agent));
        json_object_set_new(key, "agent_endpoint",
                            *bc_config_str(c, "agent-endpoint")
                                ? json_string(bc_config_str(c, "agent-endpoint")) : json_null());
        json_object_set_new(key, "from_number_id", json_string(number));
        json_object_set_new(key, "from_number", json_string(num));
        print_json(key);
        key = NULL;
    } else if (!strcmp(cmd, "audit")) {
        if (audit_show(pg, c, tenant, err) < 0)
            goto out;
    } else {
        bc_err_set(err, "unknown command '%s'", cmd);
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    bc_pg_free(pg);
    return rc;
}

int main(int argc, char **argv)
{
    bc_err err = { "" };
    bc_config *c;
    bc_log *log;
    int help = 0, rc;

    /* A tenant's commands: their own flags, the API instead of PostgreSQL. */
    if (argc >= 2 && !strcmp(argv[1], "batches"))
        return bc_batches_cli_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "--help-markdown")) {
        bc_config_markdown(keys, "batchcall", "The admin and operator command line "
                           "(tenants, keys, limits, credits, migrations, topics).", stdout);
        return 0;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, stdout);
        bc_config_usage(keys, "batchcall COMMAND", "", stdout);
        return argc < 2 ? 2 : 0;
    }
    c = bc_config_load(keys, argc - 1, argv + 1, &help, &err);
    if (help) {
        fputs(usage, stdout);
        bc_config_usage(keys, "batchcall COMMAND", "", stdout);
        bc_config_free(c);
        return 0;
    }
    if (!c) {
        fprintf(stderr, "batchcall: %s\n", err.msg);
        return 2;
    }
    log = bc_log_new("cli", (bc_level)bc_log_level_parse(bc_config_str(c, "log-level")));
    rc = command(argv[1], c, log, &err);
    if (rc < 0)
        bc_log(log, BC_ERROR, "cli.failed", "{s:s,s:s}", "command", argv[1], "error", err.msg);
    bc_log_free(log);
    bc_config_free(c);
    return rc < 0 ? 1 : 0;
}
