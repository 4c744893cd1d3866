/* sim_req: reading a create or an update as Twilio reads it, and
 * Twilio's error body. */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bc_crypto.h"
#include "sim_req.h"

#define TWIML_MAX_CHARS 4000     /* Twilio's limit on a create's Twiml (32018) */

void sim_req_error(bc_http_resp *resp, int status, int code, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:i,s:s,s:s,s:i}", "code", code, "message", msg,
                                         "more_info", "https://www.twilio.com/docs/errors",
                                         "status", status));
}

/* Reads one query parameter from a URL ("...?a=1&b=2"); only [A-Za-z0-9_]. */
void sim_req_url_param(const char *url, const char *name, char *out, size_t cap)
{
    const char *q = strchr(url, '?');
    size_t n = strlen(name);

    out[0] = '\0';
    while (q && *q) {
        q++;
        if (!strncmp(q, name, n) && q[n] == '=') {
            size_t i = 0;
            for (q += n + 1; *q && *q != '&' && i + 1 < cap; q++)
                out[i++] = *q;
            out[i] = '\0';
            return;
        }
        q = strchr(q, '&');
    }
}

int sim_req_authorized(sim *s, const bc_http_req *req)
{
    const char *h = bc_http_header(req, "Authorization");
    unsigned char dec[256];
    char want[256];
    int n;

    if (!h || strncasecmp(h, "Basic ", 6) || strlen(h + 6) > 200)
        return 0;
    n = EVP_DecodeBlock(dec, (const unsigned char *)h + 6, (int)strlen(h + 6));
    if (n < 0)
        return 0;
    dec[n] = '\0';
    snprintf(want, sizeof want, "%s:%s", s->account, s->token);
    return bc_ct_streq((const char *)dec, want);
}

/* The events a create asks for: every StatusCallbackEvent parameter, each
 * one event or a space-separated list (as TwiML writes it). None asked:
 * completed only, as Twilio does. -1 for an unknown event. */
int sim_req_events(const bc_form *f)
{
    int bits = 0;
    char bad[64];

    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->key[i], "StatusCallbackEvent") &&
            bc_twilio_events(f->val[i], " ", &bits, bad, sizeof bad) < 0)
            return -1;
    return bits ? bits : BC_EV_COMPLETED;
}

/* The parameters of Twilio's create and update (API 2010-04-01); any other
 * is refused, where Twilio only warns (20001) and ignores it: a typo in
 * what the worker sends must not pass unseen. */
const char *const sim_req_create_params[] = {
    "To", "From", "Url", "Twiml", "ApplicationSid", "Method", "FallbackUrl", "FallbackMethod",
    "StatusCallback", "StatusCallbackEvent", "StatusCallbackMethod", "SendDigits", "Timeout",
    "Record", "RecordingChannels", "RecordingStatusCallback", "RecordingStatusCallbackMethod",
    "RecordingStatusCallbackEvent", "RecordingTrack", "SipAuthUsername", "SipAuthPassword",
    "MachineDetection", "MachineDetectionTimeout", "MachineDetectionSpeechThreshold",
    "MachineDetectionSpeechEndThreshold", "MachineDetectionSilenceTimeout", "AsyncAmd",
    "AsyncAmdStatusCallback", "AsyncAmdStatusCallbackMethod", "Trim", "CallerId", "Byoc",
    "CallReason", "CallToken", "TimeLimit", NULL,
};
const char *const sim_req_update_params[] = {
    "Url", "Twiml", "Method", "Status", "FallbackUrl", "FallbackMethod", "StatusCallback",
    "StatusCallbackMethod", "TimeLimit", NULL,
};

const char *sim_req_unknown_param(const bc_form *f, const char *const *known)
{
    for (size_t i = 0; i < f->n; i++) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], f->key[i]))
            k++;
        if (!known[k])
            return f->key[i];
    }
    return NULL;
}

/* 1 if url is an absolute http(s) URL with a host, as libcurl reads it. */
static int http_url_ok(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok;

    ok = u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
         !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
         !curl_url_get(u, CURLUPART_HOST, &host, 0) && host[0] &&
         (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

int sim_req_read_agent(const bc_form *f, int required, agent_spec *a)
{
    const char *url = bc_form_get(f, "Url"), *twiml = bc_form_get(f, "Twiml");
    const char *app = bc_form_get(f, "ApplicationSid"), *method = bc_form_get(f, "Method");
    sim_tw_err err;

    memset(a, 0, sizeof *a);
    if (method && strcmp(method, "GET") && strcmp(method, "POST")) {
        a->code = 21200;
        snprintf(a->msg, sizeof a->msg, "Method must be GET or POST");
        return -1;
    }
    snprintf(a->method, sizeof a->method, "%s", method ? method : "POST");
    if (url) {
        if (!http_url_ok(url)) {
            a->code = 21205;
            snprintf(a->msg, sizeof a->msg, "Url is not a valid URL: %.120s", url);
            return -1;
        }
        a->url = strdup(url);
        return 0;
    }
    if (twiml) {
        if (sim_twiml_chars(twiml) > TWIML_MAX_CHARS) {
            a->code = 32018;
            snprintf(a->msg, sizeof a->msg,
                     "Twiml size exceeded maximum allowed value of %d characters", TWIML_MAX_CHARS);
            return -1;
        }
        if (!(a->doc = sim_twiml_parse(twiml, strlen(twiml), &err))) {
            a->code = err.code;
            snprintf(a->msg, sizeof a->msg, "%s", err.msg);
            return -1;
        }
        return 0;
    }
    if (app) {
        a->code = 21218;
        snprintf(a->msg, sizeof a->msg, "Invalid ApplicationSid: this carrier has no applications");
        return -1;
    }
    if (required) {
        a->code = 21205;
        snprintf(a->msg, sizeof a->msg, "A 'Url', 'Twiml', or 'ApplicationSid' parameter is required");
        return -1;
    }
    return 0;
}
