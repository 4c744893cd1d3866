/* bc_calling_hours: a batch's calling hours, {"days", "start", "end"}, read
 * in each recipient's own time zone when its calls are released. */
#ifndef BC_CALLING_HOURS_H
#define BC_CALLING_HOURS_H

#include <jansson.h>
#include <stddef.h>

/* Checks an optional calling_hours object: {"days": [1-7...], "start":
 * "HH:MM", "end": "HH:MM"}. 0, or -1 with why set. */
int bc_calling_hours_check(json_t *w, char *why, size_t cap);

#endif
