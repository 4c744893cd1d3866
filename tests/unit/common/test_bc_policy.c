/* Tests common/bc_policy.c (reasons and each surface's words) and
 * bc_dnc_array of common/bc_dnc.c (the array parameter of a bulk add). */
#include <stdlib.h>
#include <string.h>

#include "bc_credits.h"
#include "bc_dnc.h"
#include "bc_policy.h"
#include "bc_test.h"

static void test_stops(void **state)
{
    (void)state;
    assert_true(bc_policy_stop("dnc_blocked"));
    /* The stops the scheduler's expiry makes (sql/0031_stop_reasons.sql). */
    assert_true(bc_policy_stop("outside_legal_hours"));
    assert_true(bc_policy_stop("insufficient_credits"));
    /* The batch's pause reason and the recipient's stop are one word. */
    assert_string_equal(BC_POLICY_CREDITS, BC_CREDITS_SHORT);
    assert_false(bc_policy_stop("dial_failed"));
    assert_false(bc_policy_stop("expired"));
    assert_false(bc_policy_stop(NULL));
}

static void test_words(void **state)
{
    (void)state;
    assert_string_equal(bc_policy_word("rymi", "dnc_blocked"), "dnc_listed");
    assert_string_equal(bc_policy_word("cartesia", "dnc_blocked"), "dnc_blocked");
    assert_string_equal(bc_policy_word("batch-call", "dnc_blocked"), "dnc_blocked");
    assert_string_equal(bc_policy_word("retell", "dnc_blocked"), "dnc_blocked");
    /* Rymi's 402 code is its word for credits; it has none for legal hours. */
    assert_string_equal(bc_policy_word("rymi", "insufficient_credits"), "insufficient_credits");
    assert_string_equal(bc_policy_word("rymi", "outside_legal_hours"), "outside_legal_hours");
    assert_string_equal(bc_policy_word("cartesia", "outside_legal_hours"), "outside_legal_hours");
    /* Not a policy stop: unchanged on every surface. */
    assert_string_equal(bc_policy_word("rymi", "dial_busy"), "dial_busy");
    assert_null(bc_policy_word("rymi", NULL));
}

static void test_gate_sql(void **state)
{
    (void)state;
    /* The expression (common/sql/policy_block.sql) names the rule it
     * returns, over the given columns. */
    const char *sql = BC_SQL_POLICY_BLOCK("t.a", "t.b");

    assert_non_null(strstr(sql, "WHERE dnc.tenant_id = t.a\n"));
    assert_non_null(strstr(sql, "AND dnc.number = t.b)"));
    assert_non_null(strstr(sql, "THEN '" BC_POLICY_DNC "' END)"));
}

static void test_array(void **state)
{
    json_t *strs = json_pack("[s,s]", "+14155550100", "+14155550101");
    json_t *objs = json_pack("[{s:s},{s:i},{s:s}]", "to_number", "+1415", "to_number", 7,
                             "to_number", "+1416");
    json_t *none = json_array();
    char *a;

    (void)state;
    a = bc_dnc_array(strs, NULL);
    assert_string_equal(a, "{+14155550100,+14155550101}");
    free(a);
    a = bc_dnc_array(objs, "to_number");   /* a non-string is skipped */
    assert_string_equal(a, "{+1415,+1416}");
    free(a);
    a = bc_dnc_array(none, NULL);
    assert_string_equal(a, "{}");
    free(a);
    json_decref(strs);
    json_decref(objs);
    json_decref(none);
}

BC_TEST_MAIN(cmocka_unit_test(test_stops),
             cmocka_unit_test(test_words),
             cmocka_unit_test(test_gate_sql),
             cmocka_unit_test(test_array))
