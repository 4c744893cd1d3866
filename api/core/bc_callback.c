#include "bc_callback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_kafka.h"
#include "bc_twilio.h"

/* Our ids are [A-Za-z0-9_]: anything else in the query is forged. */
static int id_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* AnsweredBy values are short lowercase words (human, machine_end_beep,
 * fax, unknown, ...); anything else is not passed on. */
static int answered_by_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= BC_ANSWERED_BY_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz_") == n;
}

static int region_ok(const bc_api *api, const char *r)
{
    size_t n = strlen(r);
    const char *p = api->regions;

    while (p && *p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && !strncmp(p, r, n))
            return 1;
        p = c ? c + 1 : NULL;
    }
    return 0;
}

static void reply(bc_http_resp *resp, int status, const char *msg)
{
    bc_http_json(resp, status, json_pack("{s:s}", status < 300 ? "status" : "error", msg));
}

/* The status event of a checked callback's form; 0, or 400 with why. */
static int status_event(const bc_form *form, const char *tenant_id, const char *batch_id,
                        const char *call_id, char **payload, const char **why)
{
    const char *status = bc_form_get(form, "CallStatus"), *sid = bc_form_get(form, "CallSid");
    const char *duration, *sequence, *answered_by;
    json_t *ev;

    if (!status || !sid) {
        *why = "CallStatus and CallSid are required";
        return 400;
    }
    duration = bc_form_get(form, "CallDuration");
    sequence = bc_form_get(form, "SequenceNumber");
    answered_by = bc_form_get(form, "AnsweredBy");
    if (answered_by && !answered_by_ok(answered_by))
        answered_by = NULL;   /* not a word Twilio uses: ignored, not trusted */
    ev = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s*}", "v", 1, "call_id", call_id,
                   "batch_id", batch_id, "tenant_id", tenant_id, "carrier_call_id", sid,
                   "status", status, "duration", atoi(duration ? duration : "0"),
                   "sequence", atoi(sequence ? sequence : "0"), "answered_by", answered_by);
    *payload = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    return 0;
}

int bc_callback_event(const char *token, const char *url, const char *body, size_t len,
                      const char *sig, const char *tenant_id, const char *batch_id,
                      const char *call_id, char **payload, const char **why)
{
    bc_form form = { 0 };
    int rc;

    *payload = NULL;
    if (bc_form_parse(body, len, &form) < 0) {
        *why = "malformed form body";
        return 400;
    }
    if (!bc_twilio_check(token, url, &form, sig)) {
        *why = "invalid signature";
        rc = 403;
    } else {
        rc = status_event(&form, tenant_id, batch_id, call_id, payload, why);
    }
    bc_form_free(&form);
    return rc;
}

/* The broker's word on a callback's event, on the publisher's thread. */
static void acked(void *ud, int ok)
{
    bc_http_answer(ud, ok ? 200 : 503,
                   ok ? json_pack("{s:s}", "status", "ok") : json_pack("{s:s}", "error", "try again"));
}

/* Whether sig signs the callback to base + addr, our URL for it. */
static int signed_under(const bc_api *api, const char *base, const char *addr,
                        const bc_form *form, const char *sig)
{
    char url[512];

    snprintf(url, sizeof url, "%s%s", base, addr);
    return bc_twilio_check(api->carrier_token, url, form, sig);
}

int bc_callback_verify(bc_api *api, const bc_http_req *req, bc_http_resp *resp,
                       const char *path, bc_callback_ids *ids, bc_form *form)
{
    const char *region = bc_http_query(req, "region");
    const char *tenant = bc_http_query(req, "tenant_id");
    const char *batch = bc_http_query(req, "batch_id");
    const char *call = bc_http_query(req, "call_id");
    const char *body, *sig;
    char addr[512];
    size_t len;

    memset(form, 0, sizeof *form);
    if (!region || !region_ok(api, region) || strlen(region) >= sizeof ids->region ||
        !id_ok(tenant) || !id_ok(batch) || !id_ok(call)) {
        reply(resp, 400, "bad callback address");
        return -1;
    }
    body = bc_http_body(req, &len);
    if (bc_form_parse(body, len, form) < 0) {
        reply(resp, 400, "malformed form body");
        return -1;
    }
    /* We issued this URL in this exact shape, so we rebuild it to check the
     * signature without trusting any part of the request line: under the
     * callback URL, or the public URL of calls dialed before there was one. */
    snprintf(addr, sizeof addr, "%s?region=%s&tenant_id=%s&batch_id=%s&call_id=%s", path,
             region, tenant, batch, call);
    sig = bc_http_header(req, "X-Twilio-Signature");
    if (!signed_under(api, api->callback_url, addr, form, sig) &&
        (!strcmp(api->callback_url, api->public_url) ||
         !signed_under(api, api->public_url, addr, form, sig))) {
        bc_metrics_inc(api->ctx->metrics, "carrier_callbacks_rejected_total",
                       "Carrier callbacks with a bad signature", NULL, 1);
        bc_form_free(form);
        reply(resp, 403, "invalid signature");
        return -1;
    }
    snprintf(ids->region, sizeof ids->region, "%s", region);
    snprintf(ids->tenant_id, sizeof ids->tenant_id, "%s", tenant);
    snprintf(ids->batch_id, sizeof ids->batch_id, "%s", batch);
    snprintf(ids->call_id, sizeof ids->call_id, "%s", call);
    return 0;
}

