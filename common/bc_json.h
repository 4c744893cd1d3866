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

/* Reads an optional integer field in [min, max]. Returns 0 and sets *out
 * (def when absent or null), or -1 with why set. */
int bc_json_int(json_t *obj, const char *field, long min, long max,
                   long def, long *out, char *why, size_t cap);

/* Reads a string field: required (-1 if absent), max length. *out borrowed;
 * NULL when optional and absent. */
int bc_json_str(json_t *obj, const char *field, int required, size_t maxlen,
                   const char **out, char *why, size_t cap);

/* A result cell as a JSON string, or JSON null when the cell is SQL NULL or
 * res has no column col. New reference. */
json_t *bc_json_pg_str(const PGresult *res, int row, const char *col);

#endif
