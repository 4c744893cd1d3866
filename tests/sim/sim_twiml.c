#include "sim_twiml.h"

#include <ctype.h>
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAUSE_MAX_S 600

static void set_err(sim_tw_err *err, int code, const char *msg)
{
    err->code = code;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

static int named(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n->children; c; c = c->next)
        if (named(c, name))
            return c;
    return NULL;
}

/* Returns a new string: the attribute's value, entities already decoded. */
static char *attr(const xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    char *out = v ? strdup((const char *)v) : NULL;

    xmlFree(v);
    return out;
}

/* Returns a new string: the element's text without the spaces around it
 * (TwiML authors indent <Sip> and <Play> bodies). */
static char *text(const xmlNode *n)
{
    xmlChar *v = xmlNodeGetContent(n);
    const char *p = v ? (const char *)v : "";
    size_t len;
    char *out;

    while (isspace((unsigned char)*p))
        p++;
    len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1]))
        len--;
    out = strndup(p, len);
    xmlFree(v);
    return out;
}

static sim_tw_verb *push(sim_twiml *doc, sim_tw_kind kind)
{
    sim_tw_verb *v = realloc(doc->v, (doc->n + 1) * sizeof *v);

    if (!v)
        return NULL;
    doc->v = v;
    v = &doc->v[doc->n++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return v;
}

/* <Connect><Stream url="wss://..."><Parameter name= value=/>...: Twilio
 * connects Media Streams only over TLS, so anything but wss:// is 31922. */
static int read_stream(sim_twiml *doc, const xmlNode *stream, sim_tw_err *err)
{
    char *url = attr(stream, "url");
    json_t *params = json_object();
    sim_tw_verb *v;

    if (!url || !*url) {
        free(url);
        json_decref(params);
        set_err(err, 31923, "Stream - WebSocket - Malformed URL: <Stream> needs a url");
        return -1;
    }
    if (strncasecmp(url, "wss://", 6) || !url[6] || url[6] == '/') {
        free(url);
        json_decref(params);
        set_err(err, 31922, "Stream - WebSocket - URL Schema Not Supported: "
                            "<Stream> url must be wss://");
        return -1;
    }
    for (const xmlNode *c = stream->children; c; c = c->next) {
        char *name, *value;

        if (!named(c, "Parameter"))
            continue;
        name = attr(c, "name");
        value = attr(c, "value");
        if (name && *name)
            json_object_set_new(params, name, json_string(value ? value : ""));
        free(name);
        free(value);
    }
    if (!(v = push(doc, SIM_TW_STREAM))) {
        free(url);
        json_decref(params);
        set_err(err, 12100, "Document parse failure: out of memory");
        return -1;
    }
    v->arg = url;
    v->extra = params;
    return 0;
}

/* The X- headers of a SIP URI ("sip:a@b;transport=tls?X-One=1&X-Two=a%20b"),
 * URL-decoded; -1 with err set for one that is not X-. */
static int sip_headers(const char *uri, json_t *out, sim_tw_err *err)
{
    const char *q = strchr(uri, '?');

    while (q && *q) {
        const char *start = q + 1, *amp = strchr(start, '&'), *eq;
        size_t len = amp ? (size_t)(amp - start) : strlen(start);
        char *pair = strndup(start, len), *name, *value;
        int nlen = 0, vlen = 0;

        q = amp;
        if (!pair || !*pair) {
            free(pair);
            continue;
        }
        eq = strchr(pair, '=');
        name = curl_easy_unescape(NULL, pair, eq ? (int)(eq - pair) : 0, &nlen);
        value = curl_easy_unescape(NULL, eq ? eq + 1 : "", 0, &vlen);
        free(pair);
        if (!name || !value || strncasecmp(name, "X-", 2) || nlen < 3 ||
            memchr(value, '\0', (size_t)vlen)) {
            curl_free(name);
            curl_free(value);
            set_err(err, 13252, "Dial: Invalid header name: SIP headers must start with X-");
            return -1;
        }
        json_object_set_new(out, name, json_string(value));
        curl_free(name);
        curl_free(value);
    }
    return 0;
}

static int read_sip(sim_twiml *doc, const xmlNode *sip, sim_tw_err *err)
{
    char *uri = text(sip);
    json_t *headers = json_object();
    sim_tw_verb *v;

    if (!uri || (strncasecmp(uri, "sip:", 4) && strncasecmp(uri, "sips:", 5)) ||
        !strchr(uri, ':')[1]) {
        free(uri);
        json_decref(headers);
        set_err(err, 13243, "Dial->SIP: Invalid SIP URI: it must start with sip: or sips:");
        return -1;
    }
    if (sip_headers(uri, headers, err) < 0 || !(v = push(doc, SIM_TW_SIP))) {
        if (!err->code)
            set_err(err, 12100, "Document parse failure: out of memory");
        free(uri);
        json_decref(headers);
        return -1;
    }
    v->arg = uri;
    v->extra = headers;
    return 0;
}

static int read_simple(sim_twiml *doc, const xmlNode *n, sim_tw_kind kind)
{
    sim_tw_verb *v = push(doc, kind);

    if (!v)
        return -1;
    if (kind == SIM_TW_SAY || kind == SIM_TW_PLAY)
        v->arg = text(n);
    if (kind == SIM_TW_PAUSE) {
        char *len = attr(n, "length");
        v->secs = len ? atoi(len) : 1;
        if (v->secs < 0)
            v->secs = 0;
        if (v->secs > PAUSE_MAX_S)
            v->secs = PAUSE_MAX_S;
        free(len);
    }
    return 0;
}

/* One verb under <Response>. Verbs the simulator cannot play (<Gather>,
 * <Record>, <Dial><Number>, ...) are valid TwiML: skipped, not refused. */
static int read_verb(sim_twiml *doc, const xmlNode *n, sim_tw_err *err)
{
    const xmlNode *c;

    if (named(n, "Connect"))
        return (c = child(n, "Stream")) ? read_stream(doc, c, err) : 0;
    if (named(n, "Dial"))
        return (c = child(n, "Sip")) ? read_sip(doc, c, err) : 0;
    if (named(n, "Say"))
        return read_simple(doc, n, SIM_TW_SAY);
    if (named(n, "Play"))
        return read_simple(doc, n, SIM_TW_PLAY);
    if (named(n, "Pause"))
        return read_simple(doc, n, SIM_TW_PAUSE);
    if (named(n, "Hangup"))
        return read_simple(doc, n, SIM_TW_HANGUP);
    return 0;
}

sim_twiml *sim_twiml_parse(const char *xml, size_t len, sim_tw_err *err)
{
    sim_twiml *doc = calloc(1, sizeof *doc);
    xmlDoc *x = NULL;
    const xmlNode *root;

    err->code = 0;
    err->msg[0] = '\0';
    if (!doc) {
        set_err(err, 12100, "Document parse failure: out of memory");
        return NULL;
    }
    /* No network, no external entities, nothing printed on our stderr. */
    x = xmlReadMemory(xml, (int)len, "twiml.xml", NULL,
                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!x) {
        set_err(err, 12100, "Document parse failure: the TwiML is not well-formed XML");
        goto fail;
    }
    root = xmlDocGetRootElement(x);
    if (!root || !named(root, "Response")) {
        set_err(err, 12102, "The root element must be Response");
        goto fail;
    }
    for (const xmlNode *n = root->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && read_verb(doc, n, err) < 0) {
            if (!err->code)
                set_err(err, 12100, "Document parse failure: out of memory");
            goto fail;
        }
    xmlFreeDoc(x);
    return doc;
fail:
    xmlFreeDoc(x);
    sim_twiml_free(doc);
    return NULL;
}

void sim_twiml_free(sim_twiml *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->n; i++) {
        free(doc->v[i].arg);
        json_decref(doc->v[i].extra);
    }
    free(doc->v);
    free(doc);
}

size_t sim_twiml_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}
