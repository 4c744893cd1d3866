/* Tests common/bc_json.c: request bodies and fields, with errors a client
 * can act on. */
#include <stdint.h>
#include <string.h>

#include "bc_json.h"
#include "bc_test.h"

static void test_object_parsing(void **state)
{
    (void)state;
    char why[200];
    json_t *j;

    assert_null(bc_json_object("", 0, why, sizeof why));
    assert_non_null(strstr(why, "empty"));
    assert_null(bc_json_object("{\"a\":", 5, why, sizeof why));
    assert_non_null(strstr(why, "malformed JSON"));
    assert_null(bc_json_object("[1]", 3, why, sizeof why));
    assert_non_null(strstr(why, "object"));
    assert_null(bc_json_object("{\"a\":1,\"a\":2}", 13, why, sizeof why));
    /* jansson quotes "\u0" and the lone lead byte after it (fuzz_batchcall). */
    assert_null(bc_json_object("{\"\\u0\xd8\x9a\":1}", 11, why, sizeof why));
    assert_non_null(strstr(why, "malformed JSON"));
    for (const char *p = why; *p; p++)
        assert_true((unsigned char)*p < 0x80);
    j = bc_json_object("{\"a\":1}", 7, why, sizeof why);
    assert_non_null(j);
    json_decref(j);
}

static void test_int_field(void **state)
{
    (void)state;
    char why[200];
    long v;
    json_t *j = json_pack("{s:i,s:s,s:n,s:i}", "ring", 81, "s", "x", "nul", "ok", 10);

    assert_int_equal(bc_json_int(j, "ring", 5, 80, 60, &v, why, sizeof why), -1);
    assert_non_null(strstr(why, "between 5 and 80"));
    assert_int_equal(bc_json_int(j, "s", 5, 80, 60, &v, why, sizeof why), -1);
    assert_non_null(strstr(why, "integer"));
    assert_int_equal(bc_json_int(j, "nul", 5, 80, 60, &v, why, sizeof why), 0);
    assert_int_equal(v, 60);
    assert_int_equal(bc_json_int(j, "missing", 5, 80, 60, &v, why, sizeof why), 0);
    assert_int_equal(v, 60);
    assert_int_equal(bc_json_int(j, "ok", 5, 80, 60, &v, why, sizeof why), 0);
    assert_int_equal(v, 10);
    json_decref(j);
}

static void test_str_field(void **state)
{
    (void)state;
    char why[200];
    const char *s;
    json_t *j = json_pack("{s:s,s:i,s:s}", "name", "March", "n", 3, "empty", "");

    assert_int_equal(bc_json_str(j, "name", 1, 255, &s, why, sizeof why), 0);
    assert_string_equal(s, "March");
    assert_int_equal(bc_json_str(j, "name", 1, 3, &s, why, sizeof why), -1);
    assert_int_equal(bc_json_str(j, "n", 1, 255, &s, why, sizeof why), -1);
    assert_int_equal(bc_json_str(j, "missing", 1, 255, &s, why, sizeof why), -1);
    assert_non_null(strstr(why, "missing is required"));
    assert_int_equal(bc_json_str(j, "missing", 0, 255, &s, why, sizeof why), 0);
    assert_null(s);
    assert_int_equal(bc_json_str(j, "empty", 1, 255, &s, why, sizeof why), -1);
    json_decref(j);
}

/* {"a":{"a":...1}} n levels deep. */
static json_t *nested(int n)
{
    json_t *j = json_integer(1);

    while (n-- > 0)
        j = json_pack("{s:o}", "a", j);
    return j;
}

static void test_no_null(void **state)
{
    char why[128];
    json_t *j = json_pack("{s:n,s:i,s:n}", "metadata", "ttl", 5, "latest_at");

    (void)state;
    assert_int_equal(bc_json_no_null(j, "", "ttl,name", why, sizeof why), 0);
    assert_int_equal(bc_json_no_null(j, "", "metadata", why, sizeof why), -1);
    assert_string_equal(why, "metadata must not be null; leave it out");
    assert_int_equal(bc_json_no_null(j, "tasks[2].", "name,ttl,latest_at", why, sizeof why), -1);
    assert_string_equal(why, "tasks[2].latest_at must not be null; leave it out");
    assert_int_equal(bc_json_no_null(j, "", "", why, sizeof why), 0);
    assert_int_equal(bc_json_no_null(NULL, "", "ttl", why, sizeof why), 0);
    /* An array's item: its path is in the message, as the caller's own
     * "tasks[2]." prefix put it. */
    assert_int_equal(bc_json_no_null_at(j, "tasks", 2, "name,ttl", why, sizeof why), 0);
    assert_int_equal(bc_json_no_null_at(j, "tasks", 2, "name,latest_at", why, sizeof why), -1);
    assert_string_equal(why, "tasks[2].latest_at must not be null; leave it out");
    assert_int_equal(bc_json_no_null_at(NULL, "tasks", 0, "ttl", why, sizeof why), 0);
    json_decref(j);
}

