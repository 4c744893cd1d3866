/* Fuzzes common/bc_twilio.c: form bodies (parse, encode, parse again gives
 * the same pairs) and X-Twilio-Signature (what sign makes, check accepts;
 * pair order does not matter; anything else is refused without a crash). */
#include "bc_fuzz.h"

#include "bc_twilio.h"

#define TOKEN "sim-auth-token"
#define URL "http://127.0.0.1:8080/carrier/twilio/status?region=us&tenant_id=org_1" \
            "&batch_id=b_1&call_id=c_1"

static int same(const bc_form *a, const bc_form *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->key[i], b->key[i]) || strcmp(a->val[i], b->val[i]))
            return 0;
    return 1;
}

static void signatures(const bc_form *f, const char *junk)
{
    char sig[64], other[64], c;
    bc_form rev = { 0 };

    BC_FUZZ_CHECK(bc_twilio_sign(TOKEN, URL, f, sig, sizeof sig) == 0);
    BC_FUZZ_CHECK(strlen(sig) == 28);
    BC_FUZZ_CHECK(bc_twilio_check(TOKEN, URL, f, sig) == 1);
    BC_FUZZ_CHECK(bc_twilio_check("another-token", URL, f, sig) == 0);
    BC_FUZZ_CHECK(bc_twilio_check(TOKEN, URL "x", f, sig) == 0);
    BC_FUZZ_CHECK(bc_twilio_check(TOKEN, URL, f, NULL) == 0);
    BC_FUZZ_CHECK(bc_twilio_check(TOKEN, URL, f, junk) == !strcmp(junk, sig));
    c = sig[0];
    sig[0] = c == 'A' ? 'B' : 'A';
    BC_FUZZ_CHECK(bc_twilio_check(TOKEN, URL, f, sig) == 0);
    sig[0] = c;

    /* The carrier may send the pairs in any order. */
    for (size_t i = f->n; i-- > 0;)
        BC_FUZZ_CHECK(bc_form_add(&rev, f->key[i], f->val[i]) == 0);
    BC_FUZZ_CHECK(bc_twilio_sign(TOKEN, URL, &rev, other, sizeof other) == 0);
    BC_FUZZ_CHECK(!strcmp(sig, other));
    bc_form_free(&rev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bc_form f = { 0 }, g = { 0 };
    char *enc = NULL, *enc2 = NULL, *junk = bc_fuzz_str(data, size);

    if (bc_form_parse((const char *)data, size, &f) < 0) {
        BC_FUZZ_CHECK(f.n == 0);
        goto out;
    }
    BC_FUZZ_CHECK(f.n <= BC_FORM_MAX);
    if (f.n)
        BC_FUZZ_CHECK(bc_form_get(&f, f.key[0]) == f.val[0]);
    enc = bc_form_encode(&f);
    BC_FUZZ_CHECK(enc != NULL);
    BC_FUZZ_CHECK(bc_form_parse(enc, strlen(enc), &g) == 0);
    BC_FUZZ_CHECK(same(&f, &g));
    enc2 = bc_form_encode(&g);
    BC_FUZZ_CHECK(enc2 && !strcmp(enc, enc2));
    signatures(&f, junk);
    if (f.n == BC_FORM_MAX)
        BC_FUZZ_CHECK(bc_form_add(&f, "k", "v") == -1);
out:
    bc_form_free(&f);
    bc_form_free(&g);
    free(enc);
    free(enc2);
    free(junk);
    return 0;
}
