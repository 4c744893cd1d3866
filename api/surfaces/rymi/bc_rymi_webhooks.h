/* bc_rymi_webhooks: Rymi's /v1/webhooks, the tenant's endpoints
 * (docs/webhooks.md) and their deliveries, which can be sent again. */
#ifndef BC_RYMI_WEBHOOKS_H
#define BC_RYMI_WEBHOOKS_H

#include "bc_rymi.h"

/* Its routes, under /v1/ (bc_rymi_surface), and its statements, for the
 * API's table (bc_api_main.c). */
extern const bc_http_route bc_rymi_webhooks_routes[];
extern const bc_pg_stmt bc_rymi_webhooks_stmts[];

#endif
