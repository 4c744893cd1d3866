/* bc_svc: what every batchcall process does the same way: config with
 * --help, the JSON logger, metrics, the health/metrics HTTP server, and a
 * stop flag raised by SIGTERM/SIGINT. */
#ifndef BC_SVC_H
#define BC_SVC_H

#include "bc_config.h"
#include "bc_http.h"
#include "bc_log.h"
#include "bc_metrics.h"

/* Flags every service shares; a process table starts with these. */
#define BC_SVC_COMMON_KEYS                                                      \
    { "log-level", "BC_LOG_LEVEL", BC_STR, "info", "debug, info, warn or error" }, \
    { "http-bind", "BC_HTTP_BIND", BC_STR, "127.0.0.1", "address to serve HTTP on" }

/* The process context, built in main() and passed down. */
typedef struct bc_ctx {
    const char *svc;
    bc_config *cfg;
    bc_log *log;
    bc_metrics *metrics;
    bc_http *http;
} bc_ctx;

/* Loads config (printing --help and returning 1 when asked), creates the
 * logger and metrics and installs the signal handlers. Returns 0, 1 for
 * "help printed, exit 0", or -1 after printing the error (exit 2). */
int bc_svc_init(bc_ctx *ctx, const char *svc, const char *about,
                const bc_config_key *keys, int argc, char **argv);
/* Starts the HTTP server (health, readiness, metrics, and handler if set). */
int bc_svc_serve(bc_ctx *ctx, int port, const bc_http_opts *extra);
/* 1 until SIGTERM or SIGINT arrives. */
int bc_svc_running(void);
/* Raises the stop flag (tests, fatal errors). */
void bc_svc_stop(void);
/* Monotonic milliseconds and microseconds. */
long long bc_now_ms(void);
long long bc_now_us(void);
/* Wall-clock milliseconds since the epoch, the clock of Kafka's message
 * timestamps. */
long long bc_wall_ms(void);
void bc_svc_free(bc_ctx *ctx);

#endif
