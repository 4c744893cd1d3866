/* bc_url: checks URLs that tenants hand us to call later (webhooks). */
#ifndef BC_URL_H
#define BC_URL_H

#include <stddef.h>

#define BC_URL_MAX 2048

struct sockaddr;

/* Checks that url is an absolute http(s) URL we may POST to: scheme https
 * (or http when https_only is 0), a host, no user or password (they would
 * be shown back in lists), at most BC_URL_MAX bytes, printable ASCII only
 * (no whitespace, control or non-ASCII bytes: those are percent-encoded),
 * and what libcurl's URL parser accepts. Unless
 * allow_private, a host that is an address must be a public one
 * (bc_addr_public) and "localhost" is refused; names are checked again
 * where they are resolved, at delivery. 0, or -1 with why set to words fit
 * for an error body. */
int bc_url_check(const char *url, int https_only, int allow_private, char *why, size_t cap);

/* 1 if sa (AF_INET or AF_INET6) is an address of the public internet; 0
 * for loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
 * (169.254/16, fe80::/10: cloud metadata lives there), shared (100.64/10),
 * unspecified, multicast, broadcast and the other special-purpose ranges,
 * IPv4-mapped and NAT64 IPv6 forms included, and for other families. A
 * webhook sender connects only to these, so a tenant's URL cannot reach
 * our own network (SSRF). */
int bc_addr_public(const struct sockaddr *sa);

#endif
