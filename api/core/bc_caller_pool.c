#include "bc_caller_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bc_caller_pool_check(json_t *pool, char *why, size_t cap)
{
    json_t *nums, *x, *v;
    size_t i, n;
    const char *keys[] = { "calls_per_second", "max_concurrent_per_number" };
    const long max[] = { 1000, 100000 };

    if (!pool || json_is_null(pool))
        return 0;
    nums = json_object_get(pool, "numbers");
    n = json_array_size(nums);
    if (!json_is_object(pool) || !json_is_array(nums) || n < 1 || n > 50) {
        snprintf(why, cap, "caller_id_pool must be {\"numbers\": [1 to 50 phone number ids or "
                           "E.164 numbers], \"calls_per_second\"?, \"max_concurrent_per_number\"?}");
        return -1;
    }
    json_array_foreach(nums, i, x) {
        const char *s = json_string_value(x);
        if (!s || !*s || strlen(s) > 64) {
            snprintf(why, cap, "caller_id_pool.numbers[%zu] must be a phone number id or an "
                               "E.164 number", i);
            return -1;
        }
        for (size_t k = 0; k < i; k++)
            if (json_equal(json_array_get(nums, k), x)) {
                snprintf(why, cap, "caller_id_pool.numbers[%zu] repeats '%s'", i, s);
                return -1;
            }
    }
    for (int k = 0; k < 2; k++) {
        v = json_object_get(pool, keys[k]);
        if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
                  json_integer_value(v) > max[k])) {
            snprintf(why, cap, "caller_id_pool.%s must be an integer between 1 and %ld", keys[k],
                     max[k]);
            return -1;
        }
    }
    return 0;
}

int bc_caller_pool_resolve(bc_pg *pg, const char *tenant, json_t *pool, int *limit,
                           char *numbers, size_t cap, char *cps, size_t cps_cap, bc_err *err)
{
    json_t *nums = json_object_get(pool, "numbers");
    json_t *per = json_object_get(pool, "max_concurrent_per_number");
    json_t *rate = json_object_get(pool, "calls_per_second");
    char *doc = json_dumps(nums, JSON_COMPACT);
    const char *p[] = { tenant, doc };
    PGresult *res = doc ? bc_pg_exec(pg, "pool_resolve", 2, p, err) : NULL;
    json_int_t n = (json_int_t)json_array_size(nums);

    free(doc);
    if (!res)
        return -1;
    if (bc_pg_val(res, 0, "missing")) {
        bc_err_set(err, "phone number '%s' of caller_id_pool not found",
                   bc_pg_val(res, 0, "missing"));
        PQclear(res);
        return 1;
    }
    snprintf(numbers, cap, "%s", bc_pg_val(res, 0, "numbers"));
    PQclear(res);
    if (json_is_integer(per) && (json_int_t)*limit > json_integer_value(per) * n)
        *limit = (int)(json_integer_value(per) * n);
    cps[0] = '\0';
    if (json_is_integer(rate))
        snprintf(cps, cps_cap, "%" JSON_INTEGER_FORMAT, json_integer_value(rate));
    return 0;
}
