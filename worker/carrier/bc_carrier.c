#include "bc_carrier.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_twilio.h"

#define MAX_RESPONSE 16384

struct bc_carrier {
    CURLM *multi;
    char base[512];          /* .../Accounts/{sid}: calls live under it */
    char url[512];
    char userpwd[256];
    bc_dial_done done;
    bc_update_done updated;
    void *ud;
    int inflight;
    long timeout_ms;
    bc_metric *latency;
    char amd[24];            /* MachineDetection asked for; "" none */
    int events;              /* StatusCallbackEvent asked for: BC_EV_* bits */
};

typedef struct xfer {
    int update;              /* an update of a live call, not a dial */
    bc_dial d;
    CURL *easy;
    char *form;
    char body[MAX_RESPONSE];
    size_t len;
} xfer;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n, room = sizeof x->body - 1 - x->len;

    /* A longer answer than we need is cut, not an error. */
    memcpy(x->body + x->len, p, len < room ? len : room);
    x->len += len < room ? len : room;
    x->body[x->len] = '\0';
    return len;
}

bc_carrier *bc_carrier_new(const char *base_url, const char *account,
                           const char *token, long timeout_ms, bc_dial_done done, void *ud,
                           bc_err *err)
{
    bc_carrier *c = calloc(1, sizeof *c);

    if (!c || !(c->multi = curl_multi_init())) {
        free(c);
        bc_err_set(err, "carrier: cannot create curl multi handle");
        return NULL;
    }
    snprintf(c->base, sizeof c->base, "%s/2010-04-01/Accounts/%s", base_url, account);
    snprintf(c->url, sizeof c->url, "%s/Calls.json", c->base);
    snprintf(c->userpwd, sizeof c->userpwd, "%s:%s", account, token);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    c->done = done;
    c->ud = ud;
    c->events = BC_EV_COMPLETED;
    /* Reuse connections; cap them so a burst cannot open thousands. */
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 64L);
    return c;
}

void bc_carrier_free(bc_carrier *c)
{
    CURLMsg *m;
    int left;

    if (!c)
        return;
    while ((m = curl_multi_info_read(c->multi, &left)))
        ;
    curl_multi_cleanup(c->multi);
    free(c);
}

void bc_carrier_observe(bc_carrier *c, bc_metric *hist)
{
    c->latency = hist;
}

int bc_carrier_machine_detection(bc_carrier *c, const char *mode, bc_err *err)
{
    if (!mode || !*mode || !strcmp(mode, "off")) {
        c->amd[0] = '\0';
        return 0;
    }
    if (strcmp(mode, "Enable") && strcmp(mode, "DetectMessageEnd")) {
        bc_err_set(err, "machine detection '%s': use DetectMessageEnd, Enable or off", mode);
        return -1;
    }
    snprintf(c->amd, sizeof c->amd, "%s", mode);
    return 0;
}

int bc_carrier_events(bc_carrier *c, const char *events, bc_err *err)
{
    int bits = BC_EV_COMPLETED;
    char bad[64];

    if (bc_twilio_events(events, " ,", &bits, bad, sizeof bad) < 0) {
        bc_err_set(err, "carrier event '%s': use initiated, ringing, answered, completed", bad);
        return -1;
    }
    c->events = bits;
    return 0;
}

int bc_dial_copy(bc_dial *dst, const bc_dial *src)
{
    *dst = *src;
    dst->twiml = src->twiml ? strdup(src->twiml) : NULL;
    dst->url = src->url ? strdup(src->url) : NULL;
    if ((src->twiml && !dst->twiml) || (src->url && !dst->url)) {
        bc_dial_clear(dst);
        return -1;
    }
    return 0;
}

void bc_dial_clear(bc_dial *d)
{
    free(d->twiml);
    free(d->url);
    d->twiml = d->url = NULL;
}

int bc_carrier_inflight(const bc_carrier *c)
{
    return c->inflight;
}

static int start(bc_carrier *c, xfer *x, const char *url);

int bc_carrier_dial(bc_carrier *c, const bc_dial *d, bc_err *err)
{
    xfer *x = calloc(1, sizeof *x);
    bc_form f = { 0 };
    char num[16];

    if (!x || bc_dial_copy(&x->d, d) < 0)
        goto oom;
    bc_form_add(&f, "To", d->to);
    bc_form_add(&f, "From", d->from);
    /* What the answered call does: Twilio refuses a create without one of
     * Url, Twiml or ApplicationSid (21205). The agent's URL is fetched
     * with GET, so its query (our call id and token) is all it needs. */
    if (d->url) {
        bc_form_add(&f, "Url", d->url);
        bc_form_add(&f, "Method", "GET");
    } else if (d->twiml) {
        bc_form_add(&f, "Twiml", d->twiml);
    }
    bc_form_add(&f, "StatusCallback", d->callback_url);
    bc_form_add(&f, "StatusCallbackMethod", "POST");
    /* Each event asked for is one more signed request through the API and
     * Kafka (B2: the largest CPU cost per call), so only those we use. */
    for (int i = 0; i < BC_TWILIO_NEVENTS; i++)
        if (c->events & 1 << i)
            bc_form_add(&f, "StatusCallbackEvent", BC_TWILIO_EVENTS[i]);
    snprintf(num, sizeof num, "%d", d->timeout_s);
    bc_form_add(&f, "Timeout", num);
    snprintf(num, sizeof num, "%d", d->time_limit_s);
    bc_form_add(&f, "TimeLimit", num);
    if (c->amd[0]) {
        bc_form_add(&f, "MachineDetection", c->amd);
        /* In the background: the TwiML (the agent) starts at once and the
         * verdict comes by its own callback, where the batch's voicemail
         * policy is applied. */
        if (d->amd_url[0]) {
            bc_form_add(&f, "AsyncAmd", "true");
            bc_form_add(&f, "AsyncAmdStatusCallback", d->amd_url);
            bc_form_add(&f, "AsyncAmdStatusCallbackMethod", "POST");
        }
    }
    if (d->record && d->recording_url[0]) {
        bc_form_add(&f, "Record", "true");
        bc_form_add(&f, "RecordingStatusCallback", d->recording_url);
        bc_form_add(&f, "RecordingStatusCallbackMethod", "POST");
        bc_form_add(&f, "RecordingStatusCallbackEvent", "completed");
    }
    x->form = bc_form_encode(&f);
    bc_form_free(&f);
    if (!x->form || start(c, x, c->url) < 0)
        goto oom;
    return 0;
oom:
    if (x) {
        bc_dial_clear(&x->d);
        free(x->form);
        free(x);
    }
    bc_err_set(err, "carrier: cannot start request");
    return -1;
}

