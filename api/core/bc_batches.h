/* bc_batches: the one batch model under every API surface. Surfaces parse
 * and validate their own request shape into a bc_batch_spec, and render the
 * JSON bc_batch_load returns in their own words. */
#ifndef BC_BATCHES_H
#define BC_BATCHES_H

#include <jansson.h>

#include "bc_api.h"
#include "bc_json.h"

typedef enum {
    BC_BATCH_OK = 0,
    BC_BATCH_NO_AGENT,        /* agent not found for this tenant */
    BC_BATCH_NO_ENDPOINT,     /* the agent has no endpoint: no call could reach it */
    BC_BATCH_BAD_VOICEMAIL,   /* a voicemail policy that is not one (err says why) */
    BC_BATCH_TOO_BIG,         /* metadata, variables or post_call over the caps
                                 of bc_json_fits (err says which) */
    BC_BATCH_NO_NUMBER,       /* from-number not found for this tenant */
    BC_BATCH_OVER_LIMIT,      /* target_concurrency_limit above the tenant's */
    BC_BATCH_BAD_TIME,        /* scheduled_at not in (now, now + 30 days], or a
                                 latest_at not ahead of now and of it */
    BC_BATCH_NOT_FOUND,       /* no such batch for this tenant */
    BC_BATCH_CONFLICT,        /* not allowed in the batch's state */
    BC_BATCH_BLOCKED,         /* refuse_blocked and the tenant's policy forbids
                                 calling a recipient: nothing is stored */
    BC_BATCH_NO_CREDIT,       /* the tenant's balance cannot pay one call of
                                 the batch (bc_credits.h): nothing is stored */
    BC_BATCH_ERROR,           /* ours: database, Kafka */
    BC_BATCH_EAGER,           /* a create with spec.items that met anything
                                 but a plainly valid request before its
                                 recipients were all read: nothing is stored;
                                 parse the request whole and create again */
} bc_batch_rc;

typedef struct bc_batch_spec {
    const char *surface;         /* "cartesia", "rymi", "batch-call" */
    const char *name;
    const char *agent_id;
    const char *from_number_id;  /* one of from_number_id / from_number, or */
    const char *from_number;     /* neither: the tenant's default number */
    const char *region;          /* lowercase; NULL: agent's, else tenant's */
    int limit;                   /* 0: half the tenant's concurrency */
    int ringing_timeout_s;
    int max_call_duration_min;
    int max_retries;
    const char *scheduled_at;    /* RFC 3339 with offset, or NULL */
    const char *timezone;        /* IANA name, NULL means UTC */
    json_t *variables;           /* borrowed; may be NULL */
    json_t *metadata;            /* borrowed; may be NULL */
    int draft;
    const char *external_id;     /* caller's own batch id (Rymi batch_id) */
    json_t *calling_hours;       /* borrowed; validated by bc_calling_hours_check */
    json_t *post_call;           /* borrowed; may be NULL */
    json_t *caller_pool;         /* borrowed; validated by bc_caller_pool_check */
    /* The agent leg (docs/agents.md): what to do when a machine answers
     * (borrowed, checked here by bc_agent_voicemail_check; NULL: the agent
     * handles it), and whether to record (0 unset: the agent's setting;
     * 1 no, 2 yes). */
    json_t *voicemail;
    int record;
    /* The batch's retry policy as bc_retry_parse stores it, or NULL (the
     * default); owned by whoever filled the spec, who decrefs it. */
    json_t *retry_policy;
    /* Expiry: recipients not dialed by latest_at (RFC 3339), or
     * latest_ms (Unix milliseconds, when > 0), end as 'expired'; or ttl_s
     * seconds (when > 0) after the batch's start (scheduled_at, else
     * creation). At most one is set; bc_expiry_parse fills them. */
    const char *latest_at;
    long long latest_ms;
    long ttl_s;
    /* Borrowed array of {"to_number", "from_number"?, "metadata"?,
     * "variables"?, "max_retries"?, "retry_policy"?, "timezone"?}, already
     * validated. Ids are added. */
    json_t *recipients;
    /* Or, instead, the request's recipients still unread
     * (bc_json_object_lazy): the core reads each while the COPY stores the
     * ones before it, so the parse runs beside the server's inserts (B1).
     * stream's convert turns element i into the shape above, checked as
     * the surface's whole parse checks it (NULL with why); there must be 1
     * to stream->max of them. Any refusal until all are read and checked
     * is BC_BATCH_EAGER, with nothing stored, so the answer a client sees
     * is always the whole parse's. */
    bc_json_items *items;
    const struct bc_batch_stream *stream;
    /* Out: how many recipients the create stored. */
    size_t count;
    /* The tenant's policy (common/bc_policy.h) is applied to every batch:
     * a recipient it forbids ends undialed ('failed', end_reason the rule).
     * Where a surface's document says to refuse such a batch instead (Rymi:
     * 409 with the listed numbers), refuse_blocked is 1: then
     * bc_batch_create returns BC_BATCH_BLOCKED and, if blocked is not NULL,
     * appends the numbers it stopped (distinct, in order) to it. */
    int refuse_blocked;
    json_t *blocked;             /* borrowed; may be NULL */
    /* Out: how many recipients the policy ended when the batch was
     * created (0: all are queued; bc_batch_load's BC_LOAD_AS_CREATED). */
    long stopped;
} bc_batch_spec;

