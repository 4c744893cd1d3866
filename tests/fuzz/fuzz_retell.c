/* Fuzzes bc_retell_parse (api/surfaces/bc_retell.c): a POST /create-batch-call body
 * becomes a batch spec only if it is one the core can store, and its
 * call_time_window turns into calling hours that read back as the same
 * window. */
#include "bc_fuzz.h"

#include "bc_calling_hours.h"
#include "bc_e164.h"
#include "bc_json.h"
#include "bc_retell.h"
#include "bc_validate.h"

static void spec_ok(const bc_batch_spec *s, const bc_retell_req *rr)
{
    json_t *t;
    size_t i;
    char why[300];

    BC_FUZZ_CHECK(s->recipients == rr->tasks && json_is_array(rr->tasks));
    BC_FUZZ_CHECK(json_array_size(rr->tasks) >= 1 &&
                  json_array_size(rr->tasks) <= BC_RETELL_MAX_TASKS);
    BC_FUZZ_CHECK(s->name && s->timezone && *s->timezone);
    BC_FUZZ_CHECK(!s->agent_id || (*s->agent_id && strlen(s->agent_id) <= 64));
    BC_FUZZ_CHECK(bc_e164_valid(s->from_number));
    BC_FUZZ_CHECK(rr->reserved >= -1 && rr->reserved <= 100000);
    BC_FUZZ_CHECK(!s->scheduled_at || (s->scheduled_at == rr->sched && bc_rfc3339_valid(rr->sched)));
    BC_FUZZ_CHECK(s->calling_hours == rr->hours);
    /* At most one expiry, each in its bounds. */
    BC_FUZZ_CHECK(!s->latest_at + !(s->latest_ms > 0) + !(s->ttl_s > 0) >= 2);
    BC_FUZZ_CHECK(!s->latest_at || bc_rfc3339_valid(s->latest_at));
    BC_FUZZ_CHECK(s->latest_ms >= 0 && s->latest_ms <= 253402300799999LL);
    BC_FUZZ_CHECK(s->ttl_s >= 0 && s->ttl_s <= 2592000);
    if (rr->hours) {
        json_t *w = bc_retell_window(rr->hours, s->timezone), *x;

        BC_FUZZ_CHECK(bc_calling_hours_check(rr->hours, why, sizeof why) == 0);
        BC_FUZZ_CHECK(w && json_array_size(json_object_get(w, "windows")) == 1);
        x = json_array_get(json_object_get(w, "windows"), 0);
        BC_FUZZ_CHECK(json_integer_value(json_object_get(x, "start")) <
                      json_integer_value(json_object_get(x, "end")));
        json_decref(w);
    }
    json_array_foreach(rr->tasks, i, t) {
        json_t *v = json_object_get(t, "variables"), *m = json_object_get(t, "metadata");

        BC_FUZZ_CHECK(bc_e164_valid(json_string_value(json_object_get(t, "to_number"))));
        BC_FUZZ_CHECK(!v || json_is_object(v));
        BC_FUZZ_CHECK(!m || json_is_object(m));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bc_batch_spec spec = { .surface = "retell" };
    bc_retell_req rr;
    json_t *in;
    char why[300] = "";

    if (!(in = bc_json_object((const char *)data, size, why, sizeof why))) {
        BC_FUZZ_CHECK(why[0] && bc_fuzz_utf8(why));
        return 0;
    }
    if (bc_retell_parse(in, &spec, &rr, why, sizeof why) == 0)
        spec_ok(&spec, &rr);
    else
        BC_FUZZ_CHECK(!rr.tasks && !rr.hours && why[0] && bc_fuzz_utf8(why));
    bc_retell_req_clear(&rr);
    json_decref(in);
    return 0;
}
