/* bc_rymi_dnc: Rymi's /v1/dnc, the tenant's do-not-call list
 * (common/bc_dnc.h): add, import, check, list, remove. */
#ifndef BC_RYMI_DNC_H
#define BC_RYMI_DNC_H

#include "bc_rymi.h"

/* Its routes, under /v1/ (bc_rymi_surface), and its statements, for the
 * API's table (bc_api_main.c). */
extern const bc_http_route bc_rymi_dnc_routes[];
extern const bc_pg_stmt bc_rymi_dnc_stmts[];

#endif
