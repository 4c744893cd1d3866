/* bc_url: checks URLs that tenants hand us to call later (webhooks). */
#ifndef BC_URL_H
#define BC_URL_H

#include <stddef.h>

#define BC_URL_MAX 2048

/* Checks that url is an absolute http(s) URL we may POST to: scheme https
 * (or http when https_only is 0), a host, no user or password (they would
 * be shown back in lists), at most BC_URL_MAX bytes, no whitespace or
 * control characters, and what libcurl's URL parser accepts. 0, or -1 with
 * why set to words fit for an error body. */
int bc_url_check(const char *url, int https_only, char *why, size_t cap);

#endif
