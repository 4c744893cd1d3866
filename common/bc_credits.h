/* bc_credits: credits that are spent (sql/0022_credits.sql, docs/api.md
 * "Credits"). A tenant's balance is tenants.credits_cents (granted) minus
 * credit_usage.used_cents (held and spent). Before a dial the worker holds
 * the cost of the call's maximum duration (its TimeLimit): price per minute
 * x max_call_duration_min, in the statement that moves the call to
 * 'dialing', and only if the balance covers it; a call the balance cannot
 * cover is not dialed and its batch pauses itself with reason
 * "insufficient_credits" (its recipients stay queued). When the call ends
 * the hold is released and, if it was answered, its cost settled: the
 * carrier's duration rounded up per started minute, times the price, never
 * more than the hold. So the balance never drops below zero, let alone
 * below minus the live calls' holds. Every move is a credit_ledger row. */
#ifndef BC_CREDITS_H
#define BC_CREDITS_H

#include "bc_pg.h"
#include "bc_sql.h"   /* the BC_SQL_CREDITS_* fragments */

/* The pause reason of a batch that ran out, and the "blocked" word the
 * claim (or dial_start) gives a call it did not dial for lack of credit. */
#define BC_CREDITS_SHORT "insufficient_credits"

/* Cents held for a call of at most max_min minutes at price cents a
 * minute. */
long long bc_credits_hold(int price, int max_min);

/* Minutes billed for a call the carrier says lasted duration_s seconds:
 * every started minute (61 s is 2); 0 for none. */
int bc_credits_minutes(long duration_s);

/* Cents a call costs: answered (the carrier's "completed") calls cost their
 * billed minutes x price, capped at the hold; any other outcome 0. */
long long bc_credits_cost(const char *status, long duration_s, int price, long long hold);

/* The same three and the balance are SQL text too, so the statements bill
 * exactly as the C does: common/sql/credits_{hold,minutes,cost,balance}.sql
 * (BC_SQL_CREDITS_HOLD(price, max_min) ...), with the CTEs that release
 * and settle holds (credits_settle_ctes.sql), from bc_sql.h. The holds are
 * taken by the worker's claim (worker/sql/claim.sql) and, for a paced dial
 * sent again, its dial_start_many (worker/bc_dialing.c), a batch that
 * runs out is paused by its credits_pause and resumed by the scheduler's
 * credits_resume. */

/* The statements more than one process prepares (BC_PG_INCLUDE):
 * "credits_topup", an admin's `credits-add`: the grant and its ledger row
 * in one statement, $1 tenant $2 cents $3 actor; returns credits_cents,
 * the balance after. (A create's test, whether the tenant can pay one
 * call, is the API's create_tests.) */
extern const bc_pg_stmt bc_credits_stmts[];

#endif