/* Stores the batch and its recipients in one transaction, applies the
 * tenant's policy to them (see refuse_blocked), admits it if the
 * tenant has room (else it waits as pending), releases its first window of
 * jobs to the outbox, commits, then publishes them. id_out gets the id. */
bc_batch_rc bc_batch_create(bc_api *api, bc_pg *pg, const bc_principal *who,
                            bc_batch_spec *spec, char id_out[48], bc_err *err);

/* How a surface's create reads its body streamed (bc_batch_create_streamed). */
typedef struct bc_batch_stream {
    const char *key;   /* the body's member that holds the recipients */
    size_t max;        /* at most this many of them */
    /* The body's other fields into spec, as the surface's whole parse reads
     * them (rest holds key as an empty array): 0, or -1 (the whole parse
     * will say why). ud is the surface's. */
    int (*fields)(json_t *rest, bc_batch_spec *spec, void *ud);
    /* Recipient i into the core's shape, checked as the whole parse checks
     * it (bc_batch_spec's convert). */
    json_t *(*convert)(json_t *r, size_t i, char *why, size_t cap);
    void *ud;
} bc_batch_stream;

/* bc_batch_create over the raw body, its recipients read while the COPY
 * stores them (spec.items). BC_BATCH_EAGER, with nothing stored and spec
 * as new but for its surface, for any request that is not plainly valid:
 * the surface then parses the body whole and calls bc_batch_create, so
 * every refusal is the whole parse's. Any other result is final. The spec
 * borrows from *rest, which the caller decrefs (NULL-safe). Counts
 * api_batch_create_reads_total. */
bc_batch_rc bc_batch_create_streamed(bc_api *api, bc_pg *pg, const bc_principal *who,
                                     const char *body, size_t len,
                                     const bc_batch_stream *how, bc_batch_spec *spec,
                                     json_t **rest, char id_out[48], bc_err *err);

/* bc_batch_load's flags. */
#define BC_LOAD_RECIPIENTS 1   /* its recipients too, in order */
/* A batch its create has just stored, whose policy stopped none of its
 * recipients (spec.stopped 0): all are queued, so the counters are known
 * without reading them (5,000 rows: ~5 ms of a create's answer, B1). */
#define BC_LOAD_AS_CREATED 2

/* The flags a surface reads its answer to a create with: BC_LOAD_AS_CREATED
 * unless the policy stopped some of spec's recipients. */
static inline int bc_batch_created_flags(const bc_batch_spec *spec)
{
    return spec->stopped ? 0 : BC_LOAD_AS_CREATED;
}

/* The batch with derived counters (scheduled, dispatched, finished,
 * failed_predial, cancelled, expired, waiting, blocked: the recipients the
 * tenant's policy stopped, and blocked_reasons: {end_reason: count} of
 * them), latest_at, its pauses (paused_at,
 * tenant_paused_at, "held": either, unless cancelled) and, with
 * BC_LOAD_RECIPIENTS in flags, its recipients in order. NULL with err ""
 * when no such batch for this tenant; NULL with err set on failure. Caller
 * decrefs. */
json_t *bc_batch_load(bc_pg *pg, const char *tenant_id, const char *batch_id, int flags,
                      bc_err *err);

/* Cancels: no recipient still queued is ever dialed; live calls finish.
 * Cancelling a cancelled batch is a no-op (BC_BATCH_OK). */
bc_batch_rc bc_batch_cancel(bc_pg *pg, const bc_principal *who, const char *id,
                            bc_err *err);

/* Cancels (bc_batch_cancel) and ends its live calls: the carrier is asked
 * to hang up (or stop ringing) each call it has; their slots are freed by
 * their final status callbacks, as any call's. */
