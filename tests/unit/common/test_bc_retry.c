/* Tests common/bc_retry.c: which retry policies are accepted, what is
 * stored for them, why others are refused, outcome classes and waits. */
#include <stdlib.h>
#include <string.h>

#include "bc_retry.h"
#include "bc_test.h"

/* Parses doc; returns the stored policy as compact JSON ("null" if none),
 * and the max_retries read. Caller frees. */
static char *stored(const char *doc, int *mr)
{
    json_t *in = json_loads(doc, 0, NULL), *p = NULL;
    char why[300] = "";
    char *out;

    assert_non_null(in);
    if (bc_retry_parse(in, "", mr, &p, why, sizeof why) != 0)
        fail_msg("'%s' refused: %s", doc, why);
    out = p ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : strdup("null");
    json_decref(p);
    json_decref(in);
    return out;
}

static void accepts(const char *doc, int want_mr, const char *want)
{
    int mr = -2;
    char *got = stored(doc, &mr);

    assert_int_equal(mr, want_mr);
    if (strcmp(got, want))
        fail_msg("'%s' stored as %s, not %s", doc, got, want);
    free(got);
}

static void refuses(const char *doc, const char *where, const char *want)
{
    json_t *in = json_loads(doc, 0, NULL), *p = (json_t *)1;
    char why[300] = "";
    int mr = 0;

    assert_non_null(in);
    assert_int_equal(bc_retry_parse(in, where, &mr, &p, why, sizeof why), -1);
    assert_null(p);
    if (!strstr(why, want))
        fail_msg("'%s': '%s' does not say '%s'", doc, why, want);
    json_decref(in);
}

static void test_absent_fields_store_nothing(void **state)
{
    (void)state;
    accepts("{}", -1, "null");
    accepts("{\"to_number\": \"+14155550100\"}", -1, "null");
    accepts("{\"max_retries\": 0}", 0, "null");
    accepts("{\"max_retries\": 10}", 10, "null");
}

/* bc_retry_given says whether bc_retry_parse has anything to read: each of
 * its fields counts, null included (the parse refuses a null by name). */
static void test_given_names_every_field_the_parse_reads(void **state)
{
    const char *given[] = { "{\"max_retries\": 1}", "{\"retry_on\": []}",
                            "{\"retry_intervals_s\": [5]}", "{\"retry_backoff\": {\"base_s\": 5}}",
                            "{\"retry_on\": null}" };
    json_t *j;

    (void)state;
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++) {
        assert_non_null(j = json_loads(given[i], 0, NULL));
        assert_true(bc_retry_given(j));
        json_decref(j);
    }
    assert_non_null(j = json_loads("{\"to_number\": \"+14155550100\", \"retries\": 3}", 0, NULL));
    assert_false(bc_retry_given(j));
    json_decref(j);
}

static void test_retry_on_is_normalised(void **state)
{
    (void)state;
    accepts("{\"retry_on\": [\"voicemail\", \"busy\", \"busy\"]}", -1,
            "{\"retry_on\":[\"busy\",\"voicemail\"]}");
    accepts("{\"retry_on\": []}", -1, "{\"retry_on\":[]}");
    accepts("{\"retry_on\": [\"failed\", \"no_answer\", \"busy\", \"voicemail\"], "
            "\"max_retries\": 3}", 3,
            "{\"retry_on\":[\"busy\",\"no_answer\",\"failed\",\"voicemail\"]}");
}

static void test_schedules_are_stored_with_defaults(void **state)
{
    (void)state;
    accepts("{\"retry_intervals_s\": [60, 300, 900]}", -1,
            "{\"retry_intervals_s\":[60,300,900]}");
    accepts("{\"retry_backoff\": {\"base_s\": 30}}", -1,
            "{\"retry_backoff\":{\"base_s\":30,\"factor\":2.0,\"max_s\":86400}}");
    accepts("{\"retry_backoff\": {\"base_s\": 30, \"factor\": 1.5, \"max_s\": 600}, "
            "\"retry_on\": [\"busy\"]}", -1,
            "{\"retry_backoff\":{\"base_s\":30,\"factor\":1.5,\"max_s\":600},"
            "\"retry_on\":[\"busy\"]}");
    accepts("{\"retry_backoff\": {\"base_s\": 5, \"factor\": 3, \"max_s\": 5}}", -1,
            "{\"retry_backoff\":{\"base_s\":5,\"factor\":3.0,\"max_s\":5}}");
}

/* The OpenAPI document types them without null: a null is not a field left
 * out. */
