/* bc_e164: phone numbers in E.164 ("+" then 8 to 15 digits, no leading 0). */
#ifndef BC_E164_H
#define BC_E164_H

#include <stddef.h>

#define BC_E164_MAX 17   /* "+" + 15 digits + NUL */

/* 1 if s is a strict E.164 number, else 0. */
int bc_e164_valid(const char *s);

/* Normalises a human-typed number ("+1 (415) 555-9876", "00 44 20 ...") to
 * E.164 in out[BC_E164_MAX]. Spaces, dashes, dots and parentheses are
 * dropped; "00" is read as "+". 0 or -1 if the result is not valid E.164. */
int bc_e164_normalize(const char *s, char out[BC_E164_MAX]);

#endif
