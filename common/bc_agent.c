#include "bc_agent.h"

#include <curl/curl.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypto.h"
#include "bc_url.h"

bc_agent_kind bc_agent_kind_of(const char *e)
{
    if (!e)
        return BC_AGENT_NONE;
    if (!strncmp(e, "wss://", 6))
        return BC_AGENT_STREAM;
    if (!strncmp(e, "https://", 8) || !strncmp(e, "http://", 7))
        return BC_AGENT_TWIML;
    if (!strncmp(e, "sip:", 4) || !strncmp(e, "sips:", 5))
        return BC_AGENT_SIP;
    return BC_AGENT_NONE;
}

const char *bc_agent_kind_name(bc_agent_kind k)
{
    static const char *const names[] = { NULL, "stream", "twiml", "sip" };

    return k >= BC_AGENT_NONE && k <= BC_AGENT_SIP ? names[k] : NULL;
}

static int sip_check(const char *e, char *why, size_t cap)
{
    const char *at, *rest = e + (e[3] == 's' ? 5 : 4);

    for (const char *p = e; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '<' || *p == '>') {
            snprintf(why, cap, "endpoint: a SIP URI may not hold spaces, control characters, "
                               "'<', '>' or headers ('?')");
            return -1;
        }
    at = strchr(rest, '@');
    if (!at || at == rest || !at[1]) {
        snprintf(why, cap, "endpoint: a SIP URI is sip:user@host or sips:user@host");
        return -1;
    }
    return 0;
}

int bc_agent_endpoint_check(const char *e, char *why, size_t cap)
{
    char https[BC_AGENT_ENDPOINT_MAX + 8];

    if (!e || strlen(e) > BC_AGENT_ENDPOINT_MAX) {
        snprintf(why, cap, "endpoint must be a string of at most %d characters",
                 BC_AGENT_ENDPOINT_MAX);
        return -1;
    }
    switch (bc_agent_kind_of(e)) {
    case BC_AGENT_STREAM:
        /* The same URL rules as https, which libcurl knows. */
        snprintf(https, sizeof https, "https://%s", e + 6);
        return bc_url_check(https, 1, 1, why, cap);
    case BC_AGENT_TWIML:
        return bc_url_check(e, 0, 1, why, cap);
    case BC_AGENT_SIP:
        return sip_check(e, why, cap);
    default:
        snprintf(why, cap, "endpoint must start with wss:// (a Media Streams WebSocket), "
                           "https:// (a TwiML URL) or sip: / sips: (a SIP URI)");
        return -1;
    }
}

/* ---- TwiML ------------------------------------------------------------ */

/* A copy of s fit for an XML 1.0 document: control characters other than
 * tab, newline and return cannot appear there even escaped, so they become
 * spaces. jansson's strings are valid UTF-8 already. */
static xmlChar *xml_text(const char *s)
{
    xmlChar *t = xmlStrdup(BAD_CAST(s ? s : ""));

    for (xmlChar *p = t; p && *p; p++)
        if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
            *p = ' ';
    return t;
}

/* <Parameter name= value=/>: libxml2 escapes attribute values itself. */
static void param(xmlNodePtr stream, const char *name, const char *value)
{
    xmlNodePtr p;
    xmlChar *n, *v;

    if (!value)
        return;
    p = xmlNewChild(stream, NULL, BAD_CAST "Parameter", NULL);
    n = xml_text(name);
    v = xml_text(value);
    xmlNewProp(p, BAD_CAST "name", n);
    xmlNewProp(p, BAD_CAST "value", v);
    xmlFree(n);
    xmlFree(v);
}

/* A variable's value as the agent reads it: a string as it is, anything
 * else as its JSON text. */
static char *value_text(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v))
                             : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void call_params(xmlNodePtr stream, const bc_agent_call *c, int with_vars)
{
    char attempt[16];
    const char *k;
    json_t *v;

    snprintf(attempt, sizeof attempt, "%d", c->attempt);
    param(stream, "bc_call_id", c->call_id);
    param(stream, "bc_batch_id", c->batch_id);
    param(stream, "bc_tenant_id", c->tenant_id);
    param(stream, "bc_agent_id", c->agent_id);
    param(stream, "bc_recipient_id", c->recipient_id);
    param(stream, "bc_to", c->to);
    param(stream, "bc_from", c->from);
    param(stream, "bc_attempt", attempt);
    param(stream, "bc_token", c->token);
    param(stream, "bc_context_url", c->context_url);
    param(stream, "bc_context", with_vars ? "inline" : "fetch");
    if (!with_vars)
        return;
    if (json_object_size(c->metadata)) {
        char *m = json_dumps(c->metadata, JSON_COMPACT);

        param(stream, "bc_metadata", m);
        free(m);
    }
    /* bc_ names are ours: a variable cannot stand in for one of them. */
    json_object_foreach(c->variables, k, v) {
        char *t;

        if (!strncmp(k, "bc_", 3) || !(t = value_text(v)))
            continue;
        param(stream, k, t);
        free(t);
    }
}