static void test_fits(void **state)
{
    (void)state;
    char why[200];
    json_t *j;

    assert_int_equal(bc_json_fits(NULL, "m", 10, why, sizeof why), 0);
    j = json_null();
    assert_int_equal(bc_json_fits(j, "m", 1, why, sizeof why), 0);
    json_decref(j);
    /* {"b":"xx"}: 10 bytes as compact JSON. */
    j = json_pack("{s:s}", "b", "xx");
    assert_int_equal(bc_json_fits(j, "m", 10, why, sizeof why), 0);
    assert_int_equal(bc_json_fits(j, "m", 9, why, sizeof why), -1);
    assert_string_equal(why, "m is larger than 9 bytes as JSON");
    json_decref(j);
    j = nested(BC_JSON_MAX_DEPTH);
    assert_int_equal(bc_json_fits(j, "m", 1 << 20, why, sizeof why), 0);
    j = json_pack("[o]", j);   /* arrays count as levels too */
    assert_int_equal(bc_json_fits(j, "m", 1 << 20, why, sizeof why), -1);
    assert_string_equal(why, "m is nested deeper than 32 levels");
    json_decref(j);
}

/* bc_json_surely_fits only ever vouches for what fits: for every value and
 * every cap around its size, a yes means its compact JSON is within the
 * cap. Values with escapes, a NUL inside a key and a string, numbers at
 * their longest and nesting at the cap. */
static void test_surely_fits_never_vouches_for_too_big(void **state)
{
    (void)state;
    json_t *vals[] = {
        json_pack("{s:i}", "row", 7),
        json_pack("{s:I,s:f,s:b,s:n}", "a", (json_int_t)INT64_MIN, "b", -1.2345678901234567e-308,
                  "c", 1, "d"),
        json_pack("{s:s}", "k", "tab\there \"quoted\" \x01 and \xc3\xa9"),
        json_pack("[s,s,[],{}]", "", "\x1f\x1f"),
        json_stringn("a\0b", 3),
        nested(BC_JSON_MAX_DEPTH),
        nested(BC_JSON_MAX_DEPTH + 1),
    };
    json_t *o = json_object();

    json_object_setn_new(o, "x\0y", 3, json_stringn("\0", 1));
    for (size_t i = 0; i <= sizeof vals / sizeof vals[0]; i++) {
        json_t *v = i < sizeof vals / sizeof vals[0] ? vals[i] : o;
        size_t size = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        int deep = i == 6;

        for (size_t cap = 0; cap < size * 8 + 16; cap++)
            if (bc_json_surely_fits(v, cap))
                assert_true(size <= cap && !deep);
        if (!deep)   /* and it does vouch for small values under a roomy cap */
            assert_true(bc_json_surely_fits(v, size * 6 + 64));
        json_decref(v);
    }
    assert_true(bc_json_surely_fits(NULL, 0));
}

/* What bc_json_object_lazy and bc_json_items_next read back, the array
 * put back into the rest: NULL unless every step succeeded. */
static json_t *read_lazily(const char *text)
{
    bc_json_items it;
    json_t *rest, *arr, *e;

    if (bc_json_object_lazy(text, strlen(text), "recipients", &rest, &it) < 0) {
        assert_null(rest);
        return NULL;
    }
    assert_true(json_is_array(json_object_get(rest, "recipients")));
    assert_int_equal(json_array_size(json_object_get(rest, "recipients")), 0);
    arr = json_array();
    while ((e = bc_json_items_next(&it)))
        json_array_append_new(arr, e);
    if (it.bad || json_array_size(arr) != it.n) {
        json_decref(arr);
        json_decref(rest);
        return NULL;
    }
    json_object_set_new(rest, "recipients", arr);
    return rest;
}

/* Whatever the lazy read accepts, the whole parse accepts as the same
 * document; what it declines is left to the whole parse. */
