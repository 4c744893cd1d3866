/* bc_rymi_keys: Rymi's API keys: publishable keys (list, create, revoke) and
 * the rotation of the secret key that asks. */
#ifndef BC_RYMI_KEYS_H
#define BC_RYMI_KEYS_H

#include "bc_rymi.h"

/* Its routes, under /v1/ (bc_rymi_surface), and its statements, for the
 * API's table (bc_api_main.c). */
extern const bc_http_route bc_rymi_keys_routes[];
extern const bc_pg_stmt bc_rymi_keys_stmts[];

#endif
