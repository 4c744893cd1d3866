/* bc_rymi_sessions: Rymi's calls (a session is a batch; its PSTN participants
 * are its recipients): create, list, read, events, end, pause and the queue's
 * stats and pause, and the reads of their outcomes. */
#ifndef BC_RYMI_SESSIONS_H
#define BC_RYMI_SESSIONS_H

#include "bc_batches.h"
#include "bc_rymi.h"

/* Its routes, under /v1/ (bc_rymi_surface), and its statements, for the
 * API's table (bc_api_main.c). */
extern const bc_http_route bc_rymi_sessions_routes[];
extern const bc_pg_stmt bc_rymi_sessions_stmts[];

/* Validates a POST /v1/calls/batch body (participants 0: "to" or
 * "recipients") or a POST /v1/calls body (participants 1: "participants")
 * into spec, whose strings and JSON borrow from in. The recipients are
 * normalised into a new array, *recips, which spec borrows too (caller
 * decrefs it after spec is used). 0, or -1 with why set and *recips NULL.
 * The DNC list is not checked here: bc_batch_create applies the tenant's
 * policy (spec->refuse_blocked). */
int bc_rymi_parse(json_t *in, int participants, bc_batch_spec *spec, json_t **recips,
                  char *why, size_t cap);

#endif
