#include "bc_svc.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The only process-wide mutable state: the stop flag a signal raises. */
static volatile sig_atomic_t run = 1;

static void on_signal(int sig)
{
    (void)sig;
    run = 0;
}

int bc_svc_running(void) { return run; }
void bc_svc_stop(void) { run = 0; }

long long bc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long bc_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long bc_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int bc_svc_init(bc_ctx *ctx, const char *svc, const char *about,
                const bc_config_key *keys, int argc, char **argv)
{
    bc_err err = { "" };
    int help = 0, level;
    struct sigaction sa;

    memset(ctx, 0, sizeof *ctx);
    ctx->svc = svc;
    ctx->cfg = bc_config_load(keys, argc, argv, &help, &err);
    if (help) {
        const char *base = strrchr(argv[0], '/');

        if (help == 2)
            bc_config_markdown(keys, base ? base + 1 : argv[0], about, stdout);
        else
            bc_config_usage(keys, argv[0], about, stdout);
        bc_config_free(ctx->cfg);
        ctx->cfg = NULL;
        return 1;
    }
    if (!ctx->cfg) {
        fprintf(stderr, "%s: %s (see --help)\n", argv[0], err.msg);
        return -1;
    }
    level = bc_log_level_parse(bc_config_str(ctx->cfg, "log-level"));
    if (level < 0) {
        fprintf(stderr, "%s: BC_LOG_LEVEL (--log-level): unknown level '%s'\n",
                argv[0], bc_config_str(ctx->cfg, "log-level"));
        return -1;
    }
    ctx->log = bc_log_new(svc, (bc_level)level);
    ctx->metrics = bc_metrics_new();
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* A peer closing a socket must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int bc_svc_serve(bc_ctx *ctx, int port, const bc_http_opts *extra)
{
    bc_http_opts o = { 0 };
    bc_err err = { "" };

    if (extra)
        o = *extra;
    o.bind = bc_config_str(ctx->cfg, "http-bind");
    o.port = port;
    o.metrics = ctx->metrics;
    ctx->http = bc_http_start(&o, &err);
    if (!ctx->http) {
        bc_log(ctx->log, BC_ERROR, "http.start_failed", "{s:s}", "error", err.msg);
        return -1;
    }
    bc_log(ctx->log, BC_INFO, "http.listening", "{s:s,s:i}", "bind", o.bind,
           "port", bc_http_port(ctx->http));
    return 0;
}

void bc_svc_free(bc_ctx *ctx)
{
    bc_http_stop(ctx->http);
    ctx->http = NULL;
    bc_metrics_free(ctx->metrics);
    bc_log_free(ctx->log);
    bc_config_free(ctx->cfg);
}
