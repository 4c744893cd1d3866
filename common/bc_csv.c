#include "bc_csv.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bc_e164.h"

#define MAX_NAME 128   /* bytes of a column name */

/* The reader: one record at a time, its fields NUL-terminated in buf at
 * off[0..n), so a record costs no allocation once buf has grown. */
typedef struct csv {
    const char *p, *end;
    size_t line;                     /* line p is on, from 1 */
    size_t start;                    /* line the last record started on */
    char *buf;
    size_t len, cap;
    size_t off[BC_CSV_MAX_COLUMNS];
    size_t n;                        /* fields in the record; only the first
                                        BC_CSV_MAX_COLUMNS are kept */
} csv;

static int put(csv *c, char ch, bc_err *err)
{
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        char *b = realloc(c->buf, cap);

        if (!b) {
            bc_err_set(err, "line %zu: out of memory", c->line);
            return -1;
        }
        c->buf = b;
        c->cap = cap;
    }
    c->buf[c->len++] = ch;
    return 0;
}

/* Consumes a line break at p, if there is one: CRLF, LF or a lone CR. */
static int line_end(csv *c)
{
    if (c->p >= c->end || (*c->p != '\r' && *c->p != '\n'))
        return 0;
    if (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')
        c->p++;
    c->p++;
    c->line++;
    return 1;
}

static int quoted_field(csv *c, bc_err *err)
{
    size_t open = c->line;

    c->p++;
    for (;;) {
        char ch;

        if (c->p >= c->end) {
            bc_err_set(err, "line %zu: a quoted field is never closed", open);
            return -1;
        }
        ch = *c->p++;
        if (ch == '"') {
            if (c->p < c->end && *c->p == '"')
                c->p++;
            else
                break;
        } else if (ch == '\n' || (ch == '\r' && (c->p >= c->end || *c->p != '\n'))) {
            c->line++;
        } else if (ch == '\0') {
            bc_err_set(err, "line %zu: NUL byte in a field", c->line);
            return -1;
        }
        if (put(c, ch, err) < 0)
            return -1;
    }
    if (c->p < c->end && *c->p != ',' && *c->p != '\r' && *c->p != '\n') {
        bc_err_set(err, "line %zu: text after a closing quote; inside a quoted field "
                   "write a quote as \"\"", c->line);
        return -1;
    }
    return 0;
}

static int plain_field(csv *c, bc_err *err)
{
    for (; c->p < c->end && *c->p != ',' && *c->p != '\r' && *c->p != '\n'; c->p++) {
        if (*c->p == '"') {
            bc_err_set(err, "line %zu: a quote inside an unquoted field; quote the "
                       "whole field and write the quote as \"\"", c->line);
            return -1;
        }
        if (*c->p == '\0') {
            bc_err_set(err, "line %zu: NUL byte in a field", c->line);
            return -1;
        }
        if (put(c, *c->p, err) < 0)
            return -1;
    }
    return 0;
}

/* Reads the next record, skipping blank lines. 1, 0 at the end of the
 * input, or -1 with err set. */
static int record(csv *c, bc_err *err)
{
    while (line_end(c))
        ;
    c->n = 0;
    c->len = 0;
    c->start = c->line;
    if (c->p >= c->end)
        return 0;
    for (;;) {
        if (c->n < BC_CSV_MAX_COLUMNS)
            c->off[c->n] = c->len;
        c->n++;
        if ((c->p < c->end && *c->p == '"' ? quoted_field(c, err) : plain_field(c, err)) < 0 ||
            put(c, '\0', err) < 0)
            return -1;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        line_end(c);
        return 1;
    }
}

static const char *field(const csv *c, size_t i)
{
    return i < c->n && i < BC_CSV_MAX_COLUMNS ? c->buf + c->off[i] : "";
}

static int is_number_column(const char *name)
{
    return !strcasecmp(name, "phone_number") || !strcasecmp(name, "to_number") ||
           !strcasecmp(name, "number");
}

/* The header's column names, trimmed, as a JSON array of strings. */
static json_t *header(csv *c, size_t *num, size_t *from, bc_err *err)
{
    json_t *names = json_array();
    size_t i, j;

    *num = *from = (size_t)-1;
    if (c->n > BC_CSV_MAX_COLUMNS) {
        bc_err_set(err, "line %zu: more than %d columns", c->start, BC_CSV_MAX_COLUMNS);
        goto fail;
    }
    for (i = 0; i < c->n; i++) {
        const char *s = field(c, i), *e;
        json_t *name;

        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e == s) {
            bc_err_set(err, "line %zu: column %zu has no name", c->start, i + 1);
            goto fail;
        }
        if (e - s > MAX_NAME) {
            bc_err_set(err, "line %zu: the name of column %zu is longer than %d bytes",
                       c->start, i + 1, MAX_NAME);
            goto fail;
        }
        if (!(name = json_stringn(s, (size_t)(e - s)))) {
            bc_err_set(err, "line %zu: the name of column %zu is not valid UTF-8",
                       c->start, i + 1);
            goto fail;
        }
        json_array_append_new(names, name);
        s = json_string_value(name);
        for (j = 0; j < i; j++)
            if (!strcmp(s, json_string_value(json_array_get(names, j)))) {
                bc_err_set(err, "line %zu: column '%s' appears twice", c->start, s);
                goto fail;
            }
        if (is_number_column(s)) {
            if (*num != (size_t)-1) {
                bc_err_set(err, "line %zu: more than one number column ('%s' and '%s')",
                           c->start, json_string_value(json_array_get(names, *num)), s);
                goto fail;
            }
            *num = i;
        } else if (!strcasecmp(s, "from_number")) {
            if (*from != (size_t)-1) {
                bc_err_set(err, "line %zu: column '%s' appears twice", c->start, s);
                goto fail;
            }
            *from = i;
        }
    }
    if (*num == (size_t)-1) {
        bc_err_set(err, "line %zu: no number column; name one phone_number, to_number "
                   "or number", c->start);
        goto fail;
    }
    return names;
fail:
    json_decref(names);
    return NULL;
}

