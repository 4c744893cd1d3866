#include "bc_validate.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bc_agent.h"
#include "bc_json.h"
#include "bc_retry.h"

int bc_rfc3339_valid(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm) */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i;

    if (!s)
        return 0;
    for (i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i])
                            : toupper((unsigned char)s[i]) != shape[i])
            return 0;
    }
    if (s[i] == '.') {
        i++;
        if (!isdigit((unsigned char)s[i]))
            return 0;
        while (isdigit((unsigned char)s[i]))
            i++;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && !s[i + 1])
        return 1;
    return (s[i] == '+' || s[i] == '-') && isdigit((unsigned char)s[i + 1]) &&
           isdigit((unsigned char)s[i + 2]) && s[i + 3] == ':' &&
           isdigit((unsigned char)s[i + 4]) && isdigit((unsigned char)s[i + 5]) &&
           !s[i + 6];
}

long long bc_rfc3339_ms(const char *s)
{
    struct tm tm = { 0 };
    const char *end;

    if (!s || !(end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) || *end)
        return -1;
    return (long long)timegm(&tm) * 1000;
}

#define MAX_TTL_S 2592000   /* 30 days */
#define MAX_LATEST_MS 253402300799999.0   /* 9999-12-31T23:59:59.999Z */

int bc_expiry_parse(json_t *in, int ms, bc_batch_spec *spec, char *why, size_t cap)
{
    json_t *la = json_object_get(in, "latest_at"), *ttl = json_object_get(in, "ttl");
    json_t *lt = ms ? json_object_get(in, "latest_timestamp") : NULL;
    int n = (la && !json_is_null(la)) + (ttl && !json_is_null(ttl)) + (lt && !json_is_null(lt));

    spec->latest_at = NULL;
    spec->latest_ms = 0;
    spec->ttl_s = 0;
    if (bc_json_no_null(in, "", ms ? "latest_at,ttl,latest_timestamp" : "latest_at,ttl", why,
                        cap) < 0)
        return -1;
    if (n > 1) {
        snprintf(why, cap, ms ? "give at most one of latest_at, latest_timestamp and ttl"
                              : "give latest_at or ttl, not both");
        return -1;
    }
    if (la && !json_is_null(la)) {
        if (!json_is_string(la) || json_string_length(la) > 64 ||
            !bc_rfc3339_valid(json_string_value(la))) {
            snprintf(why, cap, "latest_at must be an RFC3339 timestamp with a timezone offset, "
                               "e.g. 2026-06-15T18:00:00Z");
            return -1;
        }
        spec->latest_at = json_string_value(la);
    }
    if (ttl && !json_is_null(ttl)) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
            json_integer_value(ttl) > MAX_TTL_S) {
            snprintf(why, cap, "ttl must be a whole number of seconds between 1 and %d (30 days)",
                     MAX_TTL_S);
            return -1;
        }
        spec->ttl_s = (long)json_integer_value(ttl);
    }
    if (lt && !json_is_null(lt)) {
        double v = json_is_integer(lt) ? (double)json_integer_value(lt)
                 : json_is_real(lt) ? json_real_value(lt) : -1;

        if (!(v >= 1 && v <= MAX_LATEST_MS)) {
            snprintf(why, cap, "latest_timestamp must be a Unix timestamp in milliseconds");
            return -1;
        }
        spec->latest_ms = (long long)v;
    }
    return 0;
}

int bc_recipient_timezone(json_t *src, json_t *dst, const char *where, size_t i,
                          char *why, size_t cap)
{
    json_t *tz = json_object_get(src, "timezone");
    const char *s;
    size_t n;

    if (json_is_null(tz)) {
        snprintf(why, cap, "%s[%zu].timezone must not be null; leave it out", where, i);
        return -1;
    }
    if (!tz)
        return 0;
    s = json_string_value(tz);
    n = s ? strlen(s) : 0;
    if (!s || n == 0 || n > 64 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789/_+-") != n) {
        snprintf(why, cap, "%s[%zu].timezone must be an IANA time zone name such as "
                           "America/New_York", where, i);
        return -1;
    }
    json_object_set(dst, "timezone", tz);
    return 0;
}

int bc_recipient_retry(json_t *src, json_t *dst, const char *where, size_t i, char *why,
                       size_t cap)
{
    char at[48];
    json_t *policy;
    int mr;

    /* Most recipients carry none: skip writing the path for the messages. */
    if (!bc_retry_given(src))
        return 0;
    snprintf(at, sizeof at, "%s[%zu].", where, i);
    if (bc_retry_parse(src, at, &mr, &policy, why, cap) < 0)
        return -1;
    if (mr >= 0)
        json_object_set_new(dst, "max_retries", json_integer(mr));
    if (policy)
        json_object_set_new(dst, "retry_policy", policy);
    return 0;
}

int bc_agent_leg_parse(json_t *in, bc_batch_spec *spec, char *why, size_t cap)
{
    json_t *rec = json_object_get(in, "record");

    if (rec && !json_is_boolean(rec)) {
        snprintf(why, cap, "record must be a boolean");
        return -1;
    }
    if (bc_agent_voicemail_check(json_object_get(in, "voicemail"), why, cap) < 0)
        return -1;
    spec->voicemail = json_object_get(in, "voicemail");
    spec->record = json_is_boolean(rec) ? (json_is_true(rec) ? 2 : 1) : 0;
    return 0;
}
