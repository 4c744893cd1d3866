/* Tests common/bc_agent.c: endpoints, the TwiML and URL that connect a
 * call to its agent (read back with libxml2's parser, as a carrier would),
 * and per-call tokens. */
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "bc_agent.h"
#include "bc_test.h"

static void test_endpoint_kinds_and_checks(void **state)
{
    char why[200];

    (void)state;
    assert_int_equal(bc_agent_kind_of("wss://a.example/s"), BC_AGENT_STREAM);
    assert_int_equal(bc_agent_kind_of("https://a.example/t"), BC_AGENT_TWIML);
    assert_int_equal(bc_agent_kind_of("http://127.0.0.1:1/t"), BC_AGENT_TWIML);
    assert_int_equal(bc_agent_kind_of("sip:agent@sip.example"), BC_AGENT_SIP);
    assert_int_equal(bc_agent_kind_of("sips:agent@sip.example"), BC_AGENT_SIP);
    assert_int_equal(bc_agent_kind_of("ws://a.example"), BC_AGENT_NONE);
    assert_int_equal(bc_agent_kind_of(NULL), BC_AGENT_NONE);
    assert_string_equal(bc_agent_kind_name(BC_AGENT_STREAM), "stream");
    assert_null(bc_agent_kind_name(BC_AGENT_NONE));

    assert_int_equal(bc_agent_endpoint_check("wss://agent.example:8443/stream", why, sizeof why), 0);
    assert_int_equal(bc_agent_endpoint_check("https://agent.example/twiml?x=1", why, sizeof why), 0);
    assert_int_equal(bc_agent_endpoint_check("sip:bot@sip.agent.example;transport=tls", why,
                                             sizeof why), 0);
    assert_int_equal(bc_agent_endpoint_check("ws://agent.example/stream", why, sizeof why), -1);
    assert_non_null(strstr(why, "wss://"));
    assert_int_equal(bc_agent_endpoint_check("wss://u:p@agent.example/", why, sizeof why), -1);
    assert_int_equal(bc_agent_endpoint_check("wss://agent example/", why, sizeof why), -1);
    assert_int_equal(bc_agent_endpoint_check("sip:agent.example", why, sizeof why), -1);
    assert_int_equal(bc_agent_endpoint_check("sip:a@b?X-Evil=1", why, sizeof why), -1);
    assert_int_equal(bc_agent_endpoint_check("sip:a@b>x", why, sizeof why), -1);
    assert_int_equal(bc_agent_endpoint_check(NULL, why, sizeof why), -1);
}

/* The <Parameter>s of a parsed <Connect><Stream>, as a JSON object; NULL
 * unless the document is exactly Response/Connect/Stream. */
static json_t *stream_params(const char *twiml, char url[256])
{
    xmlDocPtr doc = xmlReadMemory(twiml, (int)strlen(twiml), NULL, NULL, XML_PARSE_NONET);
    xmlNodePtr r, c, s;
    json_t *out = NULL;

    if (!doc)
        return NULL;
    r = xmlDocGetRootElement(doc);
    c = r ? xmlFirstElementChild(r) : NULL;
    s = c ? xmlFirstElementChild(c) : NULL;
    if (r && !strcmp((char *)r->name, "Response") && xmlChildElementCount(r) == 1 && c &&
        !strcmp((char *)c->name, "Connect") && xmlChildElementCount(c) == 1 && s &&
        !strcmp((char *)s->name, "Stream")) {
        xmlChar *u = xmlGetProp(s, BAD_CAST "url");
        snprintf(url, 256, "%s", u ? (char *)u : "");
        xmlFree(u);
        out = json_object();
        for (xmlNodePtr p = xmlFirstElementChild(s); p; p = xmlNextElementSibling(p)) {
            xmlChar *n = xmlGetProp(p, BAD_CAST "name"), *v = xmlGetProp(p, BAD_CAST "value");
            assert_string_equal((char *)p->name, "Parameter");
            assert_null(p->children);
            json_object_set_new(out, (char *)n, json_string((char *)v));
            xmlFree(n);
            xmlFree(v);
        }
    }
    xmlFreeDoc(doc);
    return out;
}

static bc_agent_call a_call(json_t *vars, json_t *meta)
{
    bc_agent_call c = { .call_id = "ac_1", .batch_id = "b_1", .tenant_id = "org_1",
                        .agent_id = "agent_1", .recipient_id = "rcp_1", .to = "+14155550100",
                        .from = "+14155550199", .attempt = 2, .token = "123.abc",
                        .context_url = "https://api.example/v1/calls/ac_1/context",
                        .variables = vars, .metadata = meta };
    return c;
}