/* Normalises column i's number; 0 with out[0] = '\0' when the field is
 * empty and may be, or -1 with err set. */
static int number(const csv *c, size_t i, const char *name, int required,
                  char out[BC_E164_MAX], bc_err *err)
{
    const char *s = field(c, i);

    out[0] = '\0';
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s && !required)
        return 0;
    if (!*s) {
        bc_err_set(err, "line %zu: %s is empty", c->start, name);
        return -1;
    }
    if (bc_e164_normalize(s, out) < 0) {
        bc_err_set(err, "line %zu: %s is not a phone number in E.164 form, such as "
                   "+14155559876", c->start, name);
        return -1;
    }
    return 0;
}

static json_t *row(const csv *c, json_t *names, size_t num, size_t from, bc_err *err)
{
    char to[BC_E164_MAX], caller[BC_E164_MAX];
    json_t *vars, *r;
    size_t i;

    if (number(c, num, json_string_value(json_array_get(names, num)), 1, to, err) < 0 ||
        (from != (size_t)-1 &&
         number(c, from, json_string_value(json_array_get(names, from)), 0, caller, err) < 0))
        return NULL;
    vars = json_object();
    for (i = 0; i < json_array_size(names); i++) {
        json_t *v;

        if (i == num || i == from)
            continue;
        if (!(v = json_string(field(c, i)))) {
            bc_err_set(err, "line %zu: column '%s' is not valid UTF-8", c->start,
                       json_string_value(json_array_get(names, i)));
            json_decref(vars);
            return NULL;
        }
        json_object_set_new(vars, json_string_value(json_array_get(names, i)), v);
    }
    r = json_pack("{s:s,s:o}", "to_number", to, "dynamic_variables", vars);
    if (r && from != (size_t)-1 && caller[0])
        json_object_set_new(r, "from_number", json_string(caller));
    if (!r)
        bc_err_set(err, "line %zu: out of memory", c->start);
    return r;
}

json_t *bc_csv_recipients(const char *buf, size_t len, size_t max_rows,
                          size_t max_bytes, bc_err *err)
{
    csv c = { .p = buf, .end = buf + len, .line = 1 };
    json_t *names = NULL, *out = NULL, *r;
    size_t num, from, rows = 0;
    int rc;

    if (len > max_bytes) {
        bc_err_set(err, "the CSV is %zu bytes, more than the %zu allowed", len, max_bytes);
        goto out;
    }
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
        c.p += 3;
    if ((rc = record(&c, err)) <= 0) {
        if (rc == 0)
            bc_err_set(err, "line %zu: a header row naming the columns is required", c.line);
        goto out;
    }
    if (!(names = header(&c, &num, &from, err)))
        goto out;
    out = json_array();
    while ((rc = record(&c, err)) > 0) {
        if (++rows > max_rows) {
            bc_err_set(err, "line %zu: more than %zu recipients", c.start, max_rows);
            goto fail;
        }
        if (c.n > json_array_size(names)) {
            bc_err_set(err, "line %zu: %zu fields, but the header has %zu", c.start, c.n,
                       json_array_size(names));
            goto fail;
        }
        if (!(r = row(&c, names, num, from, err)))
            goto fail;
        json_array_append_new(out, r);
    }
    if (rc < 0)
        goto fail;
    goto out;
fail:
    json_decref(out);
    out = NULL;
out:
    json_decref(names);
    free(c.buf);
    return out;
}
