#include "bc_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int bc_random_bytes(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

/* Random bytes drawn in blocks of up to 4 KiB, each no larger than what
 * is still expected to be used (want). */
typedef struct {
    unsigned char buf[4096];
    size_t pos, have, want;
} rnd_stream;

static int rnd_byte(rnd_stream *r, unsigned char *b)
{
    if (r->pos == r->have) {
        r->have = r->want < 64 ? 64 : r->want < sizeof r->buf ? r->want : sizeof r->buf;
        r->want -= r->want < r->have ? r->want : r->have;
        r->pos = 0;
        if (bc_random_bytes(r->buf, r->have) < 0)
            return -1;
    }
    *b = r->buf[r->pos++];
    return 0;
}

/* One base62 character from r, each equally likely: a byte at or above
 * 248 (4 x 62) is drawn again. */
static int rnd_char(rnd_stream *r, char *c)
{
    unsigned char b;

    do {
        if (rnd_byte(r, &b) < 0)
            return -1;
    } while (b >= 248);
    *c = base62[b % 62];
    return 0;
}

int bc_random_token(char *out, size_t cap, const char *prefix, size_t nchars)
{
    size_t plen = strlen(prefix);
    rnd_stream rs = { .want = nchars + nchars / 8 + 8 };

    if (plen + nchars + 1 > cap)
        return -1;
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < nchars; i++)
        if (rnd_char(&rs, &out[plen + i]) < 0)
            return -1;
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

/* A random id's first HEAD_CHARS characters after the time are one draw
 * below HEAD_SPAN = 62^10: heads sort as numbers, as their characters
 * sort as text. */
#define HEAD_CHARS 10
#define HEAD_SPAN 839299365868340224ULL

/* A uniform draw below HEAD_SPAN: 60 random bits, rejected at or above it
 * (a quarter of them), as each character rejects bytes at or above 248. */
static int rnd_head(rnd_stream *r, unsigned long long *out)
{
    unsigned char b;

    do {
        *out = 0;
        for (int i = 0; i < 8; i++) {
            if (rnd_byte(r, &b) < 0)
                return -1;
            *out = *out << 8 | b;
        }
        *out >>= 4;
    } while (*out >= HEAD_SPAN);
    return 0;
}

/* Sorts v (n values) ascending, a byte at a time from the lowest: n and
 * 256 steps a byte, where qsort's comparisons of 5,000 ids took 0.7 ms. */
static void radix_sort(unsigned long long *v, unsigned long long *tmp, size_t n)
{
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[257] = { 0 };

        for (size_t i = 0; i < n; i++)
            count[(v[i] >> shift & 0xff) + 1]++;
        for (int d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++)
            tmp[count[v[i] >> shift & 0xff]++] = v[i];
        memcpy(v, tmp, n * sizeof *v);
    }
}

int bc_ids_new(char *out, size_t stride, size_t n, const char *prefix)
{
    const size_t tail = 22 - TIME_CHARS - HEAD_CHARS;   /* 5 more random chars */
    size_t plen = strlen(prefix);
    unsigned long long one[2], *heads = n > 1 ? malloc(2 * n * sizeof *heads) : one;
    /* A head takes 8 bytes 1.37 times on average, the tail 5.1: 17 an
     * id, and a margin. */
    rnd_stream rs = { .want = n * 17 + 64 }, *r = &rs;
    char t[TIME_CHARS];
    int rc = -1;

    if (plen + 1 + 22 + 1 > stride || !heads)
        goto out;
    time_chars(t);
    for (size_t i = 0; i < n; i++)
        if (rnd_head(r, &heads[i]) < 0)
            goto out;
    if (n > 1)
        radix_sort(heads, heads + n, n);
    for (size_t i = 0; i < n; i++) {
        char *id = out + i * stride, *p = id + plen + 1 + TIME_CHARS;
        unsigned long long h = heads[i];

        memcpy(id, prefix, plen);
        id[plen] = '_';
        memcpy(id + plen + 1, t, TIME_CHARS);
        for (int k = HEAD_CHARS - 1; k >= 0; k--) {
            p[k] = base62[h % 62];
            h /= 62;
        }
        for (size_t k = 0; k < tail; k++)
            if (rnd_char(r, &p[HEAD_CHARS + k]) < 0)
                goto out;
        id[plen + 23] = '\0';
    }
    rc = 0;
out:
    if (heads != one)
        free(heads);
    return rc;
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
