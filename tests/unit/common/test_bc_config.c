/* Tests common/bc_config.c: flags win over env, env over defaults, bad
 * values are refused naming the variable. */
#include <stdlib.h>
#include <string.h>

#include "bc_config.h"
#include "bc_test.h"

static const bc_config_key keys[] = {
    { "pg-dsn", "BCT_PG_DSN", BC_STR, "postgres:///x", "dsn" },
    { "http-port", "BCT_HTTP_PORT", BC_INT, "8080", "port" },
    { "verbose", "BCT_VERBOSE", BC_BOOL, "false", "chatty" },
    { "token", "BCT_TOKEN", BC_STR, NULL, "required" },
    { 0 },
};

static void test_defaults_env_and_flags(void **state)
{
    (void)state;
    char *argv[] = { "prog", "--http-port=9000", "--token", "t1", NULL };
    bc_err err;
    int help;

    setenv("BCT_PG_DSN", "postgres://env", 1);
    setenv("BCT_HTTP_PORT", "7000", 1);
    bc_config *c = bc_config_load(keys, 4, argv, &help, &err);
    assert_non_null(c);
    assert_int_equal(help, 0);
    assert_string_equal(bc_config_str(c, "pg-dsn"), "postgres://env");
    assert_int_equal(bc_config_int(c, "http-port"), 9000);   /* flag beats env */
    assert_int_equal(bc_config_bool(c, "verbose"), 0);        /* default */
    assert_string_equal(bc_config_str(c, "token"), "t1");
    /* Set: its value; empty or unset: the fallback. */
    assert_string_equal(bc_config_str_or(c, "pg-dsn", "fb"), "postgres://env");
    assert_string_equal(bc_config_str_or(c, "token", "fb"), "t1");
    bc_config_free(c);
    setenv("BCT_PG_DSN", "", 1);
    c = bc_config_load(keys, 4, argv, &help, &err);
    assert_non_null(c);
    assert_string_equal(bc_config_str_or(c, "pg-dsn", "fb"), "fb");
    bc_config_free(c);
    unsetenv("BCT_PG_DSN");
    unsetenv("BCT_HTTP_PORT");
}

static void test_bad_int_names_variable(void **state)
{
    (void)state;
    char *argv[] = { "prog", "--token=x", NULL };
    bc_err err;

    setenv("BCT_HTTP_PORT", "80x", 1);
    assert_null(bc_config_load(keys, 2, argv, NULL, &err));
    assert_non_null(strstr(err.msg, "BCT_HTTP_PORT"));
    unsetenv("BCT_HTTP_PORT");
}

static void test_missing_required_and_unknown_flag(void **state)
{
    (void)state;
    char *argv1[] = { "prog", NULL };
    char *argv2[] = { "prog", "--token=x", "--nope=1", NULL };
    bc_err err;

    assert_null(bc_config_load(keys, 1, argv1, NULL, &err));
    assert_non_null(strstr(err.msg, "BCT_TOKEN"));
    assert_null(bc_config_load(keys, 3, argv2, NULL, &err));
    assert_non_null(strstr(err.msg, "--nope"));
}

static void test_help_and_bool_flag(void **state)
{
    (void)state;
    char *argv[] = { "prog", "--help", "--verbose", NULL };
    bc_err err;
    int help = 0;
    bc_config *c = bc_config_load(keys, 3, argv, &help, &err);

    assert_int_equal(help, 1);   /* --help works even with a required key unset */
    assert_non_null(c);
    assert_int_equal(bc_config_bool(c, "verbose"), 1);
    bc_config_free(c);
}

static void test_markdown_table(void **state)
{
    (void)state;
    static const bc_config_key md[] = {
        { "mode", "BCT_MODE", BC_STR, "a|b", "one of a|b" },
        { "secret", "BCT_SECRET", BC_STR, NULL, "must be set" },
        { "empty", "BCT_EMPTY", BC_INT, "", "nothing by default" },
        { 0 },
    };
    char *argv[] = { "prog", "--help-markdown", NULL };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bc_err err;
    int help = 0;
    bc_config *c = bc_config_load(keys, 2, argv, &help, &err);

    assert_int_equal(help, 2);
    bc_config_free(c);
    bc_config_markdown(md, "prog", "About it.", f);
    fclose(f);
    assert_non_null(strstr(buf, "## prog\n\nAbout it.\n\n| Flag |"));
    assert_non_null(strstr(buf, "| `--mode` | `BCT_MODE` | string | `a\\|b` | one of a\\|b |\n"));
    assert_non_null(strstr(buf, "| `--secret` | `BCT_SECRET` | string | *required* | must be set |"));
    assert_non_null(strstr(buf, "| `--empty` | `BCT_EMPTY` | integer | *empty* |"));
    free(buf);
}

BC_TEST_MAIN(cmocka_unit_test(test_defaults_env_and_flags),
             cmocka_unit_test(test_bad_int_names_variable),
             cmocka_unit_test(test_missing_required_and_unknown_flag),
             cmocka_unit_test(test_help_and_bool_flag),
             cmocka_unit_test(test_markdown_table))
