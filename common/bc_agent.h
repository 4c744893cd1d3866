/* bc_agent: the agent leg of a call. An agent's endpoint says how an
 * answered call reaches it; the carrier's create carries the instructions
 * that connect it (TwiML, or the agent's own TwiML URL) with the call's
 * context; a per-call token lets the agent fetch what did not fit and
 * report back (docs/agents.md). */
#ifndef BC_AGENT_H
#define BC_AGENT_H

#include <jansson.h>

#include <stddef.h>

#include "bc_err.h"

/* Twilio refuses inline TwiML longer than this many characters. */
#define BC_TWIML_MAX 4000
#define BC_AGENT_ENDPOINT_MAX 1024
/* "<unix expiry>.<64 hex digits>" and a NUL. */
#define BC_AGENT_TOKEN_MAX 96

typedef enum {
    BC_AGENT_NONE = 0,  /* no endpoint, or one we do not know */
    BC_AGENT_STREAM,    /* wss://: Twilio Media Streams (<Connect><Stream>) */
    BC_AGENT_TWIML,     /* https:// or http://: the agent answers with TwiML */
    BC_AGENT_SIP,       /* sip: or sips:: <Dial><Sip> */
} bc_agent_kind;

/* The kind an endpoint's scheme names. */
bc_agent_kind bc_agent_kind_of(const char *endpoint);
/* "stream", "twiml", "sip" or NULL. */
const char *bc_agent_kind_name(bc_agent_kind k);

/* Checks an endpoint a tenant gives an agent: a wss:// or http(s):// URL
 * libcurl accepts, without user or password, or a sip:/sips: URI of
 * user@host without headers of its own (we add ours), no whitespace or
 * control characters, at most BC_AGENT_ENDPOINT_MAX bytes. The carrier
 * connects to it, never we, so private addresses are the tenant's
 * business. 0, or -1 with why in words fit for an error body. */
int bc_agent_endpoint_check(const char *endpoint, char *why, size_t cap);

/* One call as its agent sees it. Strings may be NULL (left out). */
typedef struct bc_agent_call {
    const char *call_id, *batch_id, *tenant_id, *agent_id, *recipient_id;
    const char *to, *from;
    int attempt;
    const char *token;        /* bc_agent_token for call_id */
    const char *context_url;  /* where the agent GETs the whole context */
    json_t *variables;        /* borrowed object, or NULL */
    json_t *metadata;         /* borrowed object, or NULL */
} bc_agent_call;

/* The instructions for the carrier's create that connect the answered call
 * to the agent at endpoint. A stream agent gets Twiml <Connect><Stream>
 * with a <Parameter> for each of the call's fields (bc_*) and each variable
 * (metadata as one bc_metadata JSON text); when that exceeds BC_TWIML_MAX
 * characters the variables and metadata are left out and bc_context says
 * "fetch" (else "inline"). A SIP agent gets Twiml <Dial><Sip> with the call
 * id and token as X- headers; a TwiML agent a Url of its own with bc_call_id
 * and bc_token added to the query. Every value is escaped for where it
 * goes, so no variable can add an element or a header. On success one of
 * *twiml / *url is set (malloc'd; the caller frees both) and *inline_ctx
 * says whether the variables went inline. 0 or -1. */
int bc_agent_instructions(const char *endpoint, const bc_agent_call *c, char **twiml,
                          char **url, int *inline_ctx, bc_err *err);

/* The TwiML that leaves a voicemail message and hangs up: <Play> of
 * audio_url when given, else <Say> of text. NULL when neither is given or
 * out of memory; the caller frees it. */
char *bc_agent_voicemail_twiml(const char *text, const char *audio_url);

/* Checks a batch's voicemail policy (NULL: the agent handles machines):
 * {"action": "hangup" | "message" | "agent"}, a message with exactly one of
 * "text" (at most 1,000 bytes) or "audio_url" (https). 0, or -1 with
 * why in words fit for an error body. */
int bc_agent_voicemail_check(const json_t *policy, char *why, size_t cap);

/* A per-call token: "<exp>.<hex HMAC-SHA256(secret, call_id "." exp)>",
 * good until exp (Unix seconds). 0 or -1. */
int bc_agent_token(const char *secret, const char *call_id, long long exp, char *out,
                   size_t cap);
/* 1 if token is call_id's and not expired at now (Unix seconds), compared
 * in constant time; 0 otherwise. */
int bc_agent_token_check(const char *secret, const char *call_id, const char *token,
                         long long now);

#endif
