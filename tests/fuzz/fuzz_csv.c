/* Fuzzes bc_csv_recipients (common/bc_csv.c): any bytes give recipients
 * with E.164 numbers, or an error that names a line. */
#include "bc_fuzz.h"

#include "bc_csv.h"
#include "bc_e164.h"

#define MAX_ROWS 50

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bc_err err = { "" };
    json_t *rs = bc_csv_recipients((const char *)data, size, MAX_ROWS, 1 << 16, &err), *r;
    size_t i;

    if (!rs) {
        BC_FUZZ_CHECK(err.msg[0] && bc_fuzz_utf8(err.msg));
        BC_FUZZ_CHECK(!strncmp(err.msg, "line ", 5) || size > (1 << 16));
        return 0;
    }
    BC_FUZZ_CHECK(json_is_array(rs) && json_array_size(rs) <= MAX_ROWS);
    json_array_foreach(rs, i, r) {
        json_t *from = json_object_get(r, "from_number");
        json_t *vars = json_object_get(r, "dynamic_variables"), *v;
        const char *k;

        BC_FUZZ_CHECK(bc_e164_valid(json_string_value(json_object_get(r, "to_number"))));
        BC_FUZZ_CHECK(!from || bc_e164_valid(json_string_value(from)));
        BC_FUZZ_CHECK(json_is_object(vars) && json_object_size(vars) < BC_CSV_MAX_COLUMNS);
        json_object_foreach(vars, k, v)
            BC_FUZZ_CHECK(*k && json_is_string(v));
    }
    json_decref(rs);
    return 0;
}
