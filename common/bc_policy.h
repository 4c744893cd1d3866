/* bc_policy: the tenant's compliance gate, one rule set for every way a
 * batch is made and for the worker's last step before the carrier. A
 * recipient the gate stops ends undialed as 'failed', with the rule as its
 * end_reason and policy_message(reason) as its error_message
 * (sql/0018_dnc_gate.sql, sql/0031_stop_reasons.sql). The gate's rule is
 * the DNC list ("dnc_blocked"). Legal hours and credits never stop a
 * recipient at dial time: they defer it, or pause its batch; a recipient
 * still held by one of them when its batch's latest_at passes is stopped
 * then by the scheduler's expiry (scheduler/bc_expiry.c), with
 * "outside_legal_hours" or "insufficient_credits". Everything after a
 * stop (the call-result event, the webhook, the metric, each surface's
 * words) goes by reason, so a new gate rule is an arm in
 * common/sql/policy_block.sql and in policy_any.sql, a line in
 * policy_message() and a row in bc_policy.c's table. */
#ifndef BC_POLICY_H
#define BC_POLICY_H

#include "bc_sql_common.h"   /* BC_SQL_POLICY_BLOCK, BC_SQL_POLICY_ANY */

#define BC_POLICY_DNC "dnc_blocked"   /* the number is on the tenant's DNC list */
/* Held by the tenant's legal hours until its batch expired. */
#define BC_POLICY_LEGAL_HOURS "outside_legal_hours"
/* Its batch was paused for credits (BC_CREDITS_SHORT) until it expired. */
#define BC_POLICY_CREDITS "insufficient_credits"

/* The gate itself is one SQL expression over a tenant id and an E.164
 * number (SQL text), common/sql/policy_block.sql: BC_SQL_POLICY_BLOCK(tenant,
 * number), the reason that number may not be called now, or NULL; and
 * BC_SQL_POLICY_ANY(tenant) (common/sql/policy_any.sql) says whether it
 * could stop any of the tenant's numbers, for a statement over a whole
 * batch to skip its rows when it cannot. */

/* 1 if reason (a recipient's or call's end_reason) is a policy stop. */
int bc_policy_stop(const char *reason);

/* A policy stop's reason in a surface's own words ("rymi", "cartesia",
 * "batch-call", "retell"): Rymi names a listed number "dnc_listed" (its
 * 409's code) and credits "insufficient_credits" (its 402's code), and
 * has no word for legal hours; the others show the reason as it is. Any
 * other reason is returned unchanged (NULL stays NULL). */
const char *bc_policy_word(const char *surface, const char *reason);

#endif
