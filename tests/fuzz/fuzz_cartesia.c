/* Fuzzes bc_cartesia_parse (api/surfaces/bc_cartesia.c): a create-batch body becomes
 * a batch spec only if it is one the core can store. And the create's
 * streamed read (bc_json_object_lazy, bc_json_items_next): whatever it
 * reads to the end is the document the whole parse reads. */
#include "bc_fuzz.h"

#include "bc_cartesia.h"
#include "bc_e164.h"
#include "bc_json.h"
#include "bc_validate.h"

static int parse_whole(const uint8_t *data, size_t size);

static void spec_ok(const bc_batch_spec *s, json_t *recips)
{
    json_t *r;
    size_t i;

    BC_FUZZ_CHECK(s->recipients == recips && json_is_array(recips));
    BC_FUZZ_CHECK(json_array_size(recips) >= 1 && json_array_size(recips) <= 5000);
    BC_FUZZ_CHECK(s->name && *s->name && s->agent_id && *s->agent_id);
    BC_FUZZ_CHECK(s->from_number_id && *s->from_number_id);
    BC_FUZZ_CHECK(s->limit >= 0 && s->limit <= 100000);
    BC_FUZZ_CHECK(s->ringing_timeout_s >= 5 && s->ringing_timeout_s <= 80);
    BC_FUZZ_CHECK(s->max_call_duration_min >= 1 && s->max_call_duration_min <= 480);
    BC_FUZZ_CHECK(!s->scheduled_at || bc_rfc3339_valid(s->scheduled_at));
    BC_FUZZ_CHECK(!s->region || !strcmp(s->region, "us") || !strcmp(s->region, "eu") ||
                  !strcmp(s->region, "apac"));
    json_array_foreach(recips, i, r) {
        json_t *meta = json_object_get(r, "metadata");

        BC_FUZZ_CHECK(bc_e164_valid(json_string_value(json_object_get(r, "to_number"))));
        BC_FUZZ_CHECK(json_is_null(meta) || json_is_object(meta));
        BC_FUZZ_CHECK(bc_fuzz_retry_ok(json_object_get(r, "max_retries"),
                                       json_object_get(r, "retry_policy")));
    }
    BC_FUZZ_CHECK(s->max_retries >= 0 && s->max_retries <= 10);
    BC_FUZZ_CHECK(bc_fuzz_retry_ok(NULL, s->retry_policy));
}

/* The body read as the streamed create reads it, the array put back: NULL
 * unless every step succeeded. */
static json_t *read_lazily(const char *text, size_t size)
{
    bc_json_items it;
    json_t *rest, *arr, *e;

    if (bc_json_object_lazy(text, size, "recipients", &rest, &it) < 0)
        return NULL;
    arr = json_array();
    while ((e = bc_json_items_next(&it)))
        json_array_append_new(arr, e);
    if (it.bad || json_array_size(arr) != it.n) {
        json_decref(arr);
        json_decref(rest);
        return NULL;
    }
    json_object_set_new(rest, "recipients", arr);
    return rest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *lazy = read_lazily((const char *)data, size), *whole;

    if (lazy) {
        whole = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
        BC_FUZZ_CHECK(whole && json_equal(lazy, whole));
        json_decref(whole);
        json_decref(lazy);
    }
    return parse_whole(data, size);
}

static int parse_whole(const uint8_t *data, size_t size)
{
    bc_batch_spec spec = { .surface = "cartesia" };
    json_t *body, *recips = json_null();
    char why[300] = "";

    if (!(body = bc_json_object((const char *)data, size, why, sizeof why))) {
        BC_FUZZ_CHECK(why[0] && bc_fuzz_utf8(why));
        return 0;
    }
    if (bc_cartesia_parse(body, &spec, &recips, why, sizeof why) == 0)
        spec_ok(&spec, recips);
    else
        BC_FUZZ_CHECK(!recips && !spec.retry_policy && why[0] && bc_fuzz_utf8(why));
    json_decref(spec.retry_policy);
    json_decref(recips);
    json_decref(body);
    return 0;
}
