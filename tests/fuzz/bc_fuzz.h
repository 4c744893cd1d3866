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

/* 1 if max_retries (may be NULL) and policy (may be NULL) are what
 * bc_retry_parse stores (common/bc_retry.h): 0-10 retries; retry_on of
 * known outcomes; at most one schedule, with waits of 1 s to a day. */
static inline int bc_fuzz_retry_ok(const json_t *max_retries, const json_t *policy)
{
    static const char *const outcomes = " busy no_answer failed voicemail ";
    json_t *on = json_object_get(policy, "retry_on"), *x;
    json_t *iv = json_object_get(policy, "retry_intervals_s");
    json_t *bo = json_object_get(policy, "retry_backoff");
    size_t i;

    if (max_retries && (!json_is_integer(max_retries) || json_integer_value(max_retries) < 0 ||
                        json_integer_value(max_retries) > 10))
        return 0;
    if (!policy)
        return 1;
    if (!json_is_object(policy) || json_object_size(policy) == 0 || (iv && bo))
        return 0;
    json_array_foreach(on, i, x) {
        char word[24];
        if (!json_is_string(x) || strlen(json_string_value(x)) > 20)
            return 0;
        snprintf(word, sizeof word, " %s ", json_string_value(x));
        if (!strstr(outcomes, word))
            return 0;
    }
    if (on && !json_is_array(on))
        return 0;
    json_array_foreach(iv, i, x)
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 86400)
            return 0;
    if (iv && (!json_is_array(iv) || json_array_size(iv) < 1 || json_array_size(iv) > 10))
        return 0;
    if (bo) {
        double b = json_number_value(json_object_get(bo, "base_s"));
        double f = json_number_value(json_object_get(bo, "factor"));
        double m = json_number_value(json_object_get(bo, "max_s"));
        if (!(b >= 1 && f >= 1 && f <= 10 && m >= b && m <= 86400))
            return 0;
    }
    return 1;
}

#endif