/* Serializes doc as a UTF-8 string (malloc'd), its length in characters
 * (Twilio counts characters, not bytes) in *chars. */
static char *dump(xmlDocPtr doc, size_t *chars)
{
    xmlChar *buf = NULL;
    int len = 0;
    char *out;

    xmlDocDumpMemoryEnc(doc, &buf, &len, "UTF-8");
    if (!buf)
        return NULL;
    out = malloc((size_t)len + 1);
    if (out) {
        memcpy(out, buf, (size_t)len);
        out[len] = '\0';
        *chars = 0;
        for (int i = 0; i < len; i++)
            *chars += ((unsigned char)out[i] & 0xc0) != 0x80;
    }
    xmlFree(buf);
    return out;
}

static char *stream_twiml(const char *endpoint, const bc_agent_call *c, int with_vars,
                          size_t *chars)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr resp = xmlNewNode(NULL, BAD_CAST "Response"), conn, stream;
    char *out;

    xmlDocSetRootElement(doc, resp);
    conn = xmlNewChild(resp, NULL, BAD_CAST "Connect", NULL);
    stream = xmlNewChild(conn, NULL, BAD_CAST "Stream", NULL);
    xmlNewProp(stream, BAD_CAST "url", BAD_CAST endpoint);
    call_params(stream, c, with_vars);
    out = dump(doc, chars);
    xmlFreeDoc(doc);
    return out;
}

/* endpoint + sep + name=value..., each value percent-encoded. */
static char *with_query(const char *endpoint, char sep, const char *const *kv, int n)
{
    size_t cap = strlen(endpoint) + 2;
    char *esc[8], *out;

    for (int i = 0; i < n; i++) {
        esc[i] = curl_easy_escape(NULL, kv[2 * i + 1] ? kv[2 * i + 1] : "", 0);
        cap += strlen(kv[2 * i]) + (esc[i] ? strlen(esc[i]) : 0) + 2;
    }
    out = malloc(cap);
    if (out) {
        size_t len = (size_t)snprintf(out, cap, "%s", endpoint);

        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(out + len, cap - len, "%c%s=%s", i ? '&' : sep,
                                    kv[2 * i], esc[i] ? esc[i] : "");
    }
    for (int i = 0; i < n; i++)
        curl_free(esc[i]);
    return out;
}

static char *sip_twiml(const char *endpoint, const bc_agent_call *c)
{
    const char *kv[] = { "X-bc-call-id", c->call_id, "X-bc-token", c->token };
    char *uri = with_query(endpoint, '?', kv, 2), *out = NULL;
    xmlDocPtr doc;
    xmlNodePtr resp, dial;
    xmlChar *text;
    size_t chars;

    if (!uri)
        return NULL;
    doc = xmlNewDoc(BAD_CAST "1.0");
    resp = xmlNewNode(NULL, BAD_CAST "Response");
    xmlDocSetRootElement(doc, resp);
    dial = xmlNewChild(resp, NULL, BAD_CAST "Dial", NULL);
    text = xml_text(uri);
    /* xmlNewTextChild escapes its content; xmlNewChild would parse it. */
    xmlNewTextChild(dial, NULL, BAD_CAST "Sip", text);
    xmlFree(text);
    out = dump(doc, &chars);
    xmlFreeDoc(doc);
    free(uri);
    return out;
}

int bc_agent_instructions(const char *endpoint, const bc_agent_call *c, char **twiml,
                          char **url, int *inline_ctx, bc_err *err)
{
    size_t chars = 0;

    *twiml = *url = NULL;
    *inline_ctx = 0;
    switch (bc_agent_kind_of(endpoint)) {
    case BC_AGENT_STREAM:
        *twiml = stream_twiml(endpoint, c, 1, &chars);
        if (*twiml && chars > BC_TWIML_MAX) {
            /* Too much to carry inline: the agent fetches it. */
            free(*twiml);
            *twiml = stream_twiml(endpoint, c, 0, &chars);
        } else if (*twiml) {
            *inline_ctx = 1;
        }
        if (*twiml && chars > BC_TWIML_MAX) {
            free(*twiml);
            *twiml = NULL;
            bc_err_set(err, "agent: TwiML of %zu characters even without variables", chars);
            return -1;
        }
        break;
    case BC_AGENT_SIP:
        *twiml = sip_twiml(endpoint, c);
        break;
    case BC_AGENT_TWIML: {
        const char *kv[] = { "bc_call_id", c->call_id, "bc_token", c->token };

        *url = with_query(endpoint, strchr(endpoint, '?') ? '&' : '?', kv, 2);
        break;
    }
    default:
        bc_err_set(err, "agent: no endpoint to connect the call to");
        return -1;
    }
    if (!*twiml && !*url) {
        bc_err_set(err, "agent: out of memory");
        return -1;
    }
    return 0;
}

