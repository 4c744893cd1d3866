/* Tests common/bc_credits.c: holds, started minutes, costs. */

#include "bc_credits.h"
#include "bc_test.h"

static void test_hold_is_the_max_duration(void **state)
{
    (void)state;
    assert_int_equal(bc_credits_hold(10, 480), 4800);
    assert_int_equal(bc_credits_hold(10, 1), 10);
    assert_int_equal(bc_credits_hold(0, 480), 0);
}

static void test_every_started_minute_is_billed(void **state)
{
    (void)state;
    assert_int_equal(bc_credits_minutes(0), 0);
    assert_int_equal(bc_credits_minutes(-5), 0);
    assert_int_equal(bc_credits_minutes(1), 1);
    assert_int_equal(bc_credits_minutes(60), 1);
    assert_int_equal(bc_credits_minutes(61), 2);
    assert_int_equal(bc_credits_minutes(3600), 60);
}

static void test_only_answered_calls_cost(void **state)
{
    (void)state;
    assert_int_equal(bc_credits_cost("completed", 61, 10, 4800), 20);
    assert_int_equal(bc_credits_cost("busy", 0, 10, 4800), 0);
    assert_int_equal(bc_credits_cost("no-answer", 30, 10, 4800), 0);
    assert_int_equal(bc_credits_cost("failed", 0, 10, 4800), 0);
    assert_int_equal(bc_credits_cost(NULL, 30, 10, 4800), 0);
}

static void test_cost_never_exceeds_the_hold(void **state)
{
    (void)state;
    /* TimeLimit stops the call at its maximum; a second over it is not
     * another minute. */
    assert_int_equal(bc_credits_cost("completed", 61, 10, 10), 10);
}

BC_TEST_MAIN(cmocka_unit_test(test_hold_is_the_max_duration),
             cmocka_unit_test(test_every_started_minute_is_billed),
             cmocka_unit_test(test_only_answered_calls_cost),
             cmocka_unit_test(test_cost_never_exceeds_the_hold))
