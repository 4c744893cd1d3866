/* bc_validate: the validators of a batch's fields that every surface shares:
 * times (RFC 3339), expiry, a recipient's time zone and retry overrides, and
 * the agent leg's settings. Each checks shape only; what needs the database
 * (a zone exists, a time is ahead) bc_batch_create checks. */
#ifndef BC_VALIDATE_H
#define BC_VALIDATE_H

#include <jansson.h>

#include "bc_batches.h"

/* 1 if s is an RFC 3339 date-time with a zone ("Z" or "+hh:mm"). */
int bc_rfc3339_valid(const char *s);

/* Unix milliseconds of a time as the database shows it (rfc3339():
 * "YYYY-MM-DDTHH:MM:SSZ"); -1 for NULL or another shape. */
long long bc_rfc3339_ms(const char *s);

/* Reads a batch's expiry into spec: "latest_at" (RFC 3339 with a zone),
 * or "ttl" (whole seconds, 1 to 30 days), and where ms, also
 * "latest_timestamp" (Unix milliseconds, the time unit of batch-call and
 * Retell). At most one of them. 0, or -1 with why set. That the time is
 * ahead is checked by bc_batch_create. */
int bc_expiry_parse(json_t *in, int ms, bc_batch_spec *spec, char *why, size_t cap);

/* Copies an optional recipient "timezone" from src to dst: an IANA zone
 * name (letters, digits, '/', '_', '+', '-'; at most 64). -1 with why set
 * ("<where>[i].timezone ...") if present and malformed; whether the zone
 * exists is checked by bc_batch_create. */
int bc_recipient_timezone(json_t *src, json_t *dst, const char *where, size_t i,
                          char *why, size_t cap);
/* Reads the optional retry fields of recipient src (max_retries, retry_on,
 * retry_intervals_s, retry_backoff; see bc_retry_parse) into dst as
 * "max_retries" and "retry_policy". -1 with why set ("<where>[i].field
 * ...") if one is malformed. */
int bc_recipient_retry(json_t *src, json_t *dst, const char *where, size_t i, char *why,
                       size_t cap);

/* Reads the agent leg's extension fields of a batch body into spec:
 * "voicemail" (a policy, bc_agent_voicemail_check) and "record" (a
 * boolean), both optional. 0, or -1 with why. */
int bc_agent_leg_parse(json_t *in, bc_batch_spec *spec, char *why, size_t cap);

#endif
