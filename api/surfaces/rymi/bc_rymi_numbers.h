/* bc_rymi_numbers: Rymi's /v1/numbers, the tenant's caller IDs and the agents
 * bound to them. */
#ifndef BC_RYMI_NUMBERS_H
#define BC_RYMI_NUMBERS_H

#include "bc_rymi.h"

/* Its routes, under /v1/ (bc_rymi_surface), and its statements, for the
 * API's table (bc_api_main.c). */
extern const bc_http_route bc_rymi_numbers_routes[];
extern const bc_pg_stmt bc_rymi_numbers_stmts[];

#endif
