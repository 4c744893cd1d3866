#include "bc_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

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

/* The first 7 characters of an id are the creation time in milliseconds,
 * base62 (enough until the 2130s): ids made together sort together, so
 * index inserts land on the same few pages instead of all over a B-tree. */
#define TIME_CHARS 7

static void time_chars(char *out)
{
    struct timespec ts;
    unsigned long long ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
    for (int i = TIME_CHARS - 1; i >= 0; i--) {
        out[i] = base62[ms % 62];
        ms /= 62;
    }
}

int bc_id_new(char *out, size_t cap, const char *prefix)
{
    return bc_ids_new(out, cap, 1, prefix);
}

int bc_ids_new(char *out, size_t stride, size_t n, const char *prefix)
{
    const size_t rnd = 22 - TIME_CHARS;   /* 15 random chars: ~89 bits */
    size_t plen = strlen(prefix), need = n * rnd, have = 0, pos = 0;
    unsigned char buf[4096];
    char t[TIME_CHARS];

    if (plen + 1 + 22 + 1 > stride)
        return -1;
    time_chars(t);
    for (size_t i = 0; i < n; i++) {
        memcpy(out + i * stride, prefix, plen);
        out[i * stride + plen] = '_';
        memcpy(out + i * stride + plen + 1, t, TIME_CHARS);
        out[i * stride + plen + 23] = '\0';
    }
    /* Rejection sampling over one stream of random bytes. */
    for (size_t k = 0; k < need;) {
        if (pos == have) {
            if (bc_random_bytes(buf, need - k + 64 < sizeof buf ? need - k + 64 : sizeof buf) < 0)
                return -1;
            have = need - k + 64 < sizeof buf ? need - k + 64 : sizeof buf;
            pos = 0;
        }
        unsigned char b = buf[pos++];
        if (b < 248) {
            out[(k / rnd) * stride + plen + 1 + TIME_CHARS + k % rnd] = base62[b % 62];
            k++;
        }
    }
    return 0;
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

int bc_hmac_sha256_hex(const char *key, const void *data, size_t len,
                       char out[BC_SHA256_HEX])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!HMAC(EVP_sha256(), key, (int)strlen(key), data, len, md, &mdlen) || mdlen != 32)
        return -1;
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * mdlen] = '\0';
    return 0;
}

int bc_ct_streq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}
