#include "bc_json.h"

#include "bc_pg.h"

#include <stdio.h>
#include <string.h>

json_t *bc_json_object(const char *body, size_t len, char *why, size_t cap)
{
    json_error_t jerr;
    json_t *j;

    if (!len) {
        snprintf(why, cap, "request body is empty; expected a JSON object");
        return NULL;
    }
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        /* jansson quotes the text near the error byte by byte, so it can end
         * inside a UTF-8 character, and a why that is not UTF-8 cannot go
         * into a JSON error body: keep it ASCII. */
        for (char *p = jerr.text; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        snprintf(why, cap, "malformed JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        snprintf(why, cap, "request body must be a JSON object");
        json_decref(j);
        return NULL;
    }
    return j;
}

int bc_json_int(json_t *obj, const char *field, long min, long max,
                   long def, long *out, char *why, size_t cap)
{
    json_t *v = json_object_get(obj, field);

    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        snprintf(why, cap, "%s must be an integer", field);
        return -1;
    }
    if (json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(why, cap, "%s must be between %ld and %ld", field, min, max);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

int bc_json_str(json_t *obj, const char *field, int required, size_t maxlen,
                   const char **out, char *why, size_t cap)
{
    json_t *v = json_object_get(obj, field);

    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(why, cap, "%s is required", field);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        snprintf(why, cap, "%s must be a string", field);
        return -1;
    }
    if (json_string_length(v) > maxlen) {
        snprintf(why, cap, "%s is longer than %zu characters", field, maxlen);
        return -1;
    }
    if (required && json_string_length(v) == 0) {
        snprintf(why, cap, "%s must not be empty", field);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

json_t *bc_json_pg_str(const PGresult *res, int row, const char *col)
{
    const char *v = bc_pg_val(res, row, col);

    return v ? json_string(v) : json_null();
}
