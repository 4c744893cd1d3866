/* Fuzzes common/bc_e164.c: validation and normalisation of arbitrary
 * strings, with the properties callers rely on. */
#include "bc_fuzz.h"

#include "bc_e164.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = bc_fuzz_str(data, size);
    char out[BC_E164_MAX], again[BC_E164_MAX];
    int valid = bc_e164_valid(s);
    size_t n = strlen(s);

    if (valid) {
        /* "+", a non-zero digit, 8 to 15 digits in all. */
        BC_FUZZ_CHECK(n >= 9 && n <= 16 && s[0] == '+' && s[1] != '0');
        for (size_t i = 1; i < n; i++)
            BC_FUZZ_CHECK(s[i] >= '0' && s[i] <= '9');
        /* A valid number is its own normal form. */
        BC_FUZZ_CHECK(bc_e164_normalize(s, out) == 0 && !strcmp(out, s));
    }
    memset(out, 'x', sizeof out);
    if (bc_e164_normalize(s, out) == 0) {
        const char *p = s;

        BC_FUZZ_CHECK(memchr(out, '\0', sizeof out) != NULL);
        BC_FUZZ_CHECK(bc_e164_valid(out));
        BC_FUZZ_CHECK(bc_e164_normalize(out, again) == 0 && !strcmp(out, again));
        /* Normalising drops characters, never invents digits: out's digits
         * appear in s, in order. */
        for (size_t i = 1; out[i]; i++) {
            while (*p && *p != out[i])
                p++;
            BC_FUZZ_CHECK(*p);
            p++;
        }
    }
    free(s);
    return 0;
}
