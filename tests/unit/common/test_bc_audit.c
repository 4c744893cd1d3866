/* Tests common/bc_audit.c: how the admin CLI names its operator and host
 * (the rows themselves need PostgreSQL: tests/integration/test_audit_log.py). */

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_audit.h"
#include "bc_test.h"

static const char *me(void)
{
    struct passwd *pw = getpwuid(getuid());

    return pw ? pw->pw_name : NULL;
}

static void test_operator_is_the_os_user_and_host_the_hostname(void **state)
{
    char op[128], host[256], want[256];

    (void)state;
    unsetenv("SUDO_USER");
    bc_audit_operator(op, sizeof op, host, sizeof host);
    if (me())
        assert_string_equal(op, me());
    else
        assert_true(!strncmp(op, "uid ", 4));
    gethostname(want, sizeof want);
    want[sizeof want - 1] = '\0';
    assert_string_equal(host, want[0] ? want : "unknown");
}

static void test_sudo_names_who_asked(void **state)
{
    char op[128], host[256], want[200];

    (void)state;
    setenv("SUDO_USER", "alice-audit", 1);
    bc_audit_operator(op, sizeof op, host, sizeof host);
    snprintf(want, sizeof want, "%s (sudo: alice-audit)", me() ? me() : op);
    if (me())
        assert_string_equal(op, want);
    else
        assert_non_null(strstr(op, "(sudo: alice-audit)"));
    unsetenv("SUDO_USER");
}

static void test_small_buffers_are_cut_not_overrun(void **state)
{
    char op[4], host[3];

    (void)state;
    setenv("SUDO_USER", "someone-with-a-long-name", 1);
    bc_audit_operator(op, sizeof op, host, sizeof host);
    assert_true(strlen(op) < sizeof op);
    assert_true(strlen(host) < sizeof host);
    unsetenv("SUDO_USER");
}

BC_TEST_MAIN(cmocka_unit_test(test_operator_is_the_os_user_and_host_the_hostname),
             cmocka_unit_test(test_sudo_names_who_asked),
             cmocka_unit_test(test_small_buffers_are_cut_not_overrun))
