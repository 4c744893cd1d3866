#include "bc_retry.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bc_json.h"

static const char *const outcomes[] = { "busy", "no_answer", "failed", "voicemail", NULL };

static int present(json_t *v)
{
    return v && !json_is_null(v);
}

static int whole(json_t *v, long long lo, long long hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static int parse_on(json_t *v, const char *where, json_t *policy, char *why, size_t cap)
{
    json_t *list, *x;
    size_t i;

    if (!json_is_array(v)) {
        snprintf(why, cap, "%sretry_on must be an array of busy, no_answer, failed, voicemail",
                 where);
        return -1;
    }
    list = json_array();
    /* Kept in one order whatever the request's, repeats dropped. */
    for (int k = 0; outcomes[k]; k++) {
        json_array_foreach(v, i, x)
            if (json_is_string(x) && !strcmp(json_string_value(x), outcomes[k])) {
                json_array_append_new(list, json_string(outcomes[k]));
                break;
            }
    }
    json_array_foreach(v, i, x) {
        int known = 0;

        for (int k = 0; outcomes[k] && json_is_string(x); k++)
            known |= !strcmp(json_string_value(x), outcomes[k]);
        if (!known) {
            snprintf(why, cap, "%sretry_on[%zu] must be one of busy, no_answer, failed, "
                               "voicemail", where, i);
            json_decref(list);
            return -1;
        }
    }
    json_object_set_new(policy, "retry_on", list);
    return 0;
}

static int parse_intervals(json_t *v, const char *where, json_t *policy, char *why, size_t cap)
{
    json_t *x;
    size_t i;

    if (!json_is_array(v) || json_array_size(v) < 1 ||
        json_array_size(v) > BC_RETRY_MAX_INTERVALS) {
        snprintf(why, cap, "%sretry_intervals_s must be an array of 1 to %d waits in seconds",
                 where, BC_RETRY_MAX_INTERVALS);
        return -1;
    }
    json_array_foreach(v, i, x)
        if (!whole(x, 1, BC_RETRY_MAX_DELAY_S)) {
            snprintf(why, cap, "%sretry_intervals_s[%zu] must be an integer between 1 and %d",
                     where, i, BC_RETRY_MAX_DELAY_S);
            return -1;
        }
    json_object_set_new(policy, "retry_intervals_s", json_deep_copy(v));
    return 0;
}

static int parse_backoff(json_t *v, const char *where, json_t *policy, char *why, size_t cap)
{
    json_t *base = NULL, *factor = NULL, *max = NULL;
    double f = 2.0;
    long long m = BC_RETRY_MAX_DELAY_S;

    if (!json_is_object(v)) {
        snprintf(why, cap, "%sretry_backoff must be an object {base_s, factor, max_s}", where);
        return -1;
    }
    /* o, not I or F: each field's type is checked below with its range, in
     * its own words; ! refuses any other field. */
    if (json_unpack(v, "{s?o, s?o, s?o !}", "base_s", &base, "factor", &factor,
                    "max_s", &max) < 0) {
        snprintf(why, cap, "%sretry_backoff takes only base_s, factor and max_s", where);
        return -1;
    }
    if (present(factor) + present(max) != (factor != NULL) + (max != NULL)) {
        snprintf(why, cap, "%sretry_backoff.%s must not be null; leave it out", where,
                 factor && !present(factor) ? "factor" : "max_s");
        return -1;
    }
    if (!whole(base, 1, BC_RETRY_MAX_DELAY_S)) {
        snprintf(why, cap, "%sretry_backoff.base_s must be an integer between 1 and %d", where,
                 BC_RETRY_MAX_DELAY_S);
        return -1;
    }
    if (present(factor)) {
        f = json_number_value(factor);
        if (!json_is_number(factor) || !(f >= 1.0 && f <= BC_RETRY_MAX_FACTOR)) {
            snprintf(why, cap, "%sretry_backoff.factor must be a number between 1 and %d", where,
                     BC_RETRY_MAX_FACTOR);
            return -1;
        }
    }
    if (present(max)) {
        if (!whole(max, json_integer_value(base), BC_RETRY_MAX_DELAY_S)) {
            snprintf(why, cap, "%sretry_backoff.max_s must be an integer between base_s and %d",
                     where, BC_RETRY_MAX_DELAY_S);
            return -1;
        }
        m = json_integer_value(max);
    }
    json_object_set_new(policy, "retry_backoff",
                        json_pack("{s:I,s:f,s:I}", "base_s", json_integer_value(base),
                                  "factor", f, "max_s", m));
    return 0;
}

int bc_retry_given(const json_t *obj)
{
    return json_object_get(obj, "max_retries") || json_object_get(obj, "retry_on") ||
           json_object_get(obj, "retry_intervals_s") || json_object_get(obj, "retry_backoff");
}

int bc_retry_parse(json_t *obj, const char *where, int *max_retries, json_t **policy,
                   char *why, size_t cap)
{
    json_t *mr = json_object_get(obj, "max_retries"), *on = json_object_get(obj, "retry_on");
    json_t *iv = json_object_get(obj, "retry_intervals_s");
    json_t *bo = json_object_get(obj, "retry_backoff");
    json_t *p;

    *max_retries = -1;
    *policy = NULL;
    if (!where)
        where = "";
    if (bc_json_no_null(obj, where, "max_retries,retry_on,retry_intervals_s,retry_backoff", why,
                        cap) < 0)
        return -1;
    if (present(mr)) {
        if (!whole(mr, 0, BC_RETRY_MAX_RETRIES)) {
            snprintf(why, cap, "%smax_retries must be an integer between 0 and %d", where,
                     BC_RETRY_MAX_RETRIES);
            return -1;
        }
        *max_retries = (int)json_integer_value(mr);
    }
    if (present(iv) && present(bo)) {
        snprintf(why, cap, "%sretry_intervals_s and retry_backoff cannot both be given", where);
        return -1;
    }
    if (!present(on) && !present(iv) && !present(bo))
        return 0;
    p = json_object();
    if ((present(on) && parse_on(on, where, p, why, cap) < 0) ||
        (present(iv) && parse_intervals(iv, where, p, why, cap) < 0) ||
        (present(bo) && parse_backoff(bo, where, p, why, cap) < 0)) {
        json_decref(p);
        return -1;
    }
    *policy = p;
    return 0;
}

const char *bc_retry_outcome(const char *status, const char *answered_by)
{
    if (!status)
        return "failed";
    if (!strcmp(status, "completed"))
        return answered_by && !strncmp(answered_by, "machine", 7) ? "voicemail" : "completed";
    if (!strcmp(status, "busy"))
        return "busy";
    if (!strcmp(status, "no-answer"))
        return "no_answer";
    if (!strcmp(status, "canceled"))
        return "canceled";
    return "failed";
}

double bc_retry_delay_s(const json_t *policy, int k)
{
    json_t *iv = json_object_get(policy, "retry_intervals_s");
    json_t *bo = json_object_get(policy, "retry_backoff");

    if (k < 1)
        k = 1;
    if (json_is_array(iv) && json_array_size(iv) > 0) {
        size_t n = json_array_size(iv), i = (size_t)k < n ? (size_t)k - 1 : n - 1;
        return (double)json_integer_value(json_array_get(iv, i));
    }
    if (json_is_object(bo)) {
        double d = json_number_value(json_object_get(bo, "base_s")) *
                   pow(json_number_value(json_object_get(bo, "factor")), k - 1);
        double m = json_number_value(json_object_get(bo, "max_s"));
        return d < m ? d : m;
    }
    return -1;
}
