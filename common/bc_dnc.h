/* bc_dnc: a tenant's do-not-call registry, in bulk: adding or checking any
 * number of numbers is one statement (an array parameter), so an import of
 * hundreds of thousands costs one round trip, not one per number. The
 * gate that applies the list is bc_policy. */
#ifndef BC_DNC_H
#define BC_DNC_H

#include <jansson.h>

#include "bc_audit.h"
#include "bc_err.h"
#include "bc_pg.h"

/* The statements of the registry, for the table of whoever calls
 * bc_dnc_add or reads hits (BC_PG_INCLUDE): "dnc_hits" takes $1 tenant
 * $2 text[] and returns the listed ones (column number). */
extern const bc_pg_stmt bc_dnc_stmts[];

/* The numbers of arr as a PostgreSQL text[] literal, for a parameter: arr's
 * elements are strings or, if field is not NULL, objects whose field is the
 * number. The strings must need no quoting (E.164 numbers, or names the
 * caller checked against a list). Returns a new string (caller frees), NULL out of memory. */
char *bc_dnc_array(json_t *arr, const char *field);

/* Lists the numbers of array (a bc_dnc_array literal) for tenant, with
 * reason (may be NULL), in one statement; *added gets how many were not
 * listed before. 0, or -1 with err set. */
int bc_dnc_add(bc_pg *pg, const char *tenant, const char *array, const char *reason,
               long long *added, bc_err *err);

/* Lists the numbers of a CSV file (len bytes of buf, the shape
 * bc_csv_recipients reads: a header naming a phone_number, to_number or
 * number column; numbers normalised to E.164; other columns ignored) for
 * who's tenant, with reason (may be NULL), in one transaction with who's
 * audit row ("dnc.import"): every number or, on any error, none. The file is parsed and sent BC_DNC_CHUNK records at a
 * time (one statement each), split at line ends, so a quoted field may not
 * hold a line break. *rows gets the records read, *added how many numbers
 * were not listed before. 0, or -1 with err set (naming the line). */
#define BC_DNC_CHUNK 100000
int bc_dnc_import_csv(bc_pg *pg, const bc_audit_actor *who, const char *buf, size_t len,
                      const char *reason, long long *rows, long long *added, bc_err *err);

#endif
