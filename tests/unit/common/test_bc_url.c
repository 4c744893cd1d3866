/* Tests common/bc_url.c: which webhook URLs are accepted, and why not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bc_url.h"

static void test_accepts_plain_urls(void **state)
{
    char why[200];

    (void)state;
    assert_int_equal(bc_url_check("https://example.com/hooks?x=1", 1, why, sizeof why), 0);
    assert_int_equal(bc_url_check("https://[::1]:8443/h", 1, why, sizeof why), 0);
    assert_int_equal(bc_url_check("http://127.0.0.1:5000/hook", 0, why, sizeof why), 0);
    assert_int_equal(bc_url_check("HTTPS://Example.com", 1, why, sizeof why), 0);
}

static void reject(const char *url, int https_only, const char *want)
{
    char why[200] = "";

    assert_int_equal(bc_url_check(url, https_only, why, sizeof why), -1);
    if (!strstr(why, want))
        fail_msg("'%s': '%s' does not say '%s'", url, why, want);
}

static void test_rejects_with_a_reason(void **state)
{
    char big[BC_URL_MAX + 20];

    (void)state;
    reject(NULL, 0, "non-empty");
    reject("", 0, "non-empty");
    reject("http://example.com/h", 1, "https");
    reject("ftp://example.com/h", 0, "http or https");
    reject("example.com/hook", 0, "http or https");
    reject("not a url", 0, "spaces");
    reject("https://exa mple.com", 0, "spaces");
    reject("https://h.com/\n", 0, "control");
    reject("https://", 0, "no host");
    reject("https:///path", 0, "no host");
    reject("https://h:99999/", 0, "malformed");
    reject("https://user:pw@h.com/", 0, "user name or password");
    reject("https://user@h.com/", 0, "user name or password");
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "https://", 8);
    reject(big, 0, "at most");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_plain_urls),
        cmocka_unit_test(test_rejects_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
