#include "bc_log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bc_log {
    char svc[32];
    bc_level level;
    pthread_mutex_t mu;
};

static const char *level_names[] = { "debug", "info", "warn", "error" };

bc_log *bc_log_new(const char *svc, bc_level level)
{
    bc_log *log = calloc(1, sizeof *log);

    if (!log)
        return NULL;
    snprintf(log->svc, sizeof log->svc, "%s", svc);
    log->level = level;
    pthread_mutex_init(&log->mu, NULL);
    return log;
}

void bc_log_free(bc_log *log)
{
    if (!log)
        return;
    pthread_mutex_destroy(&log->mu);
    free(log);
}

int bc_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void bc_log_write(bc_log *log, bc_level level, const char *event,
                  const char *fields, ...)
{
    char ts[96];
    struct timespec now;
    struct tm tm;
    json_t *obj = NULL;
    char *line = NULL;
    va_list ap;

    if (!log || level < log->level)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    obj = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", level_names[level],
                    "svc", log->svc, "event", event);
    if (obj && fields) {
        json_error_t jerr;
        json_t *extra;

        va_start(ap, fields);
        extra = json_vpack_ex(&jerr, 0, fields, ap);
        va_end(ap);
        /* update_missing: a field can never overwrite the fixed keys. */
        if (extra)
            json_object_update_missing(obj, extra);
        else
            json_object_set_new(obj, "log_error", json_string(jerr.text));
        json_decref(extra);
    }
    if (!obj)
        return;
    line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line) {
        pthread_mutex_lock(&log->mu);
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
        pthread_mutex_unlock(&log->mu);
    }
    free(line);
    json_decref(obj);
}