/* Publishes payload on the region's carrier events, keyed by call, and
 * answers 200 only once Kafka has it (else the carrier must retry); the
 * wait does not hold a server thread (bc_http_defer). */
static void publish_event(bc_api *api, const bc_http_req *req, const char *region,
                          const char *call, const char *payload)
{
    bc_http_later *later = bc_http_defer(req);
    char topic[160];
    bc_err err = { "" };

    bc_kafka_topic(topic, sizeof topic, api->topic_prefix, "carrier-events", region);
    if (!payload || bc_publisher_async(api->pub, topic, call, payload, acked, later, &err) < 0) {
        bc_log(api->ctx->log, BC_WARN, "callback.publish_failed", "{s:s,s:s}",
               "call_id", call, "error", payload ? err.msg : "out of memory");
        acked(later, 0);
    }
}

/* A callback checked by serve (bc_callback_verify): the handlers' ud. */
typedef struct checked {
    bc_api *api;
    bc_callback_ids ids;
    bc_form form;
} checked;

static void status_callback(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    checked *c = ud;
    const char *why;
    char *payload = NULL;
    int status = status_event(&c->form, c->ids.tenant_id, c->ids.batch_id, c->ids.call_id,
                              &payload, &why);

    if (status) {
        reply(resp, status, why);
        return;
    }
    publish_event(c->api, req, c->ids.region, c->ids.call_id, payload);
    free(payload);
}

/* AsyncAmd's verdict: an event the worker that owns the call acts on (the
 * batch's voicemail policy), as it does on statuses. */
static void amd_callback(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    checked *c = ud;
    const char *sid = bc_form_get(&c->form, "CallSid"), *ab = bc_form_get(&c->form, "AnsweredBy");
    char *payload;
    json_t *ev;

    if (!sid || !ab || !answered_by_ok(ab)) {
        reply(resp, 400, "CallSid and AnsweredBy are required");
        return;
    }
    ev = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "v", 1, "kind", "amd", "call_id",
                   c->ids.call_id, "batch_id", c->ids.batch_id, "tenant_id", c->ids.tenant_id,
                   "carrier_call_id", sid, "answered_by", ab);
    payload = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    publish_event(c->api, req, c->ids.region, c->ids.call_id, payload);
    free(payload);
}

static void recording_callback(void *ud, const bc_http_req *req, bc_http_resp *resp)
{
    checked *c = ud;

    (void)req;
    bc_callback_recording(c->api, &c->ids, &c->form, resp);
}

static const bc_http_route routes[] = {
    { "POST", BC_CALLBACK_PATH, status_callback, NULL, 0, NULL },
    { "POST", BC_CALLBACK_AMD_PATH, amd_callback, NULL, 0, NULL },
    { "POST", BC_CALLBACK_RECORDING_PATH, recording_callback, NULL, 0, NULL },
    { 0 },
};

/* The carrier reads only the status: the body is {"error": why}. */
static void error(bc_http_resp *resp, int status, const char *code, const char *msg)
{
    (void)code;
    reply(resp, status, msg);
}

/* Every route is a callback to the URL we issued for it, its pattern. */
static void serve(void *ud, const void *arg, const bc_http_route *route,
                  const bc_http_req *req, bc_http_resp *resp)
{
    checked c = { .api = ud };

    (void)arg;
    if (!route) {
        bc_http_miss(req, resp, error, "not found");
        return;
    }
    if (bc_callback_verify(c.api, req, resp, route->pattern, &c.ids, &c.form) < 0)
        return;
    route->fn(&c, req, resp);
    bc_form_free(&c.form);
}

bc_http_surface bc_callback_surface(bc_api *api)
{
    return (bc_http_surface){ NULL, routes, serve, api, NULL };
}