static void test_lazy_read_is_the_whole_parse_or_declines(void **state)
{
    (void)state;
    static const struct { const char *text; int lazy; } cases[] = {
        { "{\"name\":\"b\",\"recipients\":[{\"to\":\"+1\"},{\"to\":\"+2\"}]}", 1 },
        /* the array first, fields after it, and whitespace everywhere */
        { " {\r\n \"recipients\" :\t[ {\"to\":\"+1\", \"m\":{\"a\":[1,2,{\"b\":\"]\"}]}} ,\n"
          "  {\"to\":\"+2\"} ] , \"name\" : \"x,y]\" } \n", 1 },
        /* brackets, commas and the key itself inside strings */
        { "{\"name\":\"\\\"recipients\\\": [\",\"recipients\":[{\"s\":\"a\\\\\"},{\"s\":\",[{\"}]}", 1 },
        /* the key nested deeper is not the member */
        { "{\"meta\":{\"recipients\":[1,2]},\"recipients\":[{\"a\":1}]}", 1 },
        { "{\"recipients\":[[1,2],{\"a\":1}]}", 1 },
        /* declined: absent, not an array, twice, escaped, not an object */
        { "{\"name\":\"b\"}", 0 },
        { "{\"recipients\":{\"a\":1}}", 0 },
        { "{\"recipients\":[{}],\"recipients\":[{}]}", 0 },
        { "{\"recipient\\u0073\":[{\"a\":1}]}", 0 },
        { "[{\"recipients\":[{}]}]", 0 },
        /* declined: a duplicate outside the array, elsewhere malformed */
        { "{\"name\":1,\"name\":2,\"recipients\":[{}]}", 0 },
        { "{\"name\":,\"recipients\":[{}]}", 0 },
        { "{\"recipients\":[{}]} x", 0 },
        { "{\"recipients\":[{}]", 0 },
        /* declined by the items: trailing and leading commas, a scalar,
         * an element cut short, a duplicate key inside one */
        { "{\"recipients\":[{\"a\":1},]}", 0 },
        { "{\"recipients\":[,{\"a\":1}]}", 0 },
        { "{\"recipients\":[{\"a\":1},\"x\"]}", 0 },
        { "{\"recipients\":[{\"a\":1} {\"b\":2}]}", 0 },
        { "{\"recipients\":[{\"a\":1,\"a\":2}]}", 0 },
        { "{\"recipients\":[{\"a\":}]}", 0 },
        /* an empty array reads as no elements; the caller judges the count */
        { "{\"recipients\":[ ]}", 1 },
    };

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        json_t *lazy = read_lazily(cases[k].text);
        json_t *whole = json_loads(cases[k].text, JSON_REJECT_DUPLICATES, NULL);

        if (!cases[k].lazy) {
            if (lazy)
                fail_msg("case %zu read lazily: %s", k, cases[k].text);
            json_decref(whole);
            continue;
        }
        if (!lazy || !whole || !json_equal(lazy, whole))
            fail_msg("case %zu not the whole parse's document: %s", k, cases[k].text);
        json_decref(lazy);
        json_decref(whole);
    }
}

/* Sorted by the member, ties in their order, an item without it first. */
static void test_sort_by_orders_by_key_and_keeps_ties(void **state)
{
    (void)state;
    json_t *a = json_loads("[{\"id\":\"c\",\"n\":1},{\"id\":\"a\",\"n\":2},"
                           "{\"id\":\"c\",\"n\":3},{\"n\":4},{\"id\":\"b\",\"n\":5},"
                           "{\"id\":\"a\",\"n\":6}]", 0, NULL);
    const int want[] = { 4, 2, 6, 5, 1, 3 };

    assert_non_null(a);
    assert_int_equal(bc_json_sort_by(a, "id"), 0);
    assert_int_equal(json_array_size(a), 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, i), "n")),
                         want[i]);
    json_decref(a);
    a = json_array();
    assert_int_equal(bc_json_sort_by(a, "id"), 0);
    json_decref(a);
}

/* The scan counts the elements before any is parsed; nesting past the
 * caps is declined, as the whole parse refuses it. */
static void test_lazy_read_counts_and_caps_depth(void **state)
{
    (void)state;
    bc_json_items it;
    json_t *rest;
    char deep[400];
    size_t n = 0;

    const char *t = "{\"recipients\":[{\"a\":[1,2,3]},{\"b\":\",,\"},[]]}";
    assert_int_equal(bc_json_object_lazy(t, strlen(t), "recipients", &rest, &it), 0);
    assert_int_equal(it.n, 3);
    json_decref(rest);
    n += (size_t)snprintf(deep, sizeof deep, "{\"recipients\":[");
    for (int d = 0; d < BC_JSON_MAX_DEPTH + 8; d++)
        deep[n++] = '[';
    for (int d = 0; d < BC_JSON_MAX_DEPTH + 8; d++)
        deep[n++] = ']';
    n += (size_t)snprintf(deep + n, sizeof deep - n, "]}");
    assert_int_equal(bc_json_object_lazy(deep, n, "recipients", &rest, &it), -1);
    assert_null(rest);
}

BC_TEST_MAIN(cmocka_unit_test(test_object_parsing),
             cmocka_unit_test(test_surely_fits_never_vouches_for_too_big),
             cmocka_unit_test(test_int_field),
             cmocka_unit_test(test_str_field),
             cmocka_unit_test(test_fits),
             cmocka_unit_test(test_no_null),
             cmocka_unit_test(test_lazy_read_is_the_whole_parse_or_declines),
             cmocka_unit_test(test_lazy_read_counts_and_caps_depth),
             cmocka_unit_test(test_sort_by_orders_by_key_and_keeps_ties))
