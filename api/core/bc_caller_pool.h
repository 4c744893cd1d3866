/* bc_caller_pool: a batch's caller-ID pool: the tenant's numbers its calls
 * are dealt over, with a per-number cap and a rate. */
#ifndef BC_CALLER_POOL_H
#define BC_CALLER_POOL_H

#include <jansson.h>
#include <stddef.h>

#include "bc_pg.h"

/* Checks an optional caller_id_pool object: {"numbers": [1-50 distinct
 * phone-number ids or E.164 numbers of the tenant], "calls_per_second"?:
 * 1-1000, "max_concurrent_per_number"?: 1-100000}. -1 with why set. */
int bc_caller_pool_check(json_t *pool, char *why, size_t cap);

/* Resolves a checked pool of tenant's: its numbers as a text[] literal in
 * numbers (cap bytes), its calls_per_second in cps ("" if none), and caps
 * *limit at max_concurrent_per_number times its numbers (the batch's slots
 * are dealt out over them). 0; 1 with err naming a number that is not the
 * tenant's; -1 with err set on failure. */
int bc_caller_pool_resolve(bc_pg *pg, const char *tenant, json_t *pool, int *limit,
                           char *numbers, size_t cap, char *cps, size_t cps_cap, bc_err *err);

#endif
