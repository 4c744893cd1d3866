/* bc_pg: a PostgreSQL connection with named statements prepared once per
 * connection, reconnecting (and re-preparing) after the server went away. */
#ifndef BC_PG_H
#define BC_PG_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>

#include "bc_err.h"

typedef struct bc_pg_stmt {
    const char *name;
    const char *sql;
} bc_pg_stmt;

/* An entry that prepares another table's statements too: the statements
 * a common module runs live in its .c (bc_dnc_stmts), and each process
 * that uses the module includes them in its own table. (The table rides
 * in sql, with no name; a third field would cost every two-field entry a
 * missing-initializer warning.) */
#define BC_PG_INCLUDE(table) { NULL, (const char *)(const void *)(table) }

typedef struct bc_pg bc_pg;
typedef struct bc_pgpool bc_pgpool;

/* Connects and prepares every statement of stmts (ends with a zeroed entry;
 * may be NULL; must outlive the connection), and of the tables it includes
 * (BC_PG_INCLUDE). An entry whose name is "" is a session setting
 * ("SET ..."), run on every (re)connect. NULL with err set on failure. */
bc_pg *bc_pg_connect(const char *dsn, const bc_pg_stmt *stmts, bc_err *err);
void bc_pg_free(bc_pg *pg);

/* Runs a prepared statement with nparams text parameters (NULL is SQL NULL).
 * Returns the result on success (caller PQclear()s it), NULL with err set
 * otherwise; bc_pg_sqlstate() then says why ("23505"...). Reconnects first
 * if the connection was lost outside a transaction. */
PGresult *bc_pg_exec(bc_pg *pg, const char *stmt, int nparams,
                     const char *const *params, bc_err *err);
/* bc_pg_exec for a statement whose rows are not wanted: 0, or -1 with err
 * set. */
int bc_pg_run(bc_pg *pg, const char *stmt, int nparams, const char *const *params,
              bc_err *err);
/* Runs constant SQL text with parameters, unprepared (tools, migrations). */
PGresult *bc_pg_exec_sql(bc_pg *pg, const char *sql, int nparams,
                         const char *const *params, bc_err *err);

/* A COPY ... FROM STDIN in text format, written field by field and sent
 * in pieces as rows are made, so the server parses and indexes the first
 * rows while the caller formats the next (the two run on two cores). The
 * first failure sticks: later calls do nothing, bc_pg_copy_end reports it.
 *
 *   bc_pg_copy *c = bc_pg_copy_begin(pg, "COPY t (a, b) FROM STDIN", err);
 *   for (...) { bc_pg_copy_str(c, a); bc_pg_copy_int(c, b); bc_pg_copy_row(c); }
 *   rc = bc_pg_copy_end(c, err);       (0, or -1 with err set)
 */
typedef struct bc_pg_copy bc_pg_copy;

/* NULL with err set if the statement did not start. */
bc_pg_copy *bc_pg_copy_begin(bc_pg *pg, const char *copy_sql, bc_err *err);
/* The row's next field: text (NULL writes SQL NULL), escaped as the format
 * needs (backslash, tab, newline, carriage return); an integer; a JSON
 * value written compact (NULL or JSON null write SQL NULL). */
void bc_pg_copy_str(bc_pg_copy *c, const char *s);
void bc_pg_copy_int(bc_pg_copy *c, long long v);
void bc_pg_copy_json(bc_pg_copy *c, const json_t *j);
/* Fails the COPY on purpose (why is the server's error text): nothing of
 * it will be stored, and bc_pg_copy_end reports why. */
void bc_pg_copy_abort(bc_pg_copy *c, const char *why);
/* Ends the row; sends what is buffered once it is large enough. */
void bc_pg_copy_row(bc_pg_copy *c);
/* Sends the rest and ends the COPY; frees c. After a failure the COPY is
 * ended with an error, so nothing of it is stored. */
int bc_pg_copy_end(bc_pg_copy *c, bc_err *err);

/* Transactions; each returns 0 or -1. rollback never fails loudly. */
int bc_pg_begin(bc_pg *pg, bc_err *err);
/* A read-only transaction whose statements all see one snapshot
 * (REPEATABLE READ): several reads that must agree with each other. End it
 * with bc_pg_commit. */
int bc_pg_begin_snapshot(bc_pg *pg, bc_err *err);
/* 1 inside a transaction begun here. */
int bc_pg_in_txn(const bc_pg *pg);
int bc_pg_commit(bc_pg *pg, bc_err *err);
void bc_pg_rollback(bc_pg *pg);

/* SQLSTATE of the last failed statement, "" if none. */
const char *bc_pg_sqlstate(const bc_pg *pg);
/* 1 if the connection is up: the owning thread's question (it reads the
 * connection, which that thread may be replacing). */
int bc_pg_alive(bc_pg *pg);
/* 1 if the connection was up when its owning thread last used it: safe to
 * ask from any thread (readiness probes) while pg is not freed. */
int bc_pg_up(const bc_pg *pg);
PGconn *bc_pg_conn(bc_pg *pg);
/* The plan of each named statement prepared on pg, as the session's own
 * settings make it (with plan_cache_mode = force_generic_plan, the one
 * plan every execution uses), for the tests that keep a statement's plan
 * from drifting: an object of statement name -> EXPLAIN's text lines.
 * NULL with err set on failure. */
json_t *bc_pg_explain(bc_pg *pg, bc_err *err);

/* A fixed set of connections shared by threads. */
bc_pgpool *bc_pgpool_new(const char *dsn, const bc_pg_stmt *stmts, int n,
                         bc_err *err);
void bc_pgpool_free(bc_pgpool *p);
/* Blocks until a connection is free. */
bc_pg *bc_pgpool_get(bc_pgpool *p);
void bc_pgpool_put(bc_pgpool *p, bc_pg *pg);

/* Helpers for result cells: value or NULL if SQL NULL; integer or def. */
const char *bc_pg_val(const PGresult *res, int row, const char *col);
long long bc_pg_int(const PGresult *res, int row, const char *col, long long def);

#endif