static void test_a_null_is_refused_by_name(void **state)
{
    static const char *const cases[][3] = {
        { "{\"max_retries\": null}", "", "max_retries must not be null" },
        { "{\"retry_on\": null}", "tasks[1].", "tasks[1].retry_on must not be null" },
        { "{\"retry_backoff\": {\"base_s\": 10, \"max_s\": null}}", "", "max_s must not be null" },
        { "{\"retry_backoff\": {\"base_s\": 10, \"factor\": null}}", "",
          "factor must not be null" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refuses(cases[i][0], cases[i][1], cases[i][2]);
}

static void test_malformed_fields_are_refused_by_name(void **state)
{
    (void)state;
    refuses("{\"max_retries\": 11}", "", "max_retries must be an integer between 0 and 10");
    refuses("{\"max_retries\": -1}", "tasks[2].", "tasks[2].max_retries must be");
    refuses("{\"max_retries\": 1.5}", "", "max_retries must be");
    refuses("{\"max_retries\": \"3\"}", "", "max_retries must be");
    refuses("{\"retry_on\": \"busy\"}", "", "retry_on must be an array");
    refuses("{\"retry_on\": [\"busy\", \"no-answer\"]}", "recipients[0].",
            "recipients[0].retry_on[1] must be one of");
    refuses("{\"retry_on\": [\"completed\"]}", "", "retry_on[0] must be one of");
    refuses("{\"retry_on\": [1]}", "", "retry_on[0] must be one of");
    refuses("{\"retry_intervals_s\": []}", "", "retry_intervals_s must be an array of 1 to 10");
    refuses("{\"retry_intervals_s\": [1,2,3,4,5,6,7,8,9,10,11]}", "", "retry_intervals_s must be");
    refuses("{\"retry_intervals_s\": 60}", "", "retry_intervals_s must be");
    refuses("{\"retry_intervals_s\": [60, 0]}", "", "retry_intervals_s[1] must be an integer "
                                                    "between 1 and 86400");
    refuses("{\"retry_intervals_s\": [86401]}", "", "retry_intervals_s[0]");
    refuses("{\"retry_intervals_s\": [2.5]}", "", "retry_intervals_s[0]");
    refuses("{\"retry_intervals_s\": [60], \"retry_backoff\": {\"base_s\": 1}}", "",
            "cannot both be given");
    refuses("{\"retry_backoff\": [1]}", "", "retry_backoff must be an object");
    refuses("{\"retry_backoff\": {}}", "", "retry_backoff.base_s must be");
    refuses("{\"retry_backoff\": {\"base_s\": 0}}", "", "retry_backoff.base_s must be");
    refuses("{\"retry_backoff\": {\"base_s\": 10, \"factor\": 0.5}}", "",
            "retry_backoff.factor must be a number between 1 and 10");
    refuses("{\"retry_backoff\": {\"base_s\": 10, \"factor\": 11}}", "", "factor");
    refuses("{\"retry_backoff\": {\"base_s\": 10, \"factor\": \"2\"}}", "", "factor");
    refuses("{\"retry_backoff\": {\"base_s\": 10, \"max_s\": 9}}", "",
            "retry_backoff.max_s must be an integer between base_s and 86400");
    refuses("{\"retry_backoff\": {\"base_s\": 10, \"jitter\": true}}", "",
            "retry_backoff takes only base_s, factor and max_s");
    refuses("{\"retry_backoff\": {\"jitter\": true}}", "tasks[0].",
            "tasks[0].retry_backoff takes only base_s, factor and max_s");
}

static void test_outcome_classes(void **state)
{
    (void)state;
    assert_string_equal(bc_retry_outcome("busy", NULL), "busy");
    assert_string_equal(bc_retry_outcome("no-answer", NULL), "no_answer");
    assert_string_equal(bc_retry_outcome("failed", NULL), "failed");
    assert_string_equal(bc_retry_outcome("canceled", NULL), "canceled");
    assert_string_equal(bc_retry_outcome("completed", NULL), "completed");
    assert_string_equal(bc_retry_outcome("completed", "human"), "completed");
    assert_string_equal(bc_retry_outcome("completed", "unknown"), "completed");
    assert_string_equal(bc_retry_outcome("completed", "machine_end_beep"), "voicemail");
    assert_string_equal(bc_retry_outcome("completed", "machine_start"), "voicemail");
    /* AnsweredBy on a call that was not answered changes nothing. */
    assert_string_equal(bc_retry_outcome("busy", "machine_end_beep"), "busy");
    assert_string_equal(bc_retry_outcome("weird", NULL), "failed");
    assert_string_equal(bc_retry_outcome(NULL, NULL), "failed");
}

static double delay(const char *doc, int k)
{
    json_t *in = json_loads(doc, 0, NULL), *p = NULL;
    char why[200];
    int mr;
    double d;

    assert_int_equal(bc_retry_parse(in, "", &mr, &p, why, sizeof why), 0);
    d = bc_retry_delay_s(p, k);
    json_decref(p);
    json_decref(in);
    return d;
}

static void test_waits_follow_the_schedule(void **state)
{
    const char *iv = "{\"retry_intervals_s\": [60, 300, 900]}";
    const char *bo = "{\"retry_backoff\": {\"base_s\": 10, \"factor\": 3, \"max_s\": 200}}";

    (void)state;
    assert_true(delay(iv, 1) == 60 && delay(iv, 2) == 300 && delay(iv, 3) == 900);
    assert_true(delay(iv, 4) == 900 && delay(iv, 10) == 900);   /* the last repeats */
    assert_true(delay(bo, 1) == 10 && delay(bo, 2) == 30 && delay(bo, 3) == 90);
    assert_true(delay(bo, 4) == 200 && delay(bo, 11) == 200);   /* capped */
    assert_true(delay("{\"retry_backoff\": {\"base_s\": 7}}", 2) == 14);
    assert_true(delay("{\"retry_on\": [\"busy\"]}", 1) == -1);   /* no schedule */
    assert_true(bc_retry_delay_s(NULL, 1) == -1);
}

BC_TEST_MAIN(cmocka_unit_test(test_absent_fields_store_nothing),
             cmocka_unit_test(test_given_names_every_field_the_parse_reads),
             cmocka_unit_test(test_retry_on_is_normalised),
             cmocka_unit_test(test_schedules_are_stored_with_defaults),
             cmocka_unit_test(test_malformed_fields_are_refused_by_name),
             cmocka_unit_test(test_a_null_is_refused_by_name),
             cmocka_unit_test(test_outcome_classes),
             cmocka_unit_test(test_waits_follow_the_schedule))
