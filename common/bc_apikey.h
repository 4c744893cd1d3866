/* bc_apikey: API key format. A key is "<kind>_<lookup>_<secret>":
 *   kind    "bc_sk" (secret) or "bc_pk" (publishable)
 *   lookup  16 base62 chars, stored in clear to find the row
 *   secret  32 base62 chars (~190 bits), never stored
 * Only SHA-256 of the whole key is kept. The batch-call surface sends the key
 * in two headers: X-API-KEY "<kind>_<lookup>" and X-API-SECRET "<secret>". */
#ifndef BC_APIKEY_H
#define BC_APIKEY_H

#include <stddef.h>

#include "bc_crypto.h"

#define BC_APIKEY_MAX 64
#define BC_APIKEY_LOOKUP 17   /* 16 chars + NUL */

/* Makes a new key into token[BC_APIKEY_MAX]; fills its lookup and hash. */
int bc_apikey_new(int publishable, char token[BC_APIKEY_MAX],
                  char lookup[BC_APIKEY_LOOKUP], char hash[BC_SHA256_HEX]);

/* Splits a presented key. Returns 0 and fills lookup and *publishable if the
 * shape is right, -1 otherwise (nothing to look up). */
int bc_apikey_parse(const char *token, char lookup[BC_APIKEY_LOOKUP],
                    int *publishable);

/* Joins the two batch-call headers into one key in out. 0 or -1. */
int bc_apikey_join(const char *key, const char *secret, char out[BC_APIKEY_MAX]);

/* 1 if token hashes to stored_hash (constant-time compare). */
int bc_apikey_matches(const char *token, const char *stored_hash);

#endif
