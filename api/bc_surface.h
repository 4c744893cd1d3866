/* bc_surface: helpers every API surface shares for reading requests. */
#ifndef BC_SURFACE_H
#define BC_SURFACE_H

#include <jansson.h>

#include "bc_http.h"

/* Parses the body as a JSON object. NULL if it is not one; why says what
 * is wrong in words fit for an error body. Caller decrefs. */
json_t *bc_surface_body(const bc_http_req *req, char *why, size_t cap);

/* Reads an optional integer field in [min, max]. Returns 0 and sets *out
 * (def when absent or null), or -1 with why set. */
int bc_surface_int(json_t *obj, const char *field, long min, long max,
                   long def, long *out, char *why, size_t cap);

/* Reads a string field: required (-1 if absent), max length. *out borrowed;
 * NULL when optional and absent. */
int bc_surface_str(json_t *obj, const char *field, int required, size_t maxlen,
                   const char **out, char *why, size_t cap);

#endif
