/* Tests cli/bc_file.c: a file read whole, the cap on its size, and the
 * errors that name the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_file.h"
#include "bc_test.h"

/* A new file in the working directory (CTest's: the build directory)
 * holding n bytes of a pattern; its name is in path. */
static void make_file(char *path, size_t n)
{
    int fd;
    FILE *f;

    strcpy(path, "test_bc_file_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), f);
    assert_int_equal(fclose(f), 0);
}

static void test_reads_every_byte_past_the_first_buffer(void **state)
{
    char path[64], *buf = NULL;
    size_t len = 0, n = (1 << 17) + 3;   /* more than one growth of the buffer */
    bc_err err = { "" };

    (void)state;
    make_file(path, n);
    assert_int_equal(bc_file_read(path, n, &buf, &len, &err), 0);
    assert_int_equal(len, n);
    for (size_t i = 0; i < n; i++)
        if (buf[i] != 'a' + (int)(i % 26))
            fail_msg("byte %zu is '%c'", i, buf[i]);
    free(buf);
    unlink(path);
}

static void test_empty_file_is_zero_bytes(void **state)
{
    char path[64], *buf = NULL;
    size_t len = 99;
    bc_err err = { "" };

    (void)state;
    make_file(path, 0);
    assert_int_equal(bc_file_read(path, 10, &buf, &len, &err), 0);
    assert_int_equal(len, 0);
    free(buf);
    unlink(path);
}

static void test_over_the_cap_and_missing_files_are_refused_by_name(void **state)
{
    char path[64], want[128], *buf = NULL;
    size_t len = 0;
    bc_err err = { "" };

    (void)state;
    make_file(path, (2 << 20) + 1);
    assert_int_equal(bc_file_read(path, 2 << 20, &buf, &len, &err), -1);
    snprintf(want, sizeof want, "%s is larger than 2 MiB", path);
    assert_string_equal(err.msg, want);
    assert_null(buf);
    assert_int_equal(bc_file_read(path, (2 << 20) + 1, &buf, &len, &err), 0);
    free(buf);
    unlink(path);
    buf = NULL;
    assert_int_equal(bc_file_read(path, 10, &buf, &len, &err), -1);
    snprintf(want, sizeof want, "cannot read %s: No such file or directory", path);
    assert_string_equal(err.msg, want);
    assert_null(buf);
}

BC_TEST_MAIN(cmocka_unit_test(test_reads_every_byte_past_the_first_buffer),
             cmocka_unit_test(test_empty_file_is_zero_bytes),
             cmocka_unit_test(test_over_the_cap_and_missing_files_are_refused_by_name))
