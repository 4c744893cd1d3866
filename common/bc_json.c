#include "bc_json.h"

#include "bc_pg.h"

#include <stdint.h>
#include <stdlib.h>
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

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Just past the closing quote of the string whose opening quote is at p;
 * NULL if it never closes. */
static const char *string_end(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* One pass over the text: brackets and strings only, so it finds the key's
 * array and counts its elements; jansson judges everything else. */
int bc_json_object_lazy(const char *buf, size_t len, const char *key, json_t **rest,
                        bc_json_items *it)
{
    const char *p = skip_ws(buf, buf + len), *end = buf + len, *arr = NULL, *arr_end = NULL;
    size_t klen = strlen(key), commas = 0;
    int depth = 0, want_key = 0, in_arr = 0;
    json_error_t jerr;
    char *text;

    *rest = NULL;
    if (p == end || *p != '{')
        return -1;
    for (; p < end; p++) {
        switch (*p) {
        case '"': {
            const char *q = string_end(p, end);

            if (!q)
                return -1;
            if (depth == 1 && want_key) {
                want_key = 0;
                if ((size_t)(q - p) == klen + 2 && !memcmp(p + 1, key, klen)) {
                    const char *v = skip_ws(q, end);

                    if (arr || v == end || *v != ':')
                        return -1;
                    v = skip_ws(v + 1, end);
                    if (v == end || *v != '[')
                        return -1;
                    arr = v;
                    in_arr = 1;
                    q = v;   /* the loop goes on at the bracket */
                }
            }
            p = q - 1;
            break;
        }
        case '{':
        case '[':
            if (++depth > BC_JSON_MAX_DEPTH + 8)
                return -1;
            want_key = depth == 1;
            break;
        case '}':
        case ']':
            if (--depth == 1 && in_arr) {
                arr_end = p;
                in_arr = 0;
            }
            break;
        case ',':
            if (depth == 1)
                want_key = 1;
            else if (depth == 2 && in_arr)
                commas++;
            break;
        }
    }
    if (!arr || !arr_end)
        return -1;
    /* The object with the array's text left out. */
    if (!(text = malloc(len + 1)))
        return -1;
    size_t head = (size_t)(arr - buf) + 1, tail = (size_t)(end - arr_end);
    memcpy(text, buf, head);
    memcpy(text + head, arr_end, tail);
    *rest = json_loadb(text, head + tail, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!*rest || !json_is_object(*rest)) {
        json_decref(*rest);
        *rest = NULL;
        return -1;
    }
    it->p = arr + 1;
    it->end = arr_end;
    it->n = skip_ws(it->p, it->end) == it->end ? 0 : commas + 1;
    it->i = 0;
    it->bad = 0;
    return 0;
}

json_t *bc_json_items_next(bc_json_items *it)
{
    const char *p = skip_ws(it->p, it->end);
    json_error_t jerr;
    json_t *j;

    if (it->bad)
        return NULL;
    if (it->i > 0) {
        if (p == it->end)
            return NULL;
        if (*p != ',') {
            it->bad = 1;
            return NULL;
        }
        p = skip_ws(p + 1, it->end);
    }
    if (p == it->end) {
        it->bad = it->i > 0;   /* a trailing comma */
        return NULL;
    }
    /* An object or array ends at its bracket, so jansson reads no further
     * (a scalar would need JSON_DECODE_ANY, which reads one character
     * past it). */
    j = json_loadb(p, (size_t)(it->end - p), JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK,
                   &jerr);
    if (!j) {
        it->bad = 1;
        return NULL;
    }
    it->p = p + jerr.position;
    it->i++;
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

/* The first of fields (comma-separated) that obj holds as null, copied
 * into name; NULL when none is. */
static const char *null_field(const json_t *obj, const char *fields, char name[64])
{
    for (const char *f = fields; f && *f;) {
        size_t n = strcspn(f, ",");

        if (n < 64) {
            memcpy(name, f, n);
            name[n] = '\0';
            if (json_is_null(json_object_get(obj, name)))
                return name;
        }
        f += n + (f[n] == ',');
    }
    return NULL;
}

int bc_json_no_null(const json_t *obj, const char *where, const char *fields, char *why,
                    size_t cap)
{
    char name[64];

    if (!null_field(obj, fields, name))
        return 0;
    snprintf(why, cap, "%s%s must not be null; leave it out", where, name);
    return -1;
}

int bc_json_no_null_at(const json_t *obj, const char *array, size_t i, const char *fields,
                       char *why, size_t cap)
{
    char name[64];

    if (!null_field(obj, fields, name))
        return 0;
    snprintf(why, cap, "%s[%zu].%s must not be null; leave it out", array, i, name);
    return -1;
}

/* 1 when v nests deeper than left levels. Stops looking there, so the
 * recursion is as deep as the cap, whatever the input. */
static int deeper_than(const json_t *v, int left)
{
    const char *key;
    json_t *x;
    size_t i;

    if (!json_is_object(v) && !json_is_array(v))
        return 0;
    if (left == 0)
        return 1;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, x)
            if (deeper_than(x, left - 1))
                return 1;
    } else {
        json_array_foreach(v, i, x)
            if (deeper_than(x, left - 1))
                return 1;
    }
    return 0;
}

