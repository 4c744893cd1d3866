/* Tests common/bc_lease.c: default limits, reservations, admission, renewal, window,
 * back-off and fencing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bc_lease.h"

static void test_default_limit_is_half_at_least_one(void **state)
{
    (void)state;
    assert_int_equal(bc_lease_default_limit(20), 10);
    assert_int_equal(bc_lease_default_limit(15), 7);
    assert_int_equal(bc_lease_default_limit(1), 1);
}

static void test_admission_never_exceeds_tenant_limit(void **state)
{
    (void)state;
    assert_true(bc_lease_admits(20, 10, 10));
    assert_false(bc_lease_admits(20, 11, 10));
    assert_false(bc_lease_admits(20, 0, 21));
    assert_true(bc_lease_admits(20, 20, 0));     /* nothing left to call */
    assert_false(bc_lease_admits(20, 21, 0));
    assert_false(bc_lease_admits(20, 0, -1));
    for (long reserved = 0; reserved <= 30; reserved++)
        for (int lim = 0; lim <= 30; lim++)
            if (bc_lease_admits(20, reserved, lim))
                assert_true(reserved + lim <= 20);
}

static void test_reservation_is_what_the_batch_can_use(void **state)
{
    (void)state;
    assert_int_equal(bc_lease_reservation(10, 2), 2);     /* a small batch */
    assert_int_equal(bc_lease_reservation(10, 5000), 10);
    assert_int_equal(bc_lease_reservation(10, 10), 10);
    assert_int_equal(bc_lease_reservation(10, 0), 0);     /* drained */
    assert_int_equal(bc_lease_reservation(10, -3), 0);
    /* Ten batches of 2 on a tenant of 20, each with the default limit:
     * all fit at once. */
    long reserved = 0;
    for (int i = 0; i < 10; i++) {
        int want = bc_lease_reservation(bc_lease_default_limit(20), 2);
        assert_true(bc_lease_admits(20, reserved, want));
        reserved += want;
    }
    assert_false(bc_lease_admits(20, reserved, bc_lease_reservation(10, 1)));
}

static void test_renew_and_window(void **state)
{
    (void)state;
    assert_int_equal(bc_lease_renew_ms(60), 20000);
    assert_int_equal(bc_lease_renew_ms(0), 100);
    assert_int_equal(bc_lease_window(10, 2), 20);
    assert_int_equal(bc_lease_window(0, 2), 1);
}

static void test_backoff_doubles_with_jitter_and_cap(void **state)
{
    (void)state;
    assert_int_equal(bc_lease_backoff_ms(1000, 1, 1.0, 60000), 1000);
    assert_int_equal(bc_lease_backoff_ms(1000, 2, 1.0, 60000), 2000);
    assert_int_equal(bc_lease_backoff_ms(1000, 3, 1.0, 60000), 4000);
    assert_int_equal(bc_lease_backoff_ms(1000, 3, 0.5, 60000), 2000);
    assert_int_equal(bc_lease_backoff_ms(1000, 40, 1.0, 60000), 60000);
    assert_true(bc_lease_backoff_ms(1000, 2, 9.0, 60000) < 3000);
}

static void test_fencing_refuses_old_tokens(void **state)
{
    (void)state;
    assert_true(bc_lease_token_current(42, 42));
    assert_false(bc_lease_token_current(43, 42));
    assert_false(bc_lease_token_current(0, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_limit_is_half_at_least_one),
        cmocka_unit_test(test_admission_never_exceeds_tenant_limit),
        cmocka_unit_test(test_reservation_is_what_the_batch_can_use),
        cmocka_unit_test(test_renew_and_window),
        cmocka_unit_test(test_backoff_doubles_with_jitter_and_cap),
        cmocka_unit_test(test_fencing_refuses_old_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
