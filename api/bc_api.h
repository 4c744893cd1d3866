/* bc_api: the API process's shared state, handed to every surface. */
#ifndef BC_API_H
#define BC_API_H

#include <jansson.h>
#include <stdatomic.h>

#include "bc_http.h"
#include "bc_pg.h"
#include "bc_publisher.h"
#include "bc_svc.h"

typedef struct bc_api {
    bc_ctx *ctx;
    bc_pgpool *pool;
    bc_pgpool *wait_pool;   /* for routes that may wait (BC_HTTP_WAITS): a
                               cancel waiting for its dials never takes the
                               connection another request needs */
    bc_publisher *pub;
    const char *topic_prefix;
    const char *regions;        /* "us,eu,apac" */
    const char *carrier_token;  /* checks X-Twilio-Signature on callbacks */
    const char *public_url;     /* how the carrier reaches us, for signatures */
    const char *callback_url;   /* where the carrier's callbacks go (public_url if unset) */
    const char *agent_secret;   /* checks agents' per-call tokens (bc_agent) */
    int webhook_https_only;     /* refuse http:// webhook URLs */
    int webhook_allow_private;  /* accept loopback/private webhook hosts */
    atomic_int ready;               /* read by the probe thread */
} bc_api;

/* The caller, once authenticated. */
typedef struct bc_principal {
    char tenant_id[48];
    char key_id[48];
    int publishable;
    int concurrency;
    char default_region[16];
    char ip[48];                /* the request's client address, for the audit log */
} bc_principal;

/* The batch core's statements (bc_api_main.c); with every module's own,
 * prepared on each pool connection. */
extern const bc_pg_stmt bc_api_stmts[];

#endif