/* ---- voicemail ----------------------------------------------------------- */

char *bc_agent_voicemail_twiml(const char *text, const char *audio_url)
{
    xmlDocPtr doc;
    xmlNodePtr resp;
    xmlChar *t;
    size_t chars;
    char *out;

    if (!(audio_url && *audio_url) && !(text && *text))
        return NULL;
    doc = xmlNewDoc(BAD_CAST "1.0");
    resp = xmlNewNode(NULL, BAD_CAST "Response");
    xmlDocSetRootElement(doc, resp);
    t = xml_text(audio_url && *audio_url ? audio_url : text);
    xmlNewTextChild(resp, NULL, BAD_CAST(audio_url && *audio_url ? "Play" : "Say"), t);
    xmlFree(t);
    xmlNewChild(resp, NULL, BAD_CAST "Hangup", NULL);
    out = dump(doc, &chars);
    xmlFreeDoc(doc);
    return out;
}

int bc_agent_voicemail_check(const json_t *p, char *why, size_t cap)
{
    const char *action = json_string_value(json_object_get(p, "action"));
    const json_t *text = json_object_get(p, "text"), *audio = json_object_get(p, "audio_url");
    const char *k;
    json_t *v;

    if (!p || json_is_null(p))
        return 0;
    if (!json_is_object(p) || !action ||
        (strcmp(action, "hangup") && strcmp(action, "message") && strcmp(action, "agent"))) {
        snprintf(why, cap, "voicemail must be an object whose action is hangup, message or agent");
        return -1;
    }
    json_object_foreach((json_t *)p, k, v)
        if (strcmp(k, "action") && strcmp(k, "text") && strcmp(k, "audio_url")) {
            snprintf(why, cap, "voicemail.%s is not a field (action, text, audio_url)", k);
            return -1;
        }
    if (strcmp(action, "message")) {
        if (text || audio) {
            snprintf(why, cap, "voicemail.text and audio_url go only with action message");
            return -1;
        }
        return 0;
    }
    if (!!text == !!audio) {
        snprintf(why, cap, "voicemail with action message takes one of text or audio_url");
        return -1;
    }
    if (text && (!json_is_string(text) || !json_string_length(text) ||
                 json_string_length(text) > 1000)) {
        snprintf(why, cap, "voicemail.text must be a string of 1 to 1000 bytes");
        return -1;
    }
    if (audio) {
        char url_why[160] = "it is not a string";

        if (!json_is_string(audio) ||
            bc_url_check(json_string_value(audio), 1, 1, url_why, sizeof url_why) < 0) {
            snprintf(why, cap, "voicemail.audio_url must be an https URL: %s", url_why);
            return -1;
        }
    }
    return 0;
}

/* ---- per-call tokens -------------------------------------------------- */

static int token_mac(const char *secret, const char *call_id, long long exp,
                     char mac[BC_SHA256_HEX])
{
    char msg[160];
    int n = snprintf(msg, sizeof msg, "%s.%lld", call_id, exp);

    if (n < 0 || (size_t)n >= sizeof msg)
        return -1;
    return bc_hmac_sha256_hex(secret, msg, (size_t)n, mac);
}

int bc_agent_token(const char *secret, const char *call_id, long long exp, char *out,
                   size_t cap)
{
    char mac[BC_SHA256_HEX];
    int n;

    if (token_mac(secret, call_id, exp, mac) < 0)
        return -1;
    n = snprintf(out, cap, "%lld.%s", exp, mac);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int bc_agent_token_check(const char *secret, const char *call_id, const char *token,
                         long long now)
{
    char mac[BC_SHA256_HEX], *end;
    long long exp;

    if (!token || !call_id || strlen(token) >= BC_AGENT_TOKEN_MAX)
        return 0;
    exp = strtoll(token, &end, 10);
    if (end == token || *end != '.' || exp <= now)
        return 0;
    if (token_mac(secret, call_id, exp, mac) < 0)
        return 0;
    return bc_ct_streq(end + 1, mac);
}
