#include "bc_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE (64L << 20)
#define CARTESIA_VERSION "2026-03-01"

struct bc_client {
    CURL *curl;
    char *base;
    char auth[320];
};

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

typedef struct xfer {
    const bc_client_opts *o;
} xfer;

bc_client *bc_client_new(const char *base_url, const char *api_key, long timeout_s,
                         bc_err *err)
{
    bc_client *c = calloc(1, sizeof *c);
    size_t n;

    if (!c || !(c->base = strdup(base_url))) {
        free(c);
        bc_err_set(err, "client: out of memory");
        return NULL;
    }
    n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    if (strncmp(c->base, "http://", 7) && strncmp(c->base, "https://", 8)) {
        bc_err_set(err, "the API URL '%s' must start with http:// or https://", base_url);
        bc_client_free(c);
        return NULL;
    }
    if (strlen(api_key) + 32 > sizeof c->auth || strpbrk(api_key, "\r\n")) {
        bc_err_set(err, "the API key is not one batchcall issues");
        bc_client_free(c);
        return NULL;
    }
    snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", api_key);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c->curl = curl_easy_init())) {
        bc_err_set(err, "libcurl could not start");
        bc_client_free(c);
        return NULL;
    }
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, timeout_s > 0 ? timeout_s : 60L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    /* No signals from libcurl: the CLI's own SIGINT handling stays in charge. */
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "batchcall-cli");
    return c;
}

void bc_client_free(bc_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->base);
    free(c);
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t len = size * n;

    if (b->len + len + 1 > (size_t)MAX_RESPONSE)
        return 0;   /* too big: curl fails the transfer */
    if (b->len + len + 1 > b->cap) {
        size_t cap = (b->len + len + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    xfer *x = ud;

    (void)dltotal;
    (void)dlnow;
    if (ultotal > 0)
        x->o->progress(x->o->ud, (long long)ulnow, (long long)ultotal);
    return 0;
}

int bc_client_call(bc_client *c, const char *method, const char *path, const char *body,
                   size_t len, const bc_client_opts *o, long *status, json_t **out,
                   bc_err *err)
{
    static const bc_client_opts none = { 0 };
    struct curl_slist *h = NULL;
    char url[2048], idem[320];
    buf b = { 0 };
    xfer x;
    CURLcode rc;
    int ret = -1;

    if (!o)
        o = &none;
    x.o = o;
    *out = NULL;
    *status = 0;
    snprintf(url, sizeof url, "%s%s", c->base, path);
    h = curl_slist_append(h, c->auth);
    h = curl_slist_append(h, "Cartesia-Version: " CARTESIA_VERSION);
    h = curl_slist_append(h, "Accept: application/json");
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    /* An empty Expect: sends a big body at once instead of waiting for 100. */
    h = curl_slist_append(h, "Expect:");
    if (o->idempotency_key && *o->idempotency_key) {
        snprintf(idem, sizeof idem, "Idempotency-Key: %s", o->idempotency_key);
        h = curl_slist_append(h, idem);
    }
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
    if (strcmp(method, "GET")) {
        /* Without a body, still say so: Content-Length: 0. */
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
    } else {
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->curl, CURLOPT_MAX_SEND_SPEED_LARGE,
                     (curl_off_t)(o->max_send_bytes_per_s > 0 ? o->max_send_bytes_per_s : 0));
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, o->progress ? 0L : 1L);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, o->progress ? on_progress : NULL);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &x);
    rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK) {
        bc_err_set(err, "cannot reach the API at %s: %s", c->base, curl_easy_strerror(rc));
        goto out;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
    if (b.len)
        *out = json_loadb(b.p, b.len, 0, NULL);
    ret = 0;
out:
    /* The handle is reused: drop what points into this call's stack. */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, NULL);
    curl_slist_free_all(h);
    free(b.p);
    return ret;
}

void bc_client_error(long status, json_t *body, bc_err *err)
{
    json_t *e = json_object_get(body, "error");
    const char *msg = NULL, *code = NULL;

    if (json_is_string(e)) {                 /* Cartesia, Rymi, /progress */
        msg = json_string_value(e);
        code = json_string_value(json_object_get(body, "code"));
    } else if (json_is_object(e)) {          /* batch-call's envelope */
        msg = json_string_value(json_object_get(body, "message"));
        code = json_string_value(json_object_get(e, "code"));
    }
    if (status == 401)
        bc_err_set(err, "the API key was refused: check BC_API_KEY or --api-key (HTTP 401%s%s)",
                   code ? " " : "", code ? code : "");
    else if (msg)
        bc_err_set(err, "%s (HTTP %ld%s%s)", msg, status, code ? " " : "", code ? code : "");
    else
        bc_err_set(err, "the API answered HTTP %ld", status);
}
