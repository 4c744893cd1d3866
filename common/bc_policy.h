/* bc_policy: the tenant's compliance gate, one rule set for every way a
 * batch is made and for the worker's last step before the carrier. A
 * recipient the gate stops ends undialed as 'failed', with the rule as its
 * end_reason ("dnc_blocked"; later "outside_legal_hours",
 * "insufficient_credits") and policy_message(reason) as its error_message
 * (sql/0018_dnc_gate.sql). Everything after the gate (the call-result
 * event, the webhook, the metric, each surface's words) goes by reason, so
 * a new rule is an arm in common/sql/policy_block.sql, a line in
 * policy_message() and a row in bc_policy.c's table. */
#ifndef BC_POLICY_H
#define BC_POLICY_H

#include "bc_sql_common.h"   /* BC_SQL_POLICY_BLOCK */

#define BC_POLICY_DNC "dnc_blocked"   /* the number is on the tenant's DNC list */

/* The gate itself is one SQL expression over a tenant id and an E.164
 * number (SQL text), common/sql/policy_block.sql: BC_SQL_POLICY_BLOCK(tenant,
 * number), the reason that number may not be called now, or NULL. */

/* 1 if reason (a recipient's or call's end_reason) is a policy stop. */
int bc_policy_stop(const char *reason);

/* A policy stop's reason in a surface's own words ("rymi", "cartesia",
 * "batch-call", "retell"): Rymi names a listed number "dnc_listed" (its
 * 409's code); the others show the reason as it is. Any other reason is
 * returned unchanged (NULL stays NULL). */
const char *bc_policy_word(const char *surface, const char *reason);

#endif
