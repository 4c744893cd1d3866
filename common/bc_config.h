/* bc_config: one table per process; every key is a --flag and an env var. */
#ifndef BC_CONFIG_H
#define BC_CONFIG_H

#include <stdio.h>

#include "bc_err.h"

typedef enum { BC_STR, BC_INT, BC_BOOL } bc_config_type;

typedef struct bc_config_key {
    const char *flag;    /* "pg-dsn" -> --pg-dsn */
    const char *env;     /* "BC_PG_DSN" */
    bc_config_type type;
    const char *def;     /* default, as text; NULL means "required" */
    const char *help;
} bc_config_key;

typedef struct bc_config bc_config;

/* Parses argv, then the environment, then defaults (flags win over env).
 * keys must end with a zeroed entry and outlive the config. Returns NULL with
 * err set on an unknown flag or a bad value (the message names the variable).
 * *help_out is set to 1 when --help was given, 2 for --help-markdown (the
 * config is still returned). */
bc_config *bc_config_load(const bc_config_key *keys, int argc, char **argv,
                          int *help_out, bc_err *err);
void bc_config_free(bc_config *cfg);

/* Prints usage: every flag, its env var, default and help text. */
void bc_config_usage(const bc_config_key *keys, const char *prog,
                     const char *about, FILE *out);

/* Prints the table as Markdown: a "## prog" section with about and one row
 * per key (flag, env var, type, default, help). docs/configuration.md is
 * made of these (deploy/gen-config-doc.sh). */
void bc_config_markdown(const bc_config_key *keys, const char *prog,
                        const char *about, FILE *out);

/* Values by flag name; asking for an unknown flag aborts (a programming error). */
const char *bc_config_str(const bc_config *cfg, const char *flag);
long bc_config_int(const bc_config *cfg, const char *flag);
int bc_config_bool(const bc_config *cfg, const char *flag);
/* The string value, or fallback when it is unset or empty (a setting that
 * defaults to another's value: callback-url to public-url). */
const char *bc_config_str_or(const bc_config *cfg, const char *flag, const char *fallback);

#endif