/* An upper bound on v's compact JSON size, or more than limit once it is
 * past it; SIZE_MAX when v nests deeper than left levels. */
static size_t size_bound(const json_t *v, int left, size_t limit)
{
    size_t n = 2, i, klen;
    const char *key;
    json_t *x;

    switch (json_typeof(v)) {
    case JSON_STRING:
        return 2 + 6 * json_string_length(v);
    case JSON_INTEGER:
        return 20;
    case JSON_REAL:
        return 32;
    case JSON_OBJECT:
    case JSON_ARRAY:
        break;
    default:
        return 5;
    }
    if (left == 0)
        return SIZE_MAX;
    if (json_is_object(v)) {
        json_object_keylen_foreach((json_t *)v, key, klen, x) {
            size_t e = size_bound(x, left - 1, limit);

            if (e == SIZE_MAX)
                return SIZE_MAX;
            n += 2 + 6 * klen + 2 + e;   /* "key":value, */
            if (n > limit)
                return n;
        }
    } else {
        json_array_foreach(v, i, x) {
            size_t e = size_bound(x, left - 1, limit);

            if (e == SIZE_MAX)
                return SIZE_MAX;
            n += e + 1;
            if (n > limit)
                return n;
        }
    }
    return n;
}

int bc_json_surely_fits(const json_t *v, size_t max_bytes)
{
    return !v || json_is_null(v) || size_bound(v, BC_JSON_MAX_DEPTH, max_bytes) <= max_bytes;
}

int bc_json_fits(const json_t *v, const char *field, size_t max_bytes, char *why,
                 size_t cap)
{
    if (bc_json_surely_fits(v, max_bytes))
        return 0;
    /* Depth first: it bounds the work of measuring the size. */
    if (deeper_than(v, BC_JSON_MAX_DEPTH)) {
        snprintf(why, cap, "%s is nested deeper than %d levels", field, BC_JSON_MAX_DEPTH);
        return -1;
    }
    if (json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) > max_bytes) {
        snprintf(why, cap, "%s is larger than %zu bytes as JSON", field, max_bytes);
        return -1;
    }
    return 0;
}

json_t *bc_json_pg_str(const PGresult *res, int row, const char *col)
{
    const char *v = bc_pg_val(res, row, col);

    return v ? json_string(v) : json_null();
}

typedef struct sort_item {
    json_t *v;
    const char *k;
    size_t i;
} sort_item;

static int sort_item_cmp(const void *a, const void *b)
{
    const sort_item *x = a, *y = b;
    int c = strcmp(x->k, y->k);

    return c ? c : (x->i > y->i) - (x->i < y->i);
}

int bc_json_sort_by(json_t *arr, const char *key)
{
    size_t n = json_array_size(arr), i;
    sort_item *items;
    json_t *v;

    if (n < 2)
        return 0;
    if (!(items = malloc(n * sizeof *items)))
        return -1;
    json_array_foreach(arr, i, v) {
        const char *k = json_string_value(json_object_get(v, key));

        items[i] = (sort_item){ json_incref(v), k ? k : "", i };
    }
    qsort(items, n, sizeof *items, sort_item_cmp);
    json_array_clear(arr);
    for (i = 0; i < n; i++)
        json_array_append_new(arr, items[i].v);
    free(items);
    return 0;
}
