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
    assert_int_equal(bc_lease_grant(20, 10, 10), 10);   /* all it can use */
    assert_int_equal(bc_lease_grant(20, 11, 10), 9);    /* what is free: it grows later */
    assert_int_equal(bc_lease_grant(20, 0, 21), 20);
    assert_int_equal(bc_lease_grant(20, 20, 5), -1);    /* nothing free: it waits */
    assert_int_equal(bc_lease_grant(20, 20, 0), 0);     /* nothing left to call */
    assert_int_equal(bc_lease_grant(20, 21, 0), -1);
    assert_int_equal(bc_lease_grant(20, 0, -1), -1);
    assert_int_equal(bc_lease_grant(20, -1, 1), -1);
    for (long reserved = 0; reserved <= 30; reserved++)
        for (int want = 0; want <= 30; want++) {
            int g = bc_lease_grant(20, reserved, want);
            if (g >= 0)
                assert_true(reserved + g <= 20 && g <= want);
            /* A free slot is never left idle while a batch wants one. */
            if (reserved < 20 && want > 0)
                assert_true(g >= 1);
        }
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
        assert_int_equal(bc_lease_grant(20, reserved, want), want);
        reserved += want;
    }
    assert_int_equal(bc_lease_grant(20, reserved, bc_lease_reservation(10, 1)), -1);
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
