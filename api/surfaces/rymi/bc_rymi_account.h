/* bc_rymi_account: Rymi's reads of the account: who is asking (/v1/auth/me),
 * what it spent (/v1/analytics/spend) and its audit log (/v1/audit-logs). */
#ifndef BC_RYMI_ACCOUNT_H
#define BC_RYMI_ACCOUNT_H

#include "bc_rymi.h"

/* Its routes, under /v1/ (bc_rymi_surface), and its statements, for the
 * API's table (bc_api_main.c). */
extern const bc_http_route bc_rymi_account_routes[];
extern const bc_pg_stmt bc_rymi_account_stmts[];

#endif
