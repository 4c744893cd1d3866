/* bc_test: what the unit tests share: cmocka (after the headers it needs
 * first) and BC_TEST_MAIN, the main() that runs a file's tests. */
#ifndef BC_TEST_H
#define BC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* main() running the tests given, cmocka_unit_test(...) entries, as one
 * group; it exits with the number of tests that failed. */
#define BC_TEST_MAIN(...)                                                       \
    int main(void)                                                              \
    {                                                                           \
        const struct CMUnitTest tests[] = { __VA_ARGS__ };                      \
        return cmocka_run_group_tests(tests, NULL, NULL);                       \
    }

#endif
