/* Tests common/bc_url.c: which webhook URLs are accepted, and why not. */
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bc_test.h"
#include "bc_url.h"

static void test_accepts_plain_urls(void **state)
{
    char why[200];

    (void)state;
    assert_int_equal(bc_url_check("https://example.com/hooks?x=1", 1, 1, why, sizeof why), 0);
    assert_int_equal(bc_url_check("https://[::1]:8443/h", 1, 1, why, sizeof why), 0);
    assert_int_equal(bc_url_check("https://h.com/a%2Fb?x=1&y=2#top", 1, 1, why, sizeof why), 0);
    assert_int_equal(bc_url_check("http://127.0.0.1:5000/hook", 0, 1, why, sizeof why), 0);
    assert_int_equal(bc_url_check("HTTPS://Example.com", 1, 1, why, sizeof why), 0);
}

static void reject(const char *url, int https_only, const char *want)
{
    char why[200] = "";

    assert_int_equal(bc_url_check(url, https_only, 1, why, sizeof why), -1);
    if (!strstr(why, want))
        fail_msg("'%s': '%s' does not say '%s'", url ? url : "(null)", why, want);
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
    reject("https://h.com/\x7f", 0, "control");
    reject("https://X:8318/\xc3\x8b", 0, "percent-encode");   /* raw UTF-8: an IRI, not a URI */
    reject("https://b\xc3\xbc" "cher.example/h", 0, "ASCII");
    reject("https://m:418#Z#J", 0, "RFC 3986");
    reject("https://h.com/a{b}", 0, "RFC 3986");
    reject("https://h.com/100%", 0, "RFC 3986");
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

static void refuse_private(const char *url)
{
    char why[200] = "";

    assert_int_equal(bc_url_check(url, 0, 1, why, sizeof why), 0);   /* allowed */
    assert_int_equal(bc_url_check(url, 0, 0, why, sizeof why), -1);
    if (!strstr(why, "loopback, private or link-local"))
        fail_msg("'%s': '%s'", url, why);
}

static void test_private_hosts_are_refused_unless_allowed(void **state)
{
    char why[200];

    (void)state;
    refuse_private("http://127.0.0.1:5000/hook");
    refuse_private("http://127.1.2.3/");
    refuse_private("http://10.0.0.7/");
    refuse_private("http://172.16.0.1/");
    refuse_private("http://172.31.255.255/");
    refuse_private("http://192.168.1.10:8080/x");
    refuse_private("http://169.254.169.254/latest/meta-data/");
    refuse_private("http://100.64.0.1/");
    refuse_private("http://0.0.0.0/");
    refuse_private("http://[::1]/");
    refuse_private("http://[::]/");
    refuse_private("http://[fe80::1%25eth0]/");
    refuse_private("http://[fd00::5]/");
    refuse_private("http://[::ffff:127.0.0.1]/");
    refuse_private("http://[::ffff:169.254.169.254]/");
    refuse_private("http://[64:ff9b::a00:1]/");
    refuse_private("http://localhost:9000/");
    refuse_private("http://LOCALHOST/");
    refuse_private("http://api.localhost/");
    /* Public addresses and names pass; names are checked at delivery. */
    assert_int_equal(bc_url_check("https://8.8.8.8/h", 1, 0, why, sizeof why), 0);
    assert_int_equal(bc_url_check("https://172.32.0.1/h", 1, 0, why, sizeof why), 0);
    assert_int_equal(bc_url_check("https://[2606:4700::1111]/h", 1, 0, why, sizeof why), 0);
    assert_int_equal(bc_url_check("https://hooks.example.com/h", 1, 0, why, sizeof why), 0);
    assert_int_equal(bc_url_check("https://notlocalhost.com/h", 1, 0, why, sizeof why), 0);
}

static int pub4(const char *a)
{
    struct sockaddr_in in = { .sin_family = AF_INET };

    assert_int_equal(inet_pton(AF_INET, a, &in.sin_addr), 1);
    return bc_addr_public((struct sockaddr *)&in);
}

static int pub6(const char *a)
{
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

    assert_int_equal(inet_pton(AF_INET6, a, &in6.sin6_addr), 1);
    return bc_addr_public((struct sockaddr *)&in6);
}

static void test_addresses_a_webhook_may_reach(void **state)
{
    struct sockaddr sa = { .sa_family = AF_UNIX };

    (void)state;
    assert_true(pub4("8.8.8.8") && pub4("1.1.1.1") && pub4("172.15.255.255") &&
                pub4("172.32.0.0") && pub4("100.63.255.255") && pub4("100.128.0.0") &&
                pub4("223.255.255.255"));
    assert_false(pub4("0.1.2.3") || pub4("10.255.255.255") || pub4("100.64.0.0") ||
                 pub4("100.127.255.255") || pub4("127.0.0.1") || pub4("169.254.0.1") ||
                 pub4("172.16.0.0") || pub4("172.31.1.1") || pub4("192.0.0.8") ||
                 pub4("192.0.2.1") || pub4("192.168.0.1") || pub4("198.18.0.1") ||
                 pub4("198.19.255.255") || pub4("198.51.100.1") || pub4("203.0.113.9") ||
                 pub4("224.0.0.1") || pub4("239.1.1.1") || pub4("240.0.0.1") ||
                 pub4("255.255.255.255"));
    assert_true(pub6("2606:4700::1111") && pub6("2a00:1450::1") && pub6("::ffff:8.8.8.8") &&
                pub6("64:ff9b::808:808"));
    assert_false(pub6("::") || pub6("::1") || pub6("fe80::1") || pub6("febf::1") ||
                 pub6("fc00::1") || pub6("fdff::1") || pub6("ff02::1") ||
                 pub6("2001:db8::1") || pub6("::ffff:10.0.0.1") || pub6("::ffff:127.0.0.1") ||
                 pub6("64:ff9b::7f00:1") || pub6("::127.0.0.1") || pub6("fec0::1"));
    assert_false(bc_addr_public(&sa));
    assert_false(bc_addr_public(NULL));
}

BC_TEST_MAIN(cmocka_unit_test(test_accepts_plain_urls),
             cmocka_unit_test(test_rejects_with_a_reason),
             cmocka_unit_test(test_private_hosts_are_refused_unless_allowed),
             cmocka_unit_test(test_addresses_a_webhook_may_reach))