bc_batch_rc bc_batch_end(bc_api *api, bc_pg *pg, const bc_principal *who, const char *id,
                         bc_err *err);

/* Pauses: from when it returns no new call of the batch is placed; calls
 * already live finish. A batch not yet admitted waits until resumed.
 * Pausing a paused batch is a no-op (BC_BATCH_OK); a cancelled one is
 * BC_BATCH_CONFLICT. */
bc_batch_rc bc_batch_pause(bc_pg *pg, const bc_principal *who, const char *id,
                           bc_err *err);

/* Resumes where the batch stopped: its backlog is released again in order.
 * While its tenant is paused it stays held until that ends. Resuming a
 * batch not paused is a no-op; a cancelled one is BC_BATCH_CONFLICT. */
bc_batch_rc bc_batch_resume(bc_api *api, bc_pg *pg, const bc_principal *who,
                            const char *id, bc_err *err);

/* How a surface words a batch action's failures (bc_batch_action). */
typedef struct bc_batch_errors {
    /* Answers an error in the surface's own shape. */
    void (*error)(bc_http_resp *resp, int status, const char *code, const char *msg);
    const char *not_found;   /* the 404's message */
    const char *failed;      /* the 500's message */
} bc_batch_errors;

/* Runs verb (cancel, end: cancel and hang up, pause, resume, retry or
 * send) on batch id. Done, it
 * logs batch.cancelled (paused, resumed, retried, sent) and returns 1: the
 * caller answers with the batch. Else it answers through e: 404
 * not_found, 409 conflict saying why, or 500 internal_error, logged as
 * batch.action_failed; and returns 0. */
int bc_batch_action(bc_api *api, bc_pg *pg, const bc_principal *who, const char *id,
                    const char *verb, const bc_batch_errors *e, bc_http_resp *resp);

/* Pauses (pause 1) or resumes (0) every batch of the caller's tenant; while
 * it is paused, new batches wait too. Returns {"paused", "paused_at",
 * "batches": how many this call paused or resumed}; NULL with err set on
 * failure. Logs either (tenant.paused, tenant.resumed, tenant.pause_failed),
 * so a surface only answers. Caller decrefs. */
json_t *bc_tenant_pause(bc_api *api, bc_pg *pg, const bc_principal *who, int pause,
                        bc_err *err);

/* The recipients of a batch (as bc_batch_load returns it) that the
 * tenant's policy stopped undialed, in surface's words
 * (bc_policy_word): {"dnc_blocked": 2}, {} when none. New reference. */
json_t *bc_batch_blocked(json_t *b, const char *surface);

/* 1 if a batch as bc_batch_load returns it is held by a pause (its own or
 * its tenant's) with recipients still waiting: its status is "paused". */
int bc_batch_paused(json_t *b);

/* Re-queues the recipients whose latest attempt failed (busy, no answer,
 * failed); completed ones are left alone. A cancelled batch is
 * BC_BATCH_CONFLICT. The batch is admitted again if the tenant has room,
 * else it waits as pending. */
bc_batch_rc bc_batch_retry(bc_api *api, bc_pg *pg, const bc_principal *who,
                           const char *id, bc_err *err);

/* Sends a draft: it is scheduled if its time is still ahead, else admitted
 * (or pending for capacity). Any other state is BC_BATCH_CONFLICT. */
bc_batch_rc bc_batch_send(bc_api *api, bc_pg *pg, const bc_principal *who,
                          const char *id, bc_err *err);

/* The tenant's batches, newest first: at most limit, optionally only those
 * of agent_id, after the batch starting_after. Sets *has_more. */
json_t *bc_batch_list(bc_pg *pg, const char *tenant_id, const char *agent_id,
                      const char *starting_after, int limit, int *has_more,
                      bc_err *err);

/* Same, by offset, with the total count; for surfaces that page that way. */
json_t *bc_batch_page(bc_pg *pg, const char *tenant_id, const char *surface,
                      int limit, int offset, long long *total, bc_err *err);

/* Copies the retry fields of a batch or recipient that bc_batch_load
 * returned into a surface's rendering out, in the request's words:
 * max_retries, retry_on, retry_intervals_s / retry_backoff. A batch
 * (batch = 1) always shows max_retries and retry_on, defaults included; a
 * recipient only the overrides it has. */
void bc_batch_retry_fields(json_t *out, json_t *from, int batch);

/* The audit row of a write to a batch by who, in the write's transaction.
 * Takes ownership of detail. */
int bc_batch_audit(bc_pg *pg, const bc_principal *who, const char *action, const char *id,
                   json_t *detail, bc_err *err);
#endif
