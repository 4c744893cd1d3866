#include "bc_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct bc_config {
    const bc_config_key *keys;
    size_t n;
    char **vals;    /* owned copies, one per key */
};

static int find_key(const bc_config_key *keys, size_t n, const char *flag,
                    size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(keys[i].flag) == len && strncmp(keys[i].flag, flag, len) == 0)
            return (int)i;
    return -1;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
        !strcasecmp(s, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
        !strcasecmp(s, "off")) {
        *out = 0;
        return 0;
    }
    return -1;
}

static int parse_long(const char *s, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(s, &end, 10);
    return (errno || end == s || *end) ? -1 : 0;
}

static int check_value(const bc_config_key *k, const char *v, bc_err *err)
{
    long l;
    int b;

    if (k->type == BC_INT && parse_long(v, &l) < 0) {
        bc_err_set(err, "%s (--%s): '%s' is not an integer", k->env, k->flag, v);
        return -1;
    }
    if (k->type == BC_BOOL && parse_bool(v, &b) < 0) {
        bc_err_set(err, "%s (--%s): '%s' is not a boolean", k->env, k->flag, v);
        return -1;
    }
    return 0;
}

bc_config *bc_config_load(const bc_config_key *keys, int argc, char **argv,
                          int *help_out, bc_err *err)
{
    bc_config *cfg = calloc(1, sizeof *cfg);

    if (help_out)
        *help_out = 0;
    if (!cfg)
        goto oom;
    cfg->keys = keys;
    while (keys[cfg->n].flag)
        cfg->n++;
    cfg->vals = calloc(cfg->n ? cfg->n : 1, sizeof *cfg->vals);
    if (!cfg->vals)
        goto oom;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *val;
        int k;

        if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "--help-markdown")) {
            if (help_out)
                *help_out = strcmp(a, "--help-markdown") ? 1 : 2;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            bc_err_set(err, "unexpected argument '%s'", a);
            goto fail;
        }
        a += 2;
        eq = strchr(a, '=');
        k = find_key(keys, cfg->n, a, eq ? (size_t)(eq - a) : strlen(a));
        if (k < 0) {
            bc_err_set(err, "unknown flag '--%.*s'", eq ? (int)(eq - a) : (int)strlen(a), a);
            goto fail;
        }
        if (eq)
            val = eq + 1;
        else if (keys[k].type == BC_BOOL)
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            bc_err_set(err, "flag '--%s' needs a value", keys[k].flag);
            goto fail;
        }
        free(cfg->vals[k]);
        if (!(cfg->vals[k] = strdup(val)))
            goto oom;
    }
    for (size_t k = 0; k < cfg->n; k++) {
        const char *v = cfg->vals[k];

        if (!v)
            v = getenv(keys[k].env);
        if (!v)
            v = keys[k].def;
        if (!v) {
            if (help_out && *help_out)
                continue;
            bc_err_set(err, "%s (--%s) is required", keys[k].env, keys[k].flag);
            goto fail;
        }
        if (check_value(&keys[k], v, err) < 0)
            goto fail;
        if (!cfg->vals[k] && !(cfg->vals[k] = strdup(v)))
            goto oom;
    }
    return cfg;
oom:
    bc_err_set(err, "config: out of memory");
fail:
    bc_config_free(cfg);
    return NULL;
}

void bc_config_free(bc_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n && cfg->vals; i++)
        free(cfg->vals[i]);
    free(cfg->vals);
    free(cfg);
}

void bc_config_usage(const bc_config_key *keys, const char *prog,
                     const char *about, FILE *out)
{
    fprintf(out, "Usage: %s [--flag=value ...]\n%s\n\n"
                 "Every flag can also be set by its environment variable; "
                 "a flag wins over the environment.\n\n", prog, about);
    for (const bc_config_key *k = keys; k->flag; k++)
        fprintf(out, "  --%-26s %-28s %s [default: %s]\n", k->flag, k->env,
                k->help, k->def ? k->def : "required");
    fprintf(out, "  --%-26s %-28s %s\n", "help", "", "print this help and exit");
    fprintf(out, "  --%-26s %-28s %s\n", "help-markdown", "",
            "print this table as Markdown and exit");
}

/* Writes s for a Markdown table cell: '|' escaped, newlines as spaces. */
static void cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s == '\n' ? ' ' : *s, out);
    }
}

void bc_config_markdown(const bc_config_key *keys, const char *prog,
                        const char *about, FILE *out)
{
    static const char *const types[] = { "string", "integer", "boolean" };

    fprintf(out, "## %s\n\n", prog);
    if (about && *about) {
        cell(out, about);
        fputs("\n\n", out);
    }
    fputs("| Flag | Environment variable | Type | Default | Description |\n"
          "|---|---|---|---|---|\n", out);
    for (const bc_config_key *k = keys; k->flag; k++) {
        fprintf(out, "| `--%s` | `%s` | %s | ", k->flag, k->env, types[k->type]);
        if (!k->def)
            fputs("*required*", out);
        else if (!*k->def)
            fputs("*empty*", out);
        else {
            fputs("`", out);
            cell(out, k->def);
            fputs("`", out);
        }
        fputs(" | ", out);
        cell(out, k->help);
        fputs(" |\n", out);
    }
    fputs("\n", out);
}

static const char *value(const bc_config *cfg, const char *flag)
{
    int k = find_key(cfg->keys, cfg->n, flag, strlen(flag));

    if (k < 0) {
        fprintf(stderr, "bc_config: no such key '%s'\n", flag);
        abort();
    }
    return cfg->vals[k] ? cfg->vals[k] : "";
}

const char *bc_config_str(const bc_config *cfg, const char *flag)
{
    return value(cfg, flag);
}

const char *bc_config_str_or(const bc_config *cfg, const char *flag, const char *fallback)
{
    const char *v = value(cfg, flag);

    return v && *v ? v : fallback;
}

long bc_config_int(const bc_config *cfg, const char *flag)
{
    long l = 0;

    parse_long(value(cfg, flag), &l);
    return l;
}

int bc_config_bool(const bc_config *cfg, const char *flag)
{
    int b = 0;

    parse_bool(value(cfg, flag), &b);
    return b;
}
