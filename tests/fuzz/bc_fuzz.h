/* bc_fuzz: what every libFuzzer target in tests/fuzz shares. Each target is
 * one fuzz_<name>.c defining LLVMFuzzerTestOneInput; a property that does
 * not hold is a crash, so BC_FUZZ_CHECK aborts and libFuzzer saves the
 * input. */
#ifndef BC_FUZZ_H
#define BC_FUZZ_H

#include <jansson.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BC_FUZZ_CHECK(cond)                                                       \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: property does not hold: %s\n", __FILE__,      \
                    __LINE__, #cond);                                             \
            abort();                                                              \
        }                                                                         \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated string (it stops at the first NUL byte the
 * input holds); caller frees. */
static inline char *bc_fuzz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* 1 if s is valid UTF-8: the API answers every error message inside a JSON
 * body, and jansson refuses to pack a string that is not. */
static inline int bc_fuzz_utf8(const char *s)
{
    json_t *j = json_string(s);

    json_decref(j);
    return j != NULL;
}

#endif
