#include "bc_e164.h"

#include <string.h>

int bc_e164_valid(const char *s)
{
    size_t n;

    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    for (n = 1; s[n]; n++)
        if (s[n] < '0' || s[n] > '9' || n > 15)
            return 0;
    /* 8 digits is the shortest number any national plan routes today. */
    return n - 1 >= 8;
}

int bc_e164_normalize(const char *s, char out[BC_E164_MAX])
{
    size_t o = 0;

    if (!s)
        return -1;
    while (*s == ' ')
        s++;
    if (s[0] == '0' && s[1] == '0')
        s += 2;
    else if (*s == '+')
        s++;
    else
        return -1;
    out[o++] = '+';
    for (; *s; s++) {
        if (*s == ' ' || *s == '-' || *s == '.' || *s == '(' || *s == ')')
            continue;
        if (*s < '0' || *s > '9' || o >= BC_E164_MAX - 1)
            return -1;
        out[o++] = *s;
    }
    out[o] = '\0';
    return bc_e164_valid(out) ? 0 : -1;
}
