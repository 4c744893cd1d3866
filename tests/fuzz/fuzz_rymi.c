/* Fuzzes bc_rymi_parse (api/surfaces/rymi/bc_rymi_sessions.c) on every body both as POST
 * /v1/calls/batch ("to" or "recipients") and as POST /v1/calls
 * ("participants"): a spec only if the core can store it. */
#include "bc_fuzz.h"

#include "bc_e164.h"
#include "bc_json.h"
#include "bc_rymi_sessions.h"

static void spec_ok(const bc_batch_spec *s, json_t *recips)
{
    json_t *r;
    size_t i;

    BC_FUZZ_CHECK(s->recipients == recips && json_is_array(recips));
    BC_FUZZ_CHECK(json_array_size(recips) >= 1 && json_array_size(recips) <= 500);
    BC_FUZZ_CHECK(s->name && s->agent_id && *s->agent_id);
    BC_FUZZ_CHECK(!s->from_number || bc_e164_valid(s->from_number));
    BC_FUZZ_CHECK(!s->variables || json_is_object(s->variables) || json_is_null(s->variables));
    json_array_foreach(recips, i, r) {
        json_t *from = json_object_get(r, "from_number");

        BC_FUZZ_CHECK(bc_e164_valid(json_string_value(json_object_get(r, "to_number"))));
        BC_FUZZ_CHECK(!from || bc_e164_valid(json_string_value(from)));
        BC_FUZZ_CHECK(json_is_object(json_object_get(r, "metadata")));
        BC_FUZZ_CHECK(bc_fuzz_retry_ok(json_object_get(r, "max_retries"),
                                       json_object_get(r, "retry_policy")));
    }
    BC_FUZZ_CHECK(s->max_retries >= 0 && s->max_retries <= 10);
    BC_FUZZ_CHECK(bc_fuzz_retry_ok(NULL, s->retry_policy));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in, *recips;
    char why[300] = "";

    if (!(in = bc_json_object((const char *)data, size, why, sizeof why))) {
        BC_FUZZ_CHECK(why[0] && bc_fuzz_utf8(why));
        return 0;
    }
    for (int participants = 0; participants < 2; participants++) {
        bc_batch_spec spec = { .surface = "rymi" };

        recips = json_null();
        why[0] = '\0';
        if (bc_rymi_parse(in, participants, &spec, &recips, why, sizeof why) == 0)
            spec_ok(&spec, recips);
        else
            BC_FUZZ_CHECK(!recips && !spec.retry_policy && why[0] && bc_fuzz_utf8(why));
        json_decref(spec.retry_policy);
        json_decref(recips);
    }
    json_decref(in);
    return 0;
}