static void test_stream_carries_every_variable_as_text(void **state)
{
    json_t *vars = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s}", "first_name", "Ada",
                             "inject", "</Parameter><Hangup/>", "quote", "\"><Say>hi</Say><",
                             "n", 42, "bc_call_id", "forged", "ctl", "a\x01" "b");
    json_t *meta = json_pack("{s:s}", "crm", "x&y");
    bc_agent_call c = a_call(vars, meta);
    char *twiml, *url, u[256];
    int inl;
    bc_err err = { "" };
    json_t *p;

    (void)state;
    assert_int_equal(bc_agent_instructions("wss://agent.example/s?a=1&b=2", &c, &twiml, &url,
                                           &inl, &err), 0);
    assert_null(url);
    assert_int_equal(inl, 1);
    p = stream_params(twiml, u);
    assert_non_null(p);
    assert_string_equal(u, "wss://agent.example/s?a=1&b=2");
    assert_string_equal(json_string_value(json_object_get(p, "inject")), "</Parameter><Hangup/>");
    assert_string_equal(json_string_value(json_object_get(p, "quote")), "\"><Say>hi</Say><");
    assert_string_equal(json_string_value(json_object_get(p, "first_name")), "Ada");
    assert_string_equal(json_string_value(json_object_get(p, "n")), "42");
    assert_string_equal(json_string_value(json_object_get(p, "ctl")), "a b");
    /* A variable cannot pose as one of our fields. */
    assert_string_equal(json_string_value(json_object_get(p, "bc_call_id")), "ac_1");
    assert_string_equal(json_string_value(json_object_get(p, "bc_attempt")), "2");
    assert_string_equal(json_string_value(json_object_get(p, "bc_token")), "123.abc");
    assert_string_equal(json_string_value(json_object_get(p, "bc_context")), "inline");
    assert_string_equal(json_string_value(json_object_get(p, "bc_metadata")), "{\"crm\":\"x&y\"}");
    assert_null(strstr(twiml, "<Hangup"));
    json_decref(p);
    free(twiml);
    json_decref(vars);
    json_decref(meta);
}

static void test_too_large_goes_by_the_context_route(void **state)
{
    json_t *vars = json_object();
    char big[600];
    bc_agent_call c;
    char *twiml, *url, u[256];
    int inl = 1;
    bc_err err = { "" };
    json_t *p;

    (void)state;
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 8; i++) {
        char k[8];
        snprintf(k, sizeof k, "v%d", i);
        json_object_set_new(vars, k, json_string(big));
    }
    c = a_call(vars, NULL);
    assert_int_equal(bc_agent_instructions("wss://agent.example/s", &c, &twiml, &url, &inl,
                                           &err), 0);
    assert_int_equal(inl, 0);
    assert_true(strlen(twiml) <= BC_TWIML_MAX);
    p = stream_params(twiml, u);
    assert_non_null(p);
    assert_null(json_object_get(p, "v0"));
    assert_string_equal(json_string_value(json_object_get(p, "bc_context")), "fetch");
    assert_string_equal(json_string_value(json_object_get(p, "bc_context_url")),
                        "https://api.example/v1/calls/ac_1/context");
    json_decref(p);
    free(twiml);
    /* 4,000 characters, not bytes: multi-byte text counts once a letter. */
    json_object_clear(vars);
    json_object_set_new(vars, "v", json_string("\xc3\xa9"));
    assert_int_equal(bc_agent_instructions("wss://agent.example/s", &c, &twiml, &url, &inl,
                                           &err), 0);
    assert_int_equal(inl, 1);
    free(twiml);
    json_decref(vars);
}

static void test_sip_and_twiml_url(void **state)
{
    bc_agent_call c = a_call(NULL, NULL);
    char *twiml, *url;
    int inl;
    bc_err err = { "" };
    xmlDocPtr doc;
    xmlNodePtr sip;
    xmlChar *uri;

    (void)state;
    c.token = "1.a&b<c";
    assert_int_equal(bc_agent_instructions("sip:bot@sip.example", &c, &twiml, &url, &inl,
                                           &err), 0);
    assert_null(url);
    doc = xmlReadMemory(twiml, (int)strlen(twiml), NULL, NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    sip = xmlFirstElementChild(xmlFirstElementChild(xmlDocGetRootElement(doc)));
    assert_string_equal((char *)sip->name, "Sip");
    uri = xmlNodeGetContent(sip);
    assert_string_equal((char *)uri,
                        "sip:bot@sip.example?X-bc-call-id=ac_1&X-bc-token=1.a%26b%3Cc");
    xmlFree(uri);
    xmlFreeDoc(doc);
    free(twiml);

    assert_int_equal(bc_agent_instructions("https://agent.example/twiml?k=v", &c, &twiml, &url,
                                           &inl, &err), 0);
    assert_null(twiml);
    assert_string_equal(url, "https://agent.example/twiml?k=v&bc_call_id=ac_1&bc_token=1.a%26b%3Cc");
    free(url);
    assert_int_equal(bc_agent_instructions(NULL, &c, &twiml, &url, &inl, &err), -1);
}

static void test_tokens(void **state)
{
    char tok[BC_AGENT_TOKEN_MAX], bad[BC_AGENT_TOKEN_MAX];

    (void)state;
    assert_int_equal(bc_agent_token("s3cret", "ac_1", 2000, tok, sizeof tok), 0);
    assert_true(bc_agent_token_check("s3cret", "ac_1", tok, 1999));
    assert_false(bc_agent_token_check("s3cret", "ac_1", tok, 2000));   /* expired */
    assert_false(bc_agent_token_check("s3cret", "ac_2", tok, 1000));   /* another call */
    assert_false(bc_agent_token_check("other", "ac_1", tok, 1000));    /* another secret */
    snprintf(bad, sizeof bad, "9999%s", tok);                          /* a later expiry */
    assert_false(bc_agent_token_check("s3cret", "ac_1", bad, 1000));
    assert_false(bc_agent_token_check("s3cret", "ac_1", "", 1000));
    assert_false(bc_agent_token_check("s3cret", "ac_1", "2000.", 1000));
    assert_false(bc_agent_token_check("s3cret", "ac_1", NULL, 1000));
}

BC_TEST_MAIN(cmocka_unit_test(test_endpoint_kinds_and_checks),
             cmocka_unit_test(test_stream_carries_every_variable_as_text),
             cmocka_unit_test(test_too_large_goes_by_the_context_route),
             cmocka_unit_test(test_sip_and_twiml_url),
             cmocka_unit_test(test_tokens))
