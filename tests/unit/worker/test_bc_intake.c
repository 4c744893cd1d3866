/* Tests worker/bc_intake.c: which waiting batches an ended call wakes. */

#include "bc_intake.h"
#include "bc_test.h"

#include <stdio.h>
#include <string.h>

/* Three batches with a job waiting each, all backed off until 1,000 ms:
 * a and b of tenant t1, c of tenant t2. */
typedef struct {
    bc_job job[3];
    bc_wbatch b[3];
} waiting;

static bc_wbatch *setup(waiting *w)
{
    const char *ids[] = { "a", "b", "c" }, *tenants[] = { "t1", "t1", "t2" };

    memset(w, 0, sizeof *w);
    for (int i = 0; i < 3; i++) {
        snprintf(w->b[i].id, sizeof w->b[i].id, "%s", ids[i]);
        snprintf(w->b[i].tenant, sizeof w->b[i].tenant, "%s", tenants[i]);
        w->b[i].head = w->b[i].tail = &w->job[i];
        w->b[i].retry_at = 1000;
        w->b[i].misses = 5;
        w->b[i].free_hint = 0;
        w->b[i].next = i < 2 ? &w->b[i + 1] : NULL;
    }
    return &w->b[0];
}

static void test_a_batch_with_jobs_waiting_takes_its_slot_itself(void **state)
{
    waiting w;
    bc_wbatch *list = setup(&w);

    (void)state;
    assert_int_equal(bc_wbatch_slot_freed(list, "a", "t1", 120), 0);   /* not draining */
    assert_int_equal(w.b[0].retry_at, 0);
    assert_int_equal(w.b[0].misses, 0);
    assert_int_equal(w.b[0].free_hint, 1);
    /* Its tenant's other batch waits out its back-off: the slot is a's. */
    assert_int_equal(w.b[1].retry_at, 1000);
    assert_int_equal(w.b[2].retry_at, 1000);
}

static void test_a_draining_batch_brings_its_tenants_others_forward(void **state)
{
    waiting w;
    bc_wbatch *list;

    (void)state;
    /* a has no job waiting here (its last ones were claimed)... */
    list = setup(&w);
    w.b[0].head = w.b[0].tail = NULL;
    assert_int_equal(bc_wbatch_slot_freed(list, "a", "t1", 120), 1);   /* draining */
    /* ...so the scheduler gives its slot to b: b tries by 120 ms. */
    assert_int_equal(w.b[1].retry_at, 120);
    assert_int_equal(w.b[1].misses, 5);        /* still turned away so far */
    assert_int_equal(w.b[1].free_hint, 0);
    /* Another tenant's batch gets nothing from it. */
    assert_int_equal(w.b[2].retry_at, 1000);
    /* ...nor does a batch already trying sooner. */
    w.b[1].retry_at = 50;
    bc_wbatch_slot_freed(list, "a", "t1", 120);
    assert_int_equal(w.b[1].retry_at, 50);
}

static void test_a_batch_forgotten_here_counts_as_draining(void **state)
{
    waiting w;
    bc_wbatch *list = setup(&w);

    (void)state;
    /* The intake forgets a batch with nothing waiting (bc_intake_rotate). */
    assert_int_equal(bc_wbatch_slot_freed(list, "gone", "t2", 300), 1);
    assert_int_equal(w.b[2].retry_at, 300);
    assert_int_equal(w.b[0].retry_at, 1000);
    assert_int_equal(w.b[1].retry_at, 1000);
}

static void test_without_a_tenant_only_the_batch_is_woken(void **state)
{
    waiting w;
    bc_wbatch *list = setup(&w);

    (void)state;
    w.b[0].head = w.b[0].tail = NULL;
    bc_wbatch_slot_freed(list, "a", NULL, 120);
    assert_int_equal(w.b[0].retry_at, 0);
    assert_int_equal(w.b[1].retry_at, 1000);
    assert_int_equal(w.b[2].retry_at, 1000);
}

static void test_a_batch_with_nothing_waiting_is_not_woken(void **state)
{
    waiting w;
    bc_wbatch *list = setup(&w);

    (void)state;
    w.b[0].head = w.b[0].tail = NULL;
    w.b[1].head = w.b[1].tail = NULL;
    bc_wbatch_slot_freed(list, "a", "t1", 120);
    assert_int_equal(w.b[1].retry_at, 1000);
}

BC_TEST_MAIN(cmocka_unit_test(test_a_batch_with_jobs_waiting_takes_its_slot_itself),
             cmocka_unit_test(test_a_draining_batch_brings_its_tenants_others_forward),
             cmocka_unit_test(test_a_batch_forgotten_here_counts_as_draining),
             cmocka_unit_test(test_without_a_tenant_only_the_batch_is_woken),
             cmocka_unit_test(test_a_batch_with_nothing_waiting_is_not_woken))
