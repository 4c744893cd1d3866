#include "bc_twilio.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypto.h"

void bc_form_free(bc_form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->key[i]);
        free(f->val[i]);
    }
    f->n = 0;
}

static char *unescape(const char *s, size_t len)
{
    char *tmp = strndup(s, len), *out = NULL, *dec;
    int outlen = 0;

    if (!tmp)
        return NULL;
    /* Form encoding writes spaces as '+'; curl only decodes %XX. */
    for (char *p = tmp; *p; p++)
        if (*p == '+')
            *p = ' ';
    dec = curl_easy_unescape(NULL, tmp, 0, &outlen);
    if (dec && memchr(dec, '\0', (size_t)outlen) == NULL)
        out = strdup(dec);
    curl_free(dec);
    free(tmp);
    return out;
}

int bc_form_parse(const char *body, size_t len, bc_form *f)
{
    const char *p = body, *end = body + len;

    f->n = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));

        if (stop > p) {
            if (f->n == BC_FORM_MAX)
                goto fail;
            f->key[f->n] = unescape(p, (size_t)((eq ? eq : stop) - p));
            f->val[f->n] = eq ? unescape(eq + 1, (size_t)(stop - eq - 1)) : strdup("");
            f->n++;
            if (!f->key[f->n - 1] || !f->val[f->n - 1])
                goto fail;
        }
        p = stop + 1;
    }
    return 0;
fail:
    bc_form_free(f);
    return -1;
}

const char *bc_form_get(const bc_form *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->key[i], key))
            return f->val[i];
    return NULL;
}

int bc_form_add(bc_form *f, const char *key, const char *val)
{
    if (f->n == BC_FORM_MAX)
        return -1;
    f->key[f->n] = strdup(key);
    f->val[f->n] = strdup(val);
    f->n++;
    return f->key[f->n - 1] && f->val[f->n - 1] ? 0 : -1;
}

char *bc_form_encode(const bc_form *f)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    if (!out)
        return NULL;
    for (size_t i = 0; i < f->n; i++) {
        char *k = curl_easy_escape(NULL, f->key[i], 0);
        char *v = curl_easy_escape(NULL, f->val[i], 0);

        fprintf(out, "%s%s=%s", i ? "&" : "", k ? k : "", v ? v : "");
        curl_free(k);
        curl_free(v);
    }
    fclose(out);
    return buf;
}

static int cmp_idx(const void *a, const void *b, void *f)
{
    const bc_form *form = f;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(form->key[i], form->key[j]);

    return c ? c : strcmp(form->val[i], form->val[j]);
}

int bc_twilio_sign(const char *token, const char *url, const bc_form *params,
                   char *out, size_t cap)
{
    size_t idx[BC_FORM_MAX], n = params ? params->n : 0, len = 0;
    char *buf = NULL;
    FILE *s = open_memstream(&buf, &len);
    int rc;

    if (!s)
        return -1;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof *idx, cmp_idx, (void *)params);
    fputs(url, s);
    for (size_t i = 0; i < n; i++)
        fprintf(s, "%s%s", params->key[idx[i]], params->val[idx[i]]);
    fclose(s);
    rc = bc_hmac_sha1_b64(token, buf, len, out, cap);
    free(buf);
    return rc;
}

int bc_twilio_check(const char *token, const char *url, const bc_form *params,
                    const char *sig)
{
    char want[64];

    if (!sig || bc_twilio_sign(token, url, params, want, sizeof want) < 0)
        return 0;
    return bc_ct_streq(want, sig);
}

const char *const BC_TWILIO_EVENTS[BC_TWILIO_NEVENTS] = { "initiated", "ringing", "answered",
                                                          "completed" };

int bc_twilio_events(const char *words, const char *seps, int *bits, char *bad, size_t cap)
{
    char buf[256], *save = NULL, *w;

    snprintf(buf, sizeof buf, "%s", words ? words : "");
    for (w = strtok_r(buf, seps, &save); w; w = strtok_r(NULL, seps, &save)) {
        int i;

        for (i = 0; i < BC_TWILIO_NEVENTS && strcmp(w, BC_TWILIO_EVENTS[i]); i++)
            ;
        if (i == BC_TWILIO_NEVENTS) {
            snprintf(bad, cap, "%s", w);
            return -1;
        }
        *bits |= 1 << i;
    }
    return 0;
}
