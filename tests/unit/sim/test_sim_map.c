/* Tests tests/sim/sim_map.c: the carrier simulator's string map (its keys
 * now stored in the entry) and its set of attempt ids, which counts how
 * often each was added: the ledger's evidence of a call dialed twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_test.h"
#include "sim_map.h"

static void test_map_put_get_del(void **state)
{
    sim_map m = { 0 };
    char k[32];

    (void)state;
    assert_null(sim_map_get(&m, "none"));
    assert_null(sim_map_del(&m, "none"));
    for (long i = 0; i < 5000; i++) {   /* grows from 1024 buckets */
        snprintf(k, sizeof k, "CA%08ld", i);
        sim_map_put(&m, k, (void *)(i + 1));
    }
    assert_int_equal(m.n, 5000);
    assert_true(m.nb >= 5000);
    for (long i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "CA%08ld", i);
        assert_ptr_equal(sim_map_get(&m, k), (void *)(i + 1));
    }
    for (long i = 0; i < 5000; i += 2) {
        snprintf(k, sizeof k, "CA%08ld", i);
        assert_ptr_equal(sim_map_del(&m, k), (void *)(i + 1));
        assert_null(sim_map_del(&m, k));
    }
    assert_int_equal(m.n, 2500);
    for (long i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "CA%08ld", i);
        assert_ptr_equal(sim_map_get(&m, k), i % 2 ? (void *)(i + 1) : NULL);
    }
    sim_map_free(&m, NULL);
    assert_int_equal(m.n, 0);
    assert_null(sim_map_get(&m, "CA00000001"));
}

static void test_map_hash_is_fnv1a_64(void **state)
{
    (void)state;
    /* The published FNV-1a 64 values: the soak's harness computes the same
     * (bench/soak.py, kept()). */
    assert_true(sim_map_hash("") == 0xcbf29ce484222325ULL);
    assert_true(sim_map_hash("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(sim_map_hash("foobar") == 0x85944171f73967e8ULL);
}

static void test_idset_counts_each_id(void **state)
{
    sim_idset s = { 0 };
    char k[48];

    (void)state;
    assert_int_equal(sim_idset_add(&s, "ac_1"), 0);
    assert_int_equal(sim_idset_add(&s, "ac_2"), 0);
    assert_int_equal(sim_idset_add(&s, "ac_1"), 1);   /* the second dial */
    assert_int_equal(sim_idset_add(&s, "ac_1"), 2);
    assert_int_equal(sim_idset_add(&s, "ac_1"), 3);
    assert_int_equal(sim_idset_add(&s, "ac_1"), 3);   /* saturates */
    assert_int_equal(s.n, 2);
    /* Growing keeps every id and its count. */
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof k, "ac_%06d", i);
        assert_int_equal(sim_idset_add(&s, k), 0);
    }
    assert_true(s.cap >= 2 * s.n);
    assert_int_equal(sim_idset_add(&s, "ac_2"), 1);
    assert_int_equal(sim_idset_add(&s, "ac_1"), 3);
    for (int i = 0; i < 100000; i += 7) {
        snprintf(k, sizeof k, "ac_%06d", i);
        assert_int_equal(sim_idset_add(&s, k), 1);
    }
    sim_idset_free(&s);
    assert_int_equal(sim_idset_add(&s, "ac_1"), 0);   /* usable again */
    sim_idset_free(&s);
}

static void test_idset_reserve_makes_room_at_once(void **state)
{
    sim_idset s = { 0 };
    size_t cap;
    char k[48];

    (void)state;
    sim_idset_reserve(&s, 50000);
    cap = s.cap;
    assert_true(cap >= 100000);
    for (int i = 0; i < 50000; i++) {
        snprintf(k, sizeof k, "ac_%06d", i);
        sim_idset_add(&s, k);
    }
    assert_int_equal(s.cap, cap);   /* never grew */
    assert_int_equal(s.n, 50000);
    sim_idset_free(&s);
}

BC_TEST_MAIN(cmocka_unit_test(test_map_put_get_del),
             cmocka_unit_test(test_map_hash_is_fnv1a_64),
             cmocka_unit_test(test_idset_counts_each_id),
             cmocka_unit_test(test_idset_reserve_makes_room_at_once))
