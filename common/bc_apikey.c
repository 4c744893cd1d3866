#include "bc_apikey.h"

#include <stdio.h>
#include <string.h>

static int is_base62(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

int bc_apikey_new(int publishable, char token[BC_APIKEY_MAX],
                  char lookup[BC_APIKEY_LOOKUP], char hash[BC_SHA256_HEX])
{
    char secret[40];

    if (bc_random_token(lookup, BC_APIKEY_LOOKUP, "", 16) < 0 ||
        bc_random_token(secret, sizeof secret, "", 32) < 0)
        return -1;
    snprintf(token, BC_APIKEY_MAX, "%s_%s_%s", publishable ? "bc_pk" : "bc_sk",
             lookup, secret);
    bc_sha256_hex(token, strlen(token), hash);
    return 0;
}

int bc_apikey_parse(const char *token, char lookup[BC_APIKEY_LOOKUP],
                    int *publishable)
{
    /* "bc_sk_" + 16 + "_" + 32 */
    if (!token || strlen(token) != 6 + 16 + 1 + 32)
        return -1;
    if (strncmp(token, "bc_sk_", 6) && strncmp(token, "bc_pk_", 6))
        return -1;
    if (!is_base62(token + 6, 16) || token[22] != '_' || !is_base62(token + 23, 32))
        return -1;
    memcpy(lookup, token + 6, 16);
    lookup[16] = '\0';
    *publishable = token[3] == 'p';
    return 0;
}

int bc_apikey_join(const char *key, const char *secret, char out[BC_APIKEY_MAX])
{
    if (!key || !secret || strlen(key) + strlen(secret) + 2 > BC_APIKEY_MAX)
        return -1;
    snprintf(out, BC_APIKEY_MAX, "%s_%s", key, secret);
    return 0;
}

int bc_apikey_matches(const char *token, const char *stored_hash)
{
    char h[BC_SHA256_HEX];

    bc_sha256_hex(token, strlen(token), h);
    return bc_ct_streq(h, stored_hash);
}
