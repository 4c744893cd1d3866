/* Fuzzes bc_callback_event (api/core/bc_callback.c): a carrier status callback's
 * form body becomes an event only with the right signature, and then says
 * what the body said. */
#include "bc_fuzz.h"

#include "bc_callback.h"
#include "bc_twilio.h"

#define TOKEN "sim-auth-token"
#define URL "http://127.0.0.1:8080" BC_CALLBACK_PATH "?region=us&tenant_id=org_1" \
            "&batch_id=b_1&call_id=c_1"

static void event_matches(const char *payload, const bc_form *f)
{
    json_t *ev = json_loads(payload, 0, NULL);
    const char *dur = bc_form_get(f, "CallDuration"), *seq = bc_form_get(f, "SequenceNumber");

    BC_FUZZ_CHECK(ev != NULL);
    BC_FUZZ_CHECK(json_integer_value(json_object_get(ev, "v")) == 1);
    BC_FUZZ_CHECK(!strcmp(json_string_value(json_object_get(ev, "call_id")), "c_1"));
    BC_FUZZ_CHECK(!strcmp(json_string_value(json_object_get(ev, "batch_id")), "b_1"));
    BC_FUZZ_CHECK(!strcmp(json_string_value(json_object_get(ev, "tenant_id")), "org_1"));
    BC_FUZZ_CHECK(!strcmp(json_string_value(json_object_get(ev, "status")),
                          bc_form_get(f, "CallStatus")));
    BC_FUZZ_CHECK(!strcmp(json_string_value(json_object_get(ev, "carrier_call_id")),
                          bc_form_get(f, "CallSid")));
    BC_FUZZ_CHECK(json_integer_value(json_object_get(ev, "duration")) ==
                  (dur ? atoi(dur) : 0));
    BC_FUZZ_CHECK(json_integer_value(json_object_get(ev, "sequence")) ==
                  (seq ? atoi(seq) : 0));
    /* AnsweredBy is carried only as a short lowercase word, and then as is. */
    {
        const char *by = bc_form_get(f, "AnsweredBy");
        json_t *got = json_object_get(ev, "answered_by");
        int ok = by && *by && strlen(by) <= BC_ANSWERED_BY_MAX &&
                 strspn(by, "abcdefghijklmnopqrstuvwxyz_") == strlen(by);

        if (ok)
            BC_FUZZ_CHECK(json_is_string(got) && !strcmp(json_string_value(got), by));
        else
            BC_FUZZ_CHECK(got == NULL);
    }
    json_decref(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data, *why = NULL;
    char *payload = NULL, *junk = bc_fuzz_str(data, size), sig[64];
    bc_form f = { 0 };
    int rc;

    /* Unsigned, or signed with garbage: never an event. */
    rc = bc_callback_event(TOKEN, URL, body, size, NULL, "org_1", "b_1", "c_1", &payload, &why);
    BC_FUZZ_CHECK((rc == 400 || rc == 403) && !payload && why && bc_fuzz_utf8(why));
    rc = bc_callback_event(TOKEN, URL, body, size, junk, "org_1", "b_1", "c_1", &payload, &why);
    BC_FUZZ_CHECK(rc != 0 || payload);
    free(payload);
    payload = NULL;
    if (bc_form_parse(body, size, &f) < 0)
        goto out;

    /* Signed as the carrier would: an event, unless a field is missing. */
    BC_FUZZ_CHECK(bc_twilio_sign(TOKEN, URL, &f, sig, sizeof sig) == 0);
    rc = bc_callback_event(TOKEN, URL, body, size, sig, "org_1", "b_1", "c_1", &payload, &why);
    if (!bc_form_get(&f, "CallStatus") || !bc_form_get(&f, "CallSid")) {
        BC_FUZZ_CHECK(rc == 400 && !payload);
        goto out;
    }
    BC_FUZZ_CHECK(rc == 0);
    /* NULL when a value is not UTF-8: the handler answers 503 (see
     * docs/fuzzing.md). */
    if (payload)
        event_matches(payload, &f);
out:
    bc_form_free(&f);
    free(payload);
    free(junk);
    return 0;
}
