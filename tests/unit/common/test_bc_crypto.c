/* Tests common/bc_crypto.c, bc_twilio.c and bc_apikey.c: HMAC against RFC
 * 2202, the Twilio signature against Twilio's documented example, key
 * shapes and constant-time comparison. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "bc_apikey.h"
#include "bc_crypto.h"
#include "bc_test.h"
#include "bc_twilio.h"

static void test_hmac_sha1_rfc2202(void **state)
{
    (void)state;
    char out[64];

    assert_int_equal(bc_hmac_sha1_b64("Jefe", "what do ya want for nothing?", 28,
                                      out, sizeof out), 0);
    assert_string_equal(out, "7/zfauXrL6LSdBbV8YTfnCWafHk=");
}

/* RFC 4231, test case 2: what webhook signatures are made of. */
static void test_hmac_sha256_rfc4231(void **state)
{
    (void)state;
    char out[BC_SHA256_HEX];

    assert_int_equal(bc_hmac_sha256_hex("Jefe", "what do ya want for nothing?", 28, out), 0);
    assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_sha256(void **state)
{
    (void)state;
    char hex[BC_SHA256_HEX];

    bc_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_twilio_signature_documented_example(void **state)
{
    (void)state;
    const char *url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    bc_form f = { 0 };
    char sig[64];

    /* Added out of order: signing sorts them. */
    bc_form_add(&f, "To", "+18005551212");
    bc_form_add(&f, "CallSid", "CA1234567890ABCDE");
    bc_form_add(&f, "From", "+12349013030");
    bc_form_add(&f, "Digits", "1234");
    bc_form_add(&f, "Caller", "+12349013030");
    assert_int_equal(bc_twilio_sign("12345", url, &f, sig, sizeof sig), 0);
    assert_string_equal(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert_true(bc_twilio_check("12345", url, &f, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(bc_twilio_check("12345", url, &f, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"));
    assert_false(bc_twilio_check("12346", url, &f, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(bc_twilio_check("12345", url, &f, NULL));
    bc_form_free(&f);
}

static void test_form_roundtrip(void **state)
{
    (void)state;
    bc_form f = { 0 }, g = { 0 };
    char *enc;

    bc_form_add(&f, "To", "+1 415&x=y");
    bc_form_add(&f, "Empty", "");
    enc = bc_form_encode(&f);
    assert_non_null(enc);
    assert_int_equal(bc_form_parse(enc, strlen(enc), &g), 0);
    assert_string_equal(bc_form_get(&g, "To"), "+1 415&x=y");
    assert_string_equal(bc_form_get(&g, "Empty"), "");
    assert_null(bc_form_get(&g, "Nope"));
    free(enc);
    bc_form_free(&f);
    bc_form_free(&g);
    /* '+' is a space in forms; a NUL byte is refused. */
    assert_int_equal(bc_form_parse("a=b+c", 5, &g), 0);
    assert_string_equal(bc_form_get(&g, "a"), "b c");
    bc_form_free(&g);
    assert_int_equal(bc_form_parse("a=%00", 5, &g), -1);
}

static void test_apikey_shape_and_match(void **state)
{
    (void)state;
    char token[BC_APIKEY_MAX], lookup[BC_APIKEY_LOOKUP], hash[BC_SHA256_HEX];
    char l2[BC_APIKEY_LOOKUP], joined[BC_APIKEY_MAX], key[32];
    int pub = -1;

    assert_int_equal(bc_apikey_new(0, token, lookup, hash), 0);
    assert_int_equal(strncmp(token, "bc_sk_", 6), 0);
    assert_int_equal(bc_apikey_parse(token, l2, &pub), 0);
    assert_string_equal(lookup, l2);
    assert_int_equal(pub, 0);
    assert_true(bc_apikey_matches(token, hash));
    token[30] = token[30] == 'a' ? 'b' : 'a';
    assert_false(bc_apikey_matches(token, hash));
    token[30] = token[30] == 'a' ? 'b' : 'a';
    /* The two batch-call headers join back into the key. */
    memcpy(key, token, 22);
    key[22] = '\0';
    assert_int_equal(bc_apikey_join(key, token + 23, joined), 0);
    assert_string_equal(joined, token);
    assert_int_equal(bc_apikey_parse("bc_sk_short", l2, &pub), -1);
    assert_int_equal(bc_apikey_parse("xx_sk_0123456789abcdef_0123456789abcdef0123456789abcdef", l2, &pub), -1);
    assert_int_equal(bc_apikey_new(1, token, lookup, hash), 0);
    assert_int_equal(bc_apikey_parse(token, l2, &pub), 0);
    assert_int_equal(pub, 1);
}

/* Tokens: the prefix, then exactly nchars base62 characters; a buffer too
 * small is refused; over many characters every one of the 62 occurs. */
static void test_random_token_shape_and_spread(void **state)
{
    (void)state;
    char tok[64], seen[128] = { 0 };
    int distinct = 0;

    assert_int_equal(bc_random_token(tok, 10, "whsec_", 4), -1);
    for (int n = 0; n < 200; n++) {
        assert_int_equal(bc_random_token(tok, sizeof tok, "whsec_", 32), 0);
        assert_int_equal(strlen(tok), 6 + 32);
        assert_int_equal(strncmp(tok, "whsec_", 6), 0);
        for (int i = 6; i < 38; i++) {
            assert_true(isalnum((unsigned char)tok[i]));
            if (!seen[(unsigned char)tok[i]]++)
                distinct++;
        }
    }
    assert_int_equal(distinct, 62);
}

static void test_ids_are_distinct_and_shaped(void **state)
{
    (void)state;
    char a[48], b[48];

    assert_int_equal(bc_id_new(a, sizeof a, "acb"), 0);
    assert_int_equal(bc_id_new(b, sizeof b, "acb"), 0);
    assert_int_equal(strlen(a), 4 + 22);
    assert_int_equal(strncmp(a, "acb_", 4), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(bc_id_new(a, 10, "acb"), -1);   /* does not fit */
    assert_true(bc_ct_streq("abc", "abc"));
    assert_false(bc_ct_streq("abc", "abd"));
    assert_false(bc_ct_streq("abc", "abcd"));
}

/* A batch's ids come sorted (its rows are stored in that order) and as
 * random as single ones: the sorted heads still spread over every first
 * character, and the tails over every character. */
static void test_many_ids_ascend_and_spread(void **state)
{
    (void)state;
    enum { N = 5000 };
    static char ids[N][32];
    int first[128] = { 0 }, last[128] = { 0 }, seen_first = 0, seen_last = 0;

    assert_int_equal(bc_ids_new(ids[0], sizeof ids[0], N, "abcr"), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(strlen(ids[i]), 5 + 22);
        assert_int_equal(strncmp(ids[i], "abcr_", 5), 0);
        assert_int_equal(strncmp(ids[i] + 5, ids[0] + 5, 7), 0);   /* one time */
        for (int k = 5; k < 27; k++)
            assert_non_null(strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "abcdefghijklmnopqrstuvwxyz", ids[i][k]));
        if (i)
            assert_true(strcmp(ids[i - 1], ids[i]) < 0);
        seen_first += !first[(int)ids[i][12]]++;
        seen_last += !last[(int)ids[i][26]]++;
    }
    /* 5,000 uniform draws leave none of 62 values out (each ~80 times). */
    assert_int_equal(seen_first, 62);
    assert_int_equal(seen_last, 62);
    assert_int_equal(bc_ids_new(ids[0], 20, 2, "abcr"), -1);   /* does not fit */
    assert_int_equal(bc_ids_new(ids[0], sizeof ids[0], 0, "abcr"), 0);
}

BC_TEST_MAIN(cmocka_unit_test(test_hmac_sha1_rfc2202),
             cmocka_unit_test(test_hmac_sha256_rfc4231),
             cmocka_unit_test(test_sha256),
             cmocka_unit_test(test_twilio_signature_documented_example),
             cmocka_unit_test(test_form_roundtrip),
             cmocka_unit_test(test_apikey_shape_and_match),
             cmocka_unit_test(test_random_token_shape_and_spread),
             cmocka_unit_test(test_ids_are_distinct_and_shaped),
             cmocka_unit_test(test_many_ids_ascend_and_spread))
