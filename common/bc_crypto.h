/* bc_crypto: ids, key hashing, HMAC and constant-time comparison (OpenSSL). */
#ifndef BC_CRYPTO_H
#define BC_CRYPTO_H

#include <stddef.h>

#define BC_SHA256_HEX 65   /* 64 hex digits + NUL */

/* Fills buf with n cryptographically random bytes; 0 or -1. */
int bc_random_bytes(void *buf, size_t n);

/* Writes prefix + nchars random base62 characters into out (cap bytes with
 * NUL). 0 or -1 if it does not fit or randomness fails. */
int bc_random_token(char *out, size_t cap, const char *prefix, size_t nchars);

/* Writes a new object id "<prefix>_<22 base62>" into out: 7 characters of
 * creation time (so ids sort by age) and 15 random ones (about 89 bits). */
int bc_id_new(char *out, size_t cap, const char *prefix);

/* Writes n ids "<prefix>_<22 base62>" into out, one every stride bytes,
 * in ascending order: rows stored in this order land on a B-tree's pages
 * in key order. Each is as random as bc_id_new's; sorting them costs no
 * entropy, only the order of the draws. 0 or -1. */
int bc_ids_new(char *out, size_t stride, size_t n, const char *prefix);

/* Hex SHA-256 of data into out[BC_SHA256_HEX]. */
void bc_sha256_hex(const void *data, size_t len, char out[BC_SHA256_HEX]);

/* Base64 of HMAC-SHA1(key, data) into out (at least 29 bytes). 0 or -1. */
int bc_hmac_sha1_b64(const char *key, const void *data, size_t len,
                     char *out, size_t cap);

/* Lower-case hex HMAC-SHA256(key, data) into out[BC_SHA256_HEX] (the key is
 * the bytes of the NUL-terminated string). 0 or -1. */
int bc_hmac_sha256_hex(const char *key, const void *data, size_t len,
                       char out[BC_SHA256_HEX]);

/* 1 if the two NUL-terminated strings are equal, in time that depends only on
 * their lengths (never on where they differ). */
int bc_ct_streq(const char *a, const char *b);

#endif
