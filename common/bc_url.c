#include "bc_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* An IPv4 address in host order is public unless in a special range. */
static int v4_public(uint32_t a)
{
    static const struct { uint32_t net; int bits; } no[] = {
        { 0x00000000, 8 },  /* "this network" */
        { 0x0a000000, 8 },  /* private */
        { 0x64400000, 10 }, /* shared (carrier-grade NAT) */
        { 0x7f000000, 8 },  /* loopback */
        { 0xa9fe0000, 16 }, /* link-local, cloud metadata */
        { 0xac100000, 12 }, /* private */
        { 0xc0000000, 24 }, /* IETF protocol assignments */
        { 0xc0000200, 24 }, /* documentation */
        { 0xc0a80000, 16 }, /* private */
        { 0xc6120000, 15 }, /* benchmarking */
        { 0xc6336400, 24 }, /* documentation */
        { 0xcb007100, 24 }, /* documentation */
        { 0xe0000000, 4 },  /* multicast */
        { 0xf0000000, 4 },  /* reserved, broadcast */
    };

    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if ((a & (0xffffffffu << (32 - no[i].bits))) == no[i].net)
            return 0;
    return 1;
}

static int v6_public(const unsigned char *b)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
    static const unsigned char zero[16];

    if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12))
        return v4_public((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                         (uint32_t)b[14] << 8 | b[15]);
    if (!memcmp(b, zero, 15))
        return 0;                               /* :: and ::1 */
    if (!memcmp(b, zero, 12))
        return 0;                               /* IPv4-compatible, deprecated */
    if ((b[0] & 0xfe) == 0xfc)
        return 0;                               /* unique local fc00::/7 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return 0;                               /* link-local fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return 0;                               /* site-local fec0::/10 */
    if (b[0] == 0xff)
        return 0;                               /* multicast */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return 0;                               /* documentation 2001:db8::/32 */
    return 1;
}

int bc_addr_public(const struct sockaddr *sa)
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in;

        memcpy(&in, sa, sizeof in);
        return v4_public(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;

        memcpy(&in6, sa, sizeof in6);
        return v6_public(in6.sin6_addr.s6_addr);
    }
    return 0;
}

/* 0 if host (as libcurl gives it: IPv6 in brackets) may be called, else
 * -1 with why set. Names other than localhost pass: they are checked
 * where they resolve. */
static int host_check(const char *host, char *why, size_t cap)
{
    char buf[256];
    size_t n = strlen(host);
    struct sockaddr_in in = { 0 };
    struct sockaddr_in6 in6 = { 0 };

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= sizeof buf)
            return 0;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        char *zone = strchr(buf, '%');
        if (zone)
            *zone = '\0';
        in6.sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, buf, &in6.sin6_addr) == 1 &&
            !bc_addr_public((struct sockaddr *)&in6))
            goto refuse;
        return 0;
    }
    in.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &in.sin_addr) == 1 && !bc_addr_public((struct sockaddr *)&in))
        goto refuse;
    if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost.") ||
        (n > 10 && !strcasecmp(host + n - 10, ".localhost")))
        goto refuse;
    return 0;
refuse:
    snprintf(why, cap, "url must not point to a loopback, private or link-local address");
    return -1;
}

int bc_url_check(const char *url, int https_only, int allow_private, char *why, size_t cap)
{
    CURLU *h = NULL;
    CURLUcode rc;
    char *user = NULL, *password = NULL, *host = NULL;
    size_t skip;
    int ok = -1;

    if (!url || !*url) {
        snprintf(why, cap, "url must be a non-empty string");
        return -1;
    }
    if (strlen(url) > BC_URL_MAX) {
        snprintf(why, cap, "url must be at most %d characters", BC_URL_MAX);
        return -1;
    }
    /* A URI (RFC 3986), as the OpenAPI document's format uri says: ASCII,
     * none of the characters it leaves out, one fragment, and a '%' only
     * as an escape. libcurl would take raw UTF-8 and most of the rest. */
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= ' ' || *p >= 0x7f) {
            snprintf(why, cap, "url must be printable ASCII: no spaces or control characters; "
                               "percent-encode the rest");
            return -1;
        }
        if (strchr("\"<>\\^`{|}", *p) || (*p == '#' && strchr((const char *)p + 1, '#')) ||
            (*p == '%' && !(isxdigit(p[1]) && isxdigit(p[2])))) {
            snprintf(why, cap, "url must be a URI (RFC 3986): percent-encode '%c'", *p);
            return -1;
        }
    }
    if (!strncasecmp(url, "https://", 8)) {
        skip = 8;
    } else if (!strncasecmp(url, "http://", 7)) {
        if (https_only) {
            snprintf(why, cap, "url must use https");
            return -1;
        }
        skip = 7;
    } else {
        snprintf(why, cap, https_only ? "url must be an https URL"
                                      : "url must be an http or https URL");
        return -1;
    }
    /* libcurl reads "https:///x" as host "x"; we want a host written out. */
    if (url[skip] == '/' || url[skip] == '\0') {
        snprintf(why, cap, "url has no host");
        return -1;
    }
    if (!(h = curl_url())) {
        snprintf(why, cap, "url cannot be checked");
        return -1;
    }
    rc = curl_url_set(h, CURLUPART_URL, url, 0);
    if (rc != CURLUE_OK) {
        snprintf(why, cap, "url is malformed: %s", curl_url_strerror(rc));
        goto out;
    }
    curl_url_get(h, CURLUPART_USER, &user, 0);
    curl_url_get(h, CURLUPART_PASSWORD, &password, 0);
    if (user || password) {
        snprintf(why, cap, "url must not carry a user name or password");
        goto out;
    }
    if (!allow_private) {
        if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host) {
            snprintf(why, cap, "url has no host");
            goto out;
        }
        if (host_check(host, why, cap) < 0)
            goto out;
    }
    ok = 0;
out:
    curl_free(user);
    curl_free(password);
    curl_free(host);
    curl_url_cleanup(h);
    return ok;
}
