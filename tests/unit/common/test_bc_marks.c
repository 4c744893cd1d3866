/* Tests common/bc_marks.c: the bound a relay's scan of the outbox ends at. */

#include "bc_marks.h"
#include "bc_test.h"

static void test_without_an_old_mark_the_oldest_bounds(void **state)
{
    bc_marks k = { 0 };

    (void)state;
    /* The first run has no mark: the id it sees now. */
    assert_int_equal(bc_marks_bound(&k, 1000, 3000, 50), 50);
    /* None 3 s old yet: the oldest, not the newest. */
    assert_int_equal(bc_marks_bound(&k, 2000, 3000, 80), 50);
    assert_int_equal(bc_marks_bound(&k, 3000, 3000, 90), 50);
}

static void test_the_mark_after_ms_ago_bounds(void **state)
{
    bc_marks k = { 0 };

    (void)state;
    for (int s = 0; s < 10; s++)      /* a run a second, ids 100 apart */
        bc_marks_bound(&k, 1000LL * s, 3000, 100LL * s);
    /* At 10 s: the newest mark at or before 7 s is the one of 7 s. */
    assert_int_equal(bc_marks_bound(&k, 10000, 3000, 1000), 700);
    /* 3.5 s: the mark of 7 s again (7.5 s has none). */
    assert_int_equal(bc_marks_bound(&k, 10500, 3500, 1050), 700);
    /* No delay: the newest mark before this run. */
    assert_int_equal(bc_marks_bound(&k, 11000, 0, 1100), 1050);
}

static void test_the_ring_keeps_the_last_minute(void **state)
{
    bc_marks k = { 0 };

    (void)state;
    for (int s = 0; s < 200; s++)
        bc_marks_bound(&k, 1000LL * s, 1000, s);
    assert_int_equal(k.n, BC_MARKS_N);
    /* A delay beyond the ring: its oldest mark (the run BC_MARKS_N ago). */
    assert_int_equal(bc_marks_bound(&k, 200000, 120000, 200), 200 - BC_MARKS_N);
}

BC_TEST_MAIN(cmocka_unit_test(test_without_an_old_mark_the_oldest_bounds),
             cmocka_unit_test(test_the_mark_after_ms_ago_bounds),
             cmocka_unit_test(test_the_ring_keeps_the_last_minute))