void bc_carrier_on_update(bc_carrier *c, bc_update_done done)
{
    c->updated = done;
}

int bc_carrier_update(bc_carrier *c, const char *sid, const char *call_id, const bc_form *f,
                      bc_err *err)
{
    xfer *x = calloc(1, sizeof *x);
    char url[640];

    if (x) {
        x->update = 1;
        snprintf(x->d.call_id, sizeof x->d.call_id, "%s", call_id);
        snprintf(url, sizeof url, "%s/Calls/%s.json", c->base, sid);
        x->form = bc_form_encode(f);
    }
    if (!x || !x->form || start(c, x, url) < 0) {
        if (x)
            free(x->form);
        free(x);
        bc_err_set(err, "carrier: cannot start update");
        return -1;
    }
    return 0;
}

/* Sends x's form to url; the answer comes to finish(). 0 or -1. */
static int start(bc_carrier *c, xfer *x, const char *url)
{
    if (!(x->easy = curl_easy_init()))
        return -1;
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_USERPWD, c->userpwd);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->form);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
        return -1;
    }
    c->inflight++;
    /* Start sending now, not at the next loop turn: the request should be
     * on the wire before the worker claims its next recipient. */
    {
        int running;
        curl_multi_perform(c->multi, &running);
    }
    return 0;
}

static void finish(bc_carrier *c, CURL *easy, CURLcode code)
{
    xfer *x = NULL;
    long status = 0;
    json_t *j = NULL;
    const char *sid = NULL;
    char why[256];

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (c->latency && code == CURLE_OK && !x->update) {
        double secs = 0;

        curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &secs);
        bc_metric_observe(c->latency, secs);
    }
    curl_multi_remove_handle(c->multi, easy);
    c->inflight--;
    if (x->update) {
        j = json_loads(x->body, 0, NULL);
        snprintf(why, sizeof why, "carrier HTTP %ld: %s", status,
                 code != CURLE_OK ? curl_easy_strerror(code)
                 : json_string_value(json_object_get(j, "message"))
                     ? json_string_value(json_object_get(j, "message")) : "no message");
        if (c->updated)
            c->updated(c->ud, x->d.call_id, code == CURLE_OK && status >= 200 && status < 300,
                       why);
    } else if (code != CURLE_OK) {
        snprintf(why, sizeof why, "carrier request: %s", curl_easy_strerror(code));
        c->done(c->ud, &x->d, BC_DIAL_UNKNOWN, NULL, why);
    } else if (status == 201 || status == 200) {
        j = json_loads(x->body, 0, NULL);
        sid = json_string_value(json_object_get(j, "sid"));
        if (sid)
            c->done(c->ud, &x->d, BC_DIAL_ACCEPTED, sid, NULL);
        else
            c->done(c->ud, &x->d, BC_DIAL_UNKNOWN, NULL, "carrier answer has no sid");
    } else {
        j = json_loads(x->body, 0, NULL);
        snprintf(why, sizeof why, "carrier HTTP %ld: %s", status,
                 json_string_value(json_object_get(j, "message"))
                     ? json_string_value(json_object_get(j, "message")) : "no message");
        c->done(c->ud, &x->d,
                status == 429 ? BC_DIAL_PACED
                : status >= 400 && status < 500 ? BC_DIAL_REJECTED : BC_DIAL_UNKNOWN,
                NULL, why);
    }
    json_decref(j);
    curl_easy_cleanup(easy);
    bc_dial_clear(&x->d);
    free(x->form);
    free(x);
}

void bc_carrier_perform(bc_carrier *c, int timeout_ms, int wake_fd)
{
    struct curl_waitfd wake = { .fd = wake_fd, .events = CURL_WAIT_POLLIN };
    int running = 0, left;
    CURLMsg *m;

    if (c->inflight || wake_fd >= 0)
        curl_multi_poll(c->multi, wake_fd >= 0 ? &wake : NULL, wake_fd >= 0, timeout_ms, NULL);
    curl_multi_perform(c->multi, &running);
    while ((m = curl_multi_info_read(c->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            finish(c, m->easy_handle, m->data.result);
}
