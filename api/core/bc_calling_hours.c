#include "bc_calling_hours.h"

#include <stdio.h>
#include <string.h>

static int hhmm(const char *s)
{
    return s && strlen(s) == 5 && s[2] == ':' && s[0] >= '0' && s[0] <= '2' &&
           s[1] >= '0' && s[1] <= '9' && s[3] >= '0' && s[3] <= '5' && s[4] >= '0' &&
           s[4] <= '9' && (s[0] < '2' || s[1] <= '3');
}

int bc_calling_hours_check(json_t *w, char *why, size_t cap)
{
    const char *start, *end;
    json_t *days = NULL, *d;
    size_t i;

    if (!w || json_is_null(w))
        return 0;
    if (json_unpack(w, "{s:s, s:s, s?o}", "start", &start, "end", &end, "days", &days) < 0 ||
        !hhmm(start) || !hhmm(end)) {
        snprintf(why, cap, "calling_hours must be {\"start\": \"HH:MM\", \"end\": \"HH:MM\", "
                           "\"days\": [1-7]} (days optional, ISO Monday = 1)");
        return -1;
    }
    if (!strcmp(start, end)) {
        snprintf(why, cap, "calling_hours start and end must differ");
        return -1;
    }
    if (days && (!json_is_array(days) || json_array_size(days) == 0 || json_array_size(days) > 7)) {
        snprintf(why, cap, "calling_hours.days must be a non-empty array of 1-7");
        return -1;
    }
    json_array_foreach(days, i, d)
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > 7) {
            snprintf(why, cap, "calling_hours.days[%zu] must be 1 (Monday) to 7 (Sunday)", i);
            return -1;
        }
    return 0;
}
