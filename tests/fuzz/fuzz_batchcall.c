/* Fuzzes bc_batchcall_parse (api/surfaces/bc_batchcall.c): a POST /batch-call body
 * becomes a batch spec only if it is one the core can store. */
#include "bc_fuzz.h"

#include "bc_batchcall.h"
#include "bc_e164.h"
#include "bc_json.h"

static void spec_ok(const bc_batch_spec *s, json_t *tasks, const char *sched)
{
    json_t *t;
    size_t i;

    BC_FUZZ_CHECK(s->recipients == tasks && json_is_array(tasks));
    BC_FUZZ_CHECK(json_array_size(tasks) >= 1 && json_array_size(tasks) <= 1000);
    BC_FUZZ_CHECK(s->name && s->agent_id && *s->agent_id && s->timezone);
    BC_FUZZ_CHECK(bc_e164_valid(s->from_number));
    BC_FUZZ_CHECK(!s->scheduled_at || (s->scheduled_at == sched && strlen(sched) < 40));
    json_array_foreach(tasks, i, t) {
        json_t *mr = json_object_get(t, "max_retries"), *v = json_object_get(t, "variables");

        BC_FUZZ_CHECK(bc_e164_valid(json_string_value(json_object_get(t, "to_number"))));
        BC_FUZZ_CHECK(!mr || (json_integer_value(mr) >= 0 && json_integer_value(mr) <= 10));
        BC_FUZZ_CHECK(!v || json_is_object(v));
        BC_FUZZ_CHECK(bc_fuzz_retry_ok(mr, json_object_get(t, "retry_policy")));
    }
    BC_FUZZ_CHECK(s->max_retries >= 0 && s->max_retries <= 10);
    BC_FUZZ_CHECK(bc_fuzz_retry_ok(NULL, s->retry_policy));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bc_batch_spec spec = { .surface = "batch-call" };
    json_t *in, *tasks = json_null();
    char why[300] = "", sched[40];

    if (!(in = bc_json_object((const char *)data, size, why, sizeof why))) {
        BC_FUZZ_CHECK(why[0] && bc_fuzz_utf8(why));
        return 0;
    }
    if (bc_batchcall_parse(in, &spec, &tasks, sched, why, sizeof why) == 0)
        spec_ok(&spec, tasks, sched);
    else
        BC_FUZZ_CHECK(!tasks && !spec.retry_policy && why[0] && bc_fuzz_utf8(why));
    json_decref(spec.retry_policy);
    json_decref(tasks);
    json_decref(in);
    return 0;
}
