/* bc_retry: retry policies. Which outcomes of an attempt are dialed again
 * (retry_on), how many times (max_retries), and when (retry_intervals_s or
 * retry_backoff), per batch with per-recipient overrides. The API surfaces
 * validate the fields here; the worker's call_end_many evaluates the stored
 * policy in SQL (sql/0011_retry_policy.sql). docs/api.md has the rules. */
#ifndef BC_RETRY_H
#define BC_RETRY_H

#include <jansson.h>

#include <stddef.h>

#define BC_RETRY_MAX_RETRIES 10     /* max_retries: 0 to this */
#define BC_RETRY_MAX_INTERVALS 10   /* retry_intervals_s: 1 to this many */
#define BC_RETRY_MAX_DELAY_S 86400  /* no wait is longer than a day */
#define BC_RETRY_MAX_FACTOR 10      /* retry_backoff.factor: 1 to this */

/* Reads the retry fields of obj, an object of a request (a batch, or one of
 * its recipients):
 *   "max_retries"        integer 0-10
 *   "retry_on"           array of "busy", "no_answer", "failed", "voicemail"
 *                        (repeats are dropped; [] means never)
 *   "retry_intervals_s"  1-10 integers of 1-86400 seconds: the wait before
 *                        retry 1, 2, ...; the last one repeats
 *   "retry_backoff"      {"base_s": 1-86400, "factor"?: 1-10 (default 2),
 *                         "max_s"?: base_s-86400 (default 86400)}: the wait
 *                        before retry k is min(max_s, base_s * factor^(k-1))
 * at most one of the last two; a null field counts as absent. where
 * prefixes the field names in why ("" for a batch, "tasks[3]." for a task).
 * Returns 0 with *max_retries set (-1 when absent) and *policy a new object
 * holding the policy fields present, normalised (repeats dropped, back-off
 * defaults filled in), or NULL when none is; caller decrefs. Returns -1 with
 * why set and *policy NULL when a field is malformed. Touches nothing else. */
int bc_retry_parse(json_t *obj, const char *where, int *max_retries, json_t **policy,
                   char *why, size_t cap);

/* 1 when obj has any of the fields bc_retry_parse reads (null included):
 * a caller that writes a field path for its messages can skip both when
 * it has none. */
int bc_retry_given(const json_t *obj);

/* The outcome class an ended attempt counts as for retry_on: "busy",
 * "no_answer", "failed", "voicemail" (completed, answered by a machine:
 * answered_by starts with "machine"), "completed" or "canceled". status is
 * the carrier's final CallStatus, answered_by its AnsweredBy (may be NULL).
 * Unknown statuses count as "failed". Returns a static string. */
const char *bc_retry_outcome(const char *status, const char *answered_by);

/* The wait in seconds before retry k (1 = the first retry) under a policy
 * bc_retry_parse made, or -1 when it has no schedule (the worker's default
 * back-off applies). What sql/0011_retry_policy.sql's retry_delay_s()
 * computes, so the two can be checked against each other. */
double bc_retry_delay_s(const json_t *policy, int k);

#endif
