/* bc_json: reading JSON request bodies and their fields with errors fit
 * for an API response. */
#ifndef BC_JSON_H
#define BC_JSON_H

#include <jansson.h>
#include <libpq-fe.h>

#include <stddef.h>

/* Parses len bytes as a JSON object (duplicate keys rejected). NULL if it is
 * not one; why says what is wrong in words fit for an error body. Caller
 * decrefs. */
json_t *bc_json_object(const char *buf, size_t len, char *why, size_t cap);

/* A request whose one large array is read an element at a time, so that
 * work on the first elements (a COPY) runs while the rest are parsed. */
typedef struct bc_json_items {
    const char *p, *end;  /* what is left of the array's text, inside its brackets */
    size_t n;             /* its elements, counted by the scan */
    size_t i;             /* elements read so far */
    int bad;              /* bc_json_items_next met text that is not an element */
} bc_json_items;

/* Splits the JSON object in len bytes at its member key, which must hold
 * an array: *rest gets the object with that array empty (a new reference;
 * duplicate keys rejected, as bc_json_object does), and it the array's
 * elements, unread. -1 (nothing to free) when the text is not plainly that
 * shape: the key absent, twice, escaped or not an array, nesting deeper
 * than BC_JSON_MAX_DEPTH + 8, or any text jansson refuses outside the
 * array. The caller then parses the text whole, which also gives the
 * error's words. A 0 promises nothing about the elements:
 * bc_json_items_next finds out. */
int bc_json_object_lazy(const char *buf, size_t len, const char *key, json_t **rest,
                        bc_json_items *it);

/* The next element, parsed as bc_json_object parses (duplicate keys
 * rejected), a new reference; NULL at the end, or with it->bad set when
 * the text is not a well-formed list of objects and arrays (a scalar
 * element included: the caller refuses it as the whole parse would). */
json_t *bc_json_items_next(bc_json_items *it);

/* Reads an optional integer field in [min, max]. Returns 0 and sets *out
 * (def when absent or null), or -1 with why set. */
int bc_json_int(json_t *obj, const char *field, long min, long max,
                   long def, long *out, char *why, size_t cap);

/* Reads a string field: required (-1 if absent), max length. *out borrowed;
 * NULL when optional and absent. */
int bc_json_str(json_t *obj, const char *field, int required, size_t maxlen,
                   const char **out, char *why, size_t cap);

/* Refuses a null in any of obj's fields named in fields (comma-separated):
 * the OpenAPI document types them without null, so a null is not the field
 * left out. A field absent, or obj not an object, passes. 0, or -1 with why
 * ("<where><field> must not be null; leave it out"). */
int bc_json_no_null(const json_t *obj, const char *where, const char *fields, char *why,
                    size_t cap);
/* The same for item i of an array named array: the message says
 * "<array>[<i>].<field>", written only when there is one to give (a
 * 5,000-recipient create checks 5,000 items). */
int bc_json_no_null_at(const json_t *obj, const char *array, size_t i, const char *fields,
                       char *why, size_t cap);

/* Caps on free-form JSON a client stores (a batch's and a recipient's
 * metadata and variables, post_call, an agent's config, an agent report's
 * data): it is read back in every list and webhook, so it stays small, and
 * shallow enough for any client's JSON parser (docs/api.md, "Free-form
 * JSON"). A flat object is 1 level deep. */
#define BC_JSON_MAX_DEPTH 32
#define BC_JSON_MAX_BYTES 4096           /* metadata, variables, post_call */
#define BC_JSON_MAX_CONFIG_BYTES 65536   /* an agent's config */

/* Checks that v is at most max_bytes as compact JSON and nested at most
 * BC_JSON_MAX_DEPTH levels; NULL and null pass. 0, or -1 with why naming
 * field. */
int bc_json_fits(const json_t *v, const char *field, size_t max_bytes, char *why,
                 size_t cap);

/* 1 when v surely passes bc_json_fits(v, ..., max_bytes, ...): it nests
 * no deeper than the cap and an upper bound on its compact size (every
 * string byte counted as a six-byte escape) is within max_bytes. One walk,
 * no allocation, no message: for checking many small values, calling
 * bc_json_fits only for those it cannot vouch for. 0 means "measure". */
int bc_json_surely_fits(const json_t *v, size_t max_bytes);

/* A result cell as a JSON string, or JSON null when the cell is SQL NULL or
 * res has no column col. New reference. */
json_t *bc_json_pg_str(const PGresult *res, int row, const char *col);

/* Orders an array of objects by their string member key, keeping the order
 * of those that tie (an item without it sorts first). A statement that
 * updates rows in its list's order then locks them in key order, as every
 * other such statement does: two that lock the same rows in opposite
 * orders deadlock. 0, or -1 (out of memory; arr unchanged). */
int bc_json_sort_by(json_t *arr, const char *key);

#endif
