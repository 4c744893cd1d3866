/* bc_publisher's route: which producer takes a message, by the rate the
 * publisher sees, changing only when the producer it leaves is empty. */
#include "bc_test.h"

#include "bc_publisher.h"

/* n messages spread evenly over ms milliseconds from *now, with outq held
 * by the current producer at each; returns the last route. */
static int send(bc_pub_route *r, long long *now, int n, int ms, int outq)
{
    int got = -1;

    for (int i = 0; i < n; i++) {
        got = bc_pub_route_next(r, *now, outq);
        *now += ms / n;
    }
    return got;
}

static void test_a_low_rate_goes_out_at_once(void **state)
{
    bc_pub_route r;
    long long now = 1000000;

    (void)state;
    bc_pub_route_init(&r, 1000);
    assert_int_equal(r.cur, BC_PUB_PROMPT);
    /* 500 a second for two seconds. */
    assert_int_equal(send(&r, &now, 1000, 2000, 0), BC_PUB_PROMPT);
    assert_int_equal(r.cur, BC_PUB_PROMPT);
}

static void test_a_burst_is_batched_and_a_lull_returns(void **state)
{
    bc_pub_route r;
    long long now = 1000000;

    (void)state;
    bc_pub_route_init(&r, 1000);
    /* A burst of 300 in 10 ms, then quiet: under 1,000 in its second, so it
     * goes out at once (B3's ends come like this). */
    assert_int_equal(send(&r, &now, 300, 10, 0), BC_PUB_PROMPT);
    now += 1000;
    /* 1,000 in 100 ms: over the mark before its window closes. */
    assert_int_equal(send(&r, &now, 1000, 100, 0), BC_PUB_BATCHED);
    /* Still 3,000 a second: batched. */
    assert_int_equal(send(&r, &now, 6000, 2000, 0), BC_PUB_BATCHED);
    /* 800 a second is under the mark but not under half of it: stays. */
    assert_int_equal(send(&r, &now, 1600, 2000, 0), BC_PUB_BATCHED);
    /* 300 a second: back to prompt after a window. */
    assert_int_equal(send(&r, &now, 600, 2000, 0), BC_PUB_PROMPT);
    /* A burst, then a message after a window with none: a low rate, however
     * busy the window before it was. */
    assert_int_equal(send(&r, &now, 1000, 10, 0), BC_PUB_BATCHED);
    now += 2 * 1000;
    assert_int_equal(bc_pub_route_next(&r, now, 0), BC_PUB_PROMPT);
}

static void test_it_leaves_a_producer_only_when_empty(void **state)
{
    bc_pub_route r;
    long long now = 1000000;

    (void)state;
    bc_pub_route_init(&r, 1000);
    /* A burst while the prompt producer still holds messages: they stay on
     * it, so none of them is overtaken by the batched one. */
    assert_int_equal(send(&r, &now, 1200, 100, 3), BC_PUB_PROMPT);
    assert_int_equal(r.high, 1);
    assert_int_equal(bc_pub_route_next(&r, now, 0), BC_PUB_BATCHED);
    /* The same the other way. */
    now += 3000;
    assert_int_equal(bc_pub_route_next(&r, now, 7), BC_PUB_BATCHED);
    assert_int_equal(r.high, 0);
    assert_int_equal(bc_pub_route_next(&r, now, 0), BC_PUB_PROMPT);
}

static void test_zero_never_prompts(void **state)
{
    bc_pub_route r;
    long long now = 1000000;

    (void)state;
    bc_pub_route_init(&r, 0);
    assert_int_equal(r.cur, BC_PUB_BATCHED);
    assert_int_equal(send(&r, &now, 10, 1000, 0), BC_PUB_BATCHED);
}

BC_TEST_MAIN(cmocka_unit_test(test_a_low_rate_goes_out_at_once),
             cmocka_unit_test(test_a_burst_is_batched_and_a_lull_returns),
             cmocka_unit_test(test_it_leaves_a_producer_only_when_empty),
             cmocka_unit_test(test_zero_never_prompts))
