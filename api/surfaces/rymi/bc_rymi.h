/* bc_rymi: the Rymi-style /v1 surface: queue & fan-out, call sessions,
 * agents, numbers, DNC, webhooks, publishable keys, auth and spend. One
 * module per resource (bc_rymi_sessions, _agents, _numbers, _dnc,
 * _webhooks, _keys, _account), each with its routes and statements; this
 * one holds what they share: the surface's gate, Rymi's error body, the
 * request's JSON body and paging. Each route runs through bc_surface (key,
 * rate limit, credits, Idempotency-Key, the audited write) with a
 * bc_surface_req as its handler's ud. */
#ifndef BC_RYMI_H
#define BC_RYMI_H

#include "bc_api.h"
#include "bc_surface.h"

/* One resource's routes (bc_rymi_agents_routes...) as a surface under
 * /v1/: Rymi's gate and error shape; a path under /v1/ that no route of
 * any of them takes is Rymi's 404. Every POST takes Idempotency-Key. */
bc_http_surface bc_rymi_surface(bc_api *api, const bc_http_route *routes);

/* A route flag: publishable keys are for call creation flows only, and not
 * the batch API; its route admits them (BC_SURFACE_PUBLISHABLE) to answer
 * Rymi's own 403. */
#define BC_RYMI_NO_PK BC_SURFACE_OWN

/* Rymi's error body, {"error": msg, "code": code}, is the server's own:
 * bc_http_error. */
/* Rymi's documented 402 body: {error, code, detail}. */
void bc_rymi_credit_error(bc_http_resp *resp, int status, const char *code, const char *msg);
/* A 400 whose detail names the field at fault. */
void bc_rymi_bad_field(bc_surface_req *r, const char *msg, const char *field);
/* The query's limit (default 50, max 200) and offset (default 0); -1
 * after a 400. */
int bc_rymi_paging(bc_surface_req *r, int *limit, int *offset);
/* A JSON column of a result: its value, or null. New reference. */
json_t *bc_rymi_json_col(const PGresult *res, int row, const char *col);
/* Answers a page of a list: 200 {name: arr, "total", "limit", "offset"},
 * the total from the "total" column of res's first row (0 when none).
 * Takes ownership of arr. */
void bc_rymi_page(bc_surface_req *r, const char *name, json_t *arr, const PGresult *res,
                  int limit, int offset);
/* Runs stmt with its n params p ($1 the id), a DELETE or UPDATE of one row
 * of the tenant: 200 {"id", "deleted"} if it hit one, else 404 "<what> not
 * found". */
void bc_rymi_delete(bc_surface_req *r, const char *stmt, int n, const char *const *p,
                    const char *what);

#endif
