#include "bc_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

static const char base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int bc_random_bytes(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

int bc_random_token(char *out, size_t cap, const char *prefix, size_t nchars)
{
    size_t plen = strlen(prefix), i = 0;
    unsigned char rnd[64];

    if (plen + nchars + 1 > cap)
        return -1;
    memcpy(out, prefix, plen);
    while (i < nchars) {
        if (bc_random_bytes(rnd, sizeof rnd) < 0)
            return -1;
        /* Rejection sampling keeps every character equally likely. */
        for (size_t j = 0; j < sizeof rnd && i < nchars; j++)
            if (rnd[j] < 248)
                out[plen + i++] = base62[rnd[j] % 62];
    }
    out[plen + nchars] = '\0';
    return 0;
}

int bc_id_new(char *out, size_t cap, const char *prefix)
{
    char p[32];
    size_t n = strlen(prefix);

    if (n + 2 > sizeof p)
        return -1;
    memcpy(p, prefix, n);
    p[n] = '_';
    p[n + 1] = '\0';
    return bc_random_token(out, cap, p, 22);
}

void bc_sha256_hex(const void *data, size_t len, char out[BC_SHA256_HEX])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = "0123456789abcdef"[md[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
    }
    out[64] = '\0';
}

int bc_hmac_sha1_b64(const char *key, const void *data, size_t len,
                     char *out, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (cap < 29)
        return -1;
    if (!HMAC(EVP_sha1(), key, (int)strlen(key), data, len, md, &mdlen))
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    return 0;
}

int bc_ct_streq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}
