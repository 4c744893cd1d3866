/* bc_log: one logger per process, JSON lines on stderr. */
#ifndef BC_LOG_H
#define BC_LOG_H

typedef enum { BC_DEBUG = 0, BC_INFO, BC_WARN, BC_ERROR } bc_level;

typedef struct bc_log bc_log;

/* svc names the process ("api", "worker", ...); level is the minimum logged. */
bc_log *bc_log_new(const char *svc, bc_level level);
void bc_log_free(bc_log *log);

/* Parses "debug", "info", "warn", "error"; -1 if unknown. */
int bc_log_level_parse(const char *s);

/* Logs one line: {"ts","level","svc","event", ...fields}. fields is a jansson
 * pack format for an object ("{s:s,s:i}") or NULL. The level is checked before
 * anything is formatted. A NULL log writes nothing. Thread-safe. */
void bc_log_write(bc_log *log, bc_level level, const char *event,
                  const char *fields, ...);

#define bc_log(log, level, event, ...) bc_log_write(log, level, event, __VA_ARGS__)

#endif
