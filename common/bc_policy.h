/* bc_policy: the tenant's compliance gate, one rule set for every way a
 * batch is made and for the worker's last step before the carrier. A
 * recipient the gate stops ends undialed as 'failed', with the rule as its
 * end_reason ("dnc_blocked"; later "outside_legal_hours",
 * "insufficient_credits") and policy_message(reason) as its error_message
 * (sql/0018_dnc_gate.sql). Everything after the gate (the call-result
 * event, the webhook, the metric, each surface's words) goes by reason, so
 * a new rule is an arm in BC_SQL_POLICY_BLOCK, a line in policy_message()
 * and a row in bc_policy.c's table. */
#ifndef BC_POLICY_H
#define BC_POLICY_H

#define BC_POLICY_DNC "dnc_blocked"   /* the number is on the tenant's DNC list */

/* The gate as one SQL expression over a tenant id and an E.164 number
 * (column references or parameters, as SQL text): the reason that number
 * may not be called now, or NULL. The DNC rule is one probe of dnc's
 * primary key (tenant_id, number). */
#define BC_SQL_POLICY_BLOCK(tenant, number)                                     \
    "(CASE WHEN EXISTS (SELECT 1 FROM dnc WHERE dnc.tenant_id = " tenant       \
    "                    AND dnc.number = " number ")"                          \
    "      THEN '" BC_POLICY_DNC "' END)"

/* 1 if reason (a recipient's or call's end_reason) is a policy stop. */
int bc_policy_stop(const char *reason);

/* A policy stop's reason in a surface's own words ("rymi", "cartesia",
 * "batch-call", "retell"): Rymi names a listed number "dnc_listed" (its
 * 409's code); the others show the reason as it is. Any other reason is
 * returned unchanged (NULL stays NULL). */
const char *bc_policy_word(const char *surface, const char *reason);

#endif
