#include "bc_url.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int bc_url_check(const char *url, int https_only, char *why, size_t cap)
{
    CURLU *h = NULL;
    CURLUcode rc;
    char *user = NULL, *password = NULL;
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
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            snprintf(why, cap, "url must not contain spaces or control characters");
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
    ok = 0;
out:
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(h);
    return ok;
}
