/* Tests common/bc_lease.c: default limits, reservations, admission and
 * renewal. (Fencing, back-off and the window are SQL: the integration
 * tests hold them.) */

#include "bc_lease.h"
#include "bc_test.h"

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

static void test_renew_is_a_third_of_the_ttl(void **state)
{
    (void)state;
    assert_int_equal(bc_lease_renew_ms(60), 20000);
    assert_int_equal(bc_lease_renew_ms(0), 100);
}

BC_TEST_MAIN(cmocka_unit_test(test_default_limit_is_half_at_least_one),
             cmocka_unit_test(test_admission_never_exceeds_tenant_limit),
             cmocka_unit_test(test_reservation_is_what_the_batch_can_use),
             cmocka_unit_test(test_renew_is_a_third_of_the_ttl))
