/* Tests common/bc_e164.c: strict validation, normalisation. */

#include "bc_e164.h"
#include "bc_test.h"

static void test_valid(void **state)
{
    (void)state;
    assert_true(bc_e164_valid("+14155559876"));
    assert_true(bc_e164_valid("+442071838750"));
    assert_true(bc_e164_valid("+123456789012345"));   /* 15 digits */
    assert_false(bc_e164_valid("+1234567890123456"));  /* 16 digits */
    assert_false(bc_e164_valid("14155559876"));        /* no plus */
    assert_false(bc_e164_valid("+04155559876"));       /* leading zero */
    assert_false(bc_e164_valid("+1415555987a"));
    assert_false(bc_e164_valid("+1 415 555 9876"));
    assert_false(bc_e164_valid("+1234567"));           /* too short */
    assert_false(bc_e164_valid(""));
    assert_false(bc_e164_valid(NULL));
}

static void test_normalize(void **state)
{
    (void)state;
    char out[BC_E164_MAX];

    assert_int_equal(bc_e164_normalize("+1 (415) 555-9876", out), 0);
    assert_string_equal(out, "+14155559876");
    assert_int_equal(bc_e164_normalize("0044 20.7183.8750", out), 0);
    assert_string_equal(out, "+442071838750");
    assert_int_equal(bc_e164_normalize("415 555 9876", out), -1);   /* no country */
    assert_int_equal(bc_e164_normalize("+1 415 555 98x6", out), -1);
    assert_int_equal(bc_e164_normalize("+1 234 567 890 123 456 789", out), -1);
}

BC_TEST_MAIN(cmocka_unit_test(test_valid),
             cmocka_unit_test(test_normalize))
