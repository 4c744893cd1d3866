/* Tests cli/bc_term.c: bars, sizes, durations, tables, and the in-place
 * frame's escape sequences. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_term.h"
#include "bc_test.h"

static void test_bar(void **state)
{
    char b[64];

    (void)state;
    bc_term_bar(b, sizeof b, 10, 0);
    assert_string_equal(b, "[          ]");
    bc_term_bar(b, sizeof b, 10, 0.5);
    assert_string_equal(b, "[=====>    ]");
    bc_term_bar(b, sizeof b, 10, 1);
    assert_string_equal(b, "[==========]");
    bc_term_bar(b, sizeof b, 10, 7.5);          /* clamped */
    assert_string_equal(b, "[==========]");
    bc_term_bar(b, sizeof b, 4, -1);
    assert_string_equal(b, "[    ]");
    bc_term_bar(b, 6, 10, 1);                   /* cut to the buffer, still a string */
    assert_int_equal(strlen(b), 5);
}

static void test_bytes_and_durations(void **state)
{
    char b[32];

    (void)state;
    bc_term_bytes(b, sizeof b, 812);
    assert_string_equal(b, "812 B");
    bc_term_bytes(b, sizeof b, 1536);
    assert_string_equal(b, "1.5 KiB");
    bc_term_bytes(b, sizeof b, 12LL << 20);
    assert_string_equal(b, "12.0 MiB");
    bc_term_duration(b, sizeof b, 45);
    assert_string_equal(b, "45s");
    bc_term_duration(b, sizeof b, 185);
    assert_string_equal(b, "3m05s");
    bc_term_duration(b, sizeof b, 7620);
    assert_string_equal(b, "2h07m");
    bc_term_duration(b, sizeof b, -1);
    assert_string_equal(b, "-");
}

static char *print_table(const bc_term_table *t)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    bc_term_table_print(t, f);
    fclose(f);
    return buf;
}

static void test_table_aligns_columns(void **state)
{
    bc_term_table *t = bc_term_table_new(3);
    const char *h[] = { "ID", ">COUNT", "NAME" }, *a[] = { "acb_1", "7", "short" },
               *b[] = { "acb_22", "1234", NULL };
    char *out;

    (void)state;
    assert_int_equal(bc_term_table_row(t, h), 0);
    assert_int_equal(bc_term_table_row(t, a), 0);
    assert_int_equal(bc_term_table_row(t, b), 0);
    out = print_table(t);
    assert_string_equal(out, "ID      COUNT  NAME\n"
                             "acb_1       7  short\n"
                             "acb_22   1234  \n");
    free(out);
    bc_term_table_free(t);
    bc_term_table_free(NULL);
}

static void test_table_grows(void **state)
{
    bc_term_table *t = bc_term_table_new(1);
    const char *r[] = { "x" };
    char *out;

    (void)state;
    for (int i = 0; i < 100; i++)
        assert_int_equal(bc_term_table_row(t, r), 0);
    out = print_table(t);
    assert_int_equal(strlen(out), 200);
    free(out);
    bc_term_table_free(t);
}

static void test_frame_redraws_over_itself(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bc_term_frame fr;
    const char *two[] = { "one", "two" }, *one[] = { "only a very long line" };

    (void)state;
    bc_term_frame_init(&fr, f, 10);
    bc_term_frame_draw(&fr, two, 2);
    bc_term_frame_draw(&fr, one, 1);
    fclose(f);
    /* First frame: two lines. Second: up two, one line cut to the width
     * less one (no wrap), the old second line cleared, back up one. */
    assert_string_equal(buf, "\rone\033[K\n\rtwo\033[K\n"
                             "\r\033[2A\ronly a ve\033[K\n\033[K\n\033[1A");
    free(buf);
}

BC_TEST_MAIN(cmocka_unit_test(test_bar),
             cmocka_unit_test(test_bytes_and_durations),
             cmocka_unit_test(test_table_aligns_columns),
             cmocka_unit_test(test_table_grows),
             cmocka_unit_test(test_frame_redraws_over_itself))
