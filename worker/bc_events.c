#include "bc_events.h"

#include <stdlib.h>
#include <string.h>

#include "bc_agent.h"
#include "bc_dialing.h"
#include "bc_ends.h"
#include "bc_json.h"
#include "bc_retry.h"

const bc_pg_stmt bc_events_stmts[] = {
    /* The progress events of one loop turn in one statement: each call
     * moves to its furthest status, its history gains every status it had
     * not reached, in order. $1 [{"id","status","sid"}] */
    { "call_progress_many",
      "WITH e AS (SELECT e.* FROM list_rows($1::jsonb) x,"
      "             jsonb_to_record(x) AS e(id text, status text, sid text)),"
      " b AS (SELECT id, max(sid) AS sid,"
      "              array_agg(DISTINCT status) AS sts,"
      "              (array_agg(status ORDER BY call_status_rank(status) DESC))[1] AS top"
      "         FROM e GROUP BY id),"
      " c AS (UPDATE calls SET status = b.top,"
      "        history = calls.history || coalesce((SELECT jsonb_agg(jsonb_build_object("
      "                    'status', s, 'at', rfc3339_ms(now())) ORDER BY call_status_rank(s))"
      "                  FROM unnest(b.sts) s"
      "                 WHERE call_status_rank(s) > call_status_rank(calls.status)), '[]'),"
      "        answered_at = CASE WHEN 'in-progress' = ANY(b.sts) THEN now() ELSE answered_at END,"
      "        carrier_call_id = coalesce(carrier_call_id, b.sid)"
      "       FROM b WHERE calls.id = b.id"
      "        AND call_status_rank(calls.status) < call_status_rank(b.top)"
      "      RETURNING calls.id, calls.recipient_id, calls.status)"
      " UPDATE recipients SET status = 'started', updated_at = now() FROM c"
      "  WHERE recipients.id = c.recipient_id AND recipients.last_call_id = c.id"
      "    AND coalesce(recipients.status, '') = 'dispatched' AND c.status = 'in-progress'" },
    /* Answering-machine verdicts (AsyncAmd) of one turn: each call's
     * answered_by, once (a redelivered verdict finds amd_at set and acts
     * on nothing), and what the batch's voicemail policy makes of a
     * machine. A hang-up it asks for is marked as a cancel's is, so the
     * scheduler's sweep sends it again while the call lives (sql/0033).
     * Returns the calls still live whose policy asks the carrier for
     * something. $1 [{"id","ab","sid"}] */
    { "amd_many",
      "WITH e AS (SELECT e.* FROM list_rows($1::jsonb) x,"
      "             jsonb_to_record(x) AS e(id text, ab text, sid text)),"
      " c AS (UPDATE calls SET answered_by = e.ab, amd_at = now(),"
      "        carrier_call_id = coalesce(calls.carrier_call_id, e.sid),"
      "        voicemail_action = v.action,"
      "        hangup_requested_at = CASE WHEN v.action = 'hangup'"
      "                                   THEN coalesce(calls.hangup_requested_at, now())"
      "                                   ELSE calls.hangup_requested_at END,"
      "        hangup_sent_at = CASE WHEN v.action = 'hangup' THEN now()"
      "                              ELSE calls.hangup_sent_at END"
      "        FROM e, batches b,"
      "             LATERAL (SELECT CASE WHEN e.ab LIKE 'machine%'"
      "                                  THEN coalesce(b.voicemail->>'action', 'agent') END"
      "                      AS action) v"
      "       WHERE calls.id = e.id AND b.id = calls.batch_id"
      "         AND calls.amd_at IS NULL"
      "      RETURNING calls.id, calls.carrier_call_id AS sid, calls.status,"
      "                calls.voicemail_action AS action, b.voicemail->>'text' AS text,"
      "                b.voicemail->>'audio_url' AS audio_url)"
      " SELECT * FROM c WHERE action IN ('hangup', 'message')"
      "   AND call_status_rank(status) < 9 AND sid IS NOT NULL" },
    { 0, 0 },
};

/* Writes the progress events gathered so far, in one round trip. */
static void flush_progress(bc_worker *w)
{
    bc_err err = { "" };
    char *doc;
    PGresult *res;

    if (!w->progress || json_array_size(w->progress) == 0)
        return;
    bc_json_sort_by(w->progress, "id");   /* in call id order: bc_ends_flush */
    doc = json_dumps(w->progress, JSON_COMPACT);
    json_array_clear(w->progress);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "call_progress_many", 1, p, &err)))
        bc_log(w->ctx->log, BC_WARN, "event.apply_failed", "{s:s}", "error",
               doc ? err.msg : "out of memory");
    else
        PQclear(res);
    free(doc);
}

/* Asks the carrier to change a live call: form is one pair (key, value). */
static void update_call(bc_worker *w, const char *sid, const char *call, const char *key,
                        const char *value)
{
    bc_form f = { 0 };
    bc_err err = { "" };

    bc_form_add(&f, key, value);
    if (bc_carrier_update(w->carrier, sid, call, &f, &err) < 0)
        bc_log(w->ctx->log, BC_WARN, "call.update_failed", "{s:s,s:s}", "call_id", call,
               "error", err.msg);
    bc_form_free(&f);
}

void bc_events_updated(void *ud, const char *call, int ok, const char *why)
{
    bc_worker *w = ud;

    bc_metric_add(ok ? w->m_updates : w->m_update_failed, 1);
    if (!ok)
        bc_log(w->ctx->log, BC_WARN, "call.update_refused", "{s:s,s:s}", "call_id", call,
               "reason", why);
}

/* Writes the turn's AMD verdicts and applies the voicemail policy where a
 * machine answered: hang up, or play the message and hang up (the stream
 * to the agent stops; the callee's machine records it). amd_many acts on a
 * call's first verdict only, so a message is played once. */
static void flush_amds(bc_worker *w)
{
    bc_err err = { "" };
    PGresult *res;
    char *doc;

    if (json_array_size(w->amds) == 0)
        return;
    bc_json_sort_by(w->amds, "id");   /* in call id order: bc_ends_flush */
    doc = json_dumps(w->amds, JSON_COMPACT);
    json_array_clear(w->amds);
    const char *p[] = { doc };
    if (!doc || !(res = bc_pg_exec(w->pg, "amd_many", 1, p, &err))) {
        bc_log(w->ctx->log, BC_WARN, "amd.record_failed", "{s:s}", "error",
               doc ? err.msg : "out of memory");
        free(doc);
        return;
    }
    free(doc);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *call = bc_pg_val(res, i, "id"), *sid = bc_pg_val(res, i, "sid");
        char *twiml = NULL;

        bc_metric_add(w->m_voicemail_actions, 1);
        if (!strcmp(bc_pg_val(res, i, "action"), "hangup")) {
            update_call(w, sid, call, "Status", "completed");
        } else if ((twiml = bc_agent_voicemail_twiml(bc_pg_val(res, i, "text"),
                                                     bc_pg_val(res, i, "audio_url")))) {
            update_call(w, sid, call, "Twiml", twiml);
            free(twiml);
        }
    }
    PQclear(res);
}

static const char *end_reason_of(const char *status, int duration, int limit_s)
{
    if (!strcmp(status, "completed"))
        return limit_s > 0 && duration >= limit_s ? "max_duration" : "agent_hangup";
    if (!strcmp(status, "busy"))
        return "dial_busy";
    if (!strcmp(status, "no-answer"))
        return "dial_no_answer";
    if (!strcmp(status, "canceled"))
        return "api_cancelled";
    return "dial_failed";
}

/* How long the event took to reach the loop since it was published, by
 * whether it ends its call (end); a clock behind the publisher's counts
 * as 0. */
static void observe_age(bc_worker *w, const rd_kafka_message_t *m, int end)
{
    rd_kafka_timestamp_type_t type;
    long long at = rd_kafka_message_timestamp(m, &type), age;

    if (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || at <= 0)
        return;
    age = bc_wall_ms() - at;
    bc_metric_observe(w->m_event_age[end], age > 0 ? (double)age / 1000.0 : 0.0);
}

static void apply(bc_worker *w, const rd_kafka_message_t *m)
{
    json_t *ev = json_loadb(m->payload, m->len, 0, NULL);
    const char *call = json_string_value(json_object_get(ev, "call_id"));
    const char *status = json_string_value(json_object_get(ev, "status"));
    const char *sid = json_string_value(json_object_get(ev, "carrier_call_id"));
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    int duration = (int)json_integer_value(json_object_get(ev, "duration")), end = 0;

    bc_metric_add(w->m_events, 1);
    if (call && kind && !strcmp(kind, "amd")) {
        const char *by = json_string_value(json_object_get(ev, "answered_by"));

        if (by)
            json_array_append_new(w->amds, json_pack("{s:s,s:s,s:s?}", "id", call, "ab", by,
                                                     "sid", sid));
    } else if (call && kind && !strcmp(kind, "hangup")) {
        /* Ending a live call (a cancel with hang-up): Status=completed ends
         * it whether it rings or talks, as Twilio's update documents (an
         * unanswered call ends canceled); the final status callback frees
         * the slot, never this. Sending canceled as well, for a call not
         * known to talk, raced the call's own answer: completed reached a
         * ringing call and canceled the same call answered a moment
         * later, and neither ended it. A command that fails is sent again
         * by the scheduler's sweep (sql/0033). */
        if (sid)
            update_call(w, sid, call, "Status", "completed");
    } else if (!call || !status) {
        bc_log(w->ctx->log, BC_WARN, "event.malformed", NULL);
    } else if (!strcmp(status, "ringing") || !strcmp(status, "in-progress") ||
               !strcmp(status, "queued") || !strcmp(status, "initiated")) {
        /* Gathered and written once per loop turn (flush_progress). */
        json_array_append_new(w->progress,
                              json_pack("{s:s,s:s,s:s?}", "id", call, "status",
                                        !strcmp(status, "initiated") ? "queued" : status,
                                        "sid", sid));
    } else if (!strcmp(status, "completed") || !strcmp(status, "busy") ||
               !strcmp(status, "no-answer") || !strcmp(status, "failed") ||
               !strcmp(status, "canceled")) {
        /* Written after this turn's progress (bc_events_turn), so a call's
         * history stays whole. An answering machine that took a completed
         * call (AnsweredBy machine_...) makes it a voicemail. */
        const char *by = json_string_value(json_object_get(ev, "answered_by"));
        int machine = !strcmp(bc_retry_outcome(status, by), "voicemail");

        bc_ends_add(w, call, status, duration,
                    machine ? "voicemail" : end_reason_of(status, duration, 0), sid, by, NULL);
        end = 1;
    }
    observe_age(w, m, end);
    json_decref(ev);
}

int bc_events_turn(bc_worker *w)
{
    rd_kafka_message_t *m;

    while (w->ntaken < BC_EVENTS_MAX && (m = bc_kafka_consume(w->events, 0))) {
        apply(w, m);
        w->taken[w->ntaken++] = m;
    }
    /* The ends free slots, so they are written now, before the turn's
     * claims; the other writes wait for bc_events_settle, after the claims
     * and dials. A call's progress and verdict in the same turn as its end
     * are written with it (bc_ends_fold), so only its dial accepted in
     * that turn could still be overtaken: then that is written first, as
     * it arrived. */
    bc_ends_fold(w);
    if (bc_ends_touch(w, w->accepted, "c"))
        while (bc_events_write_next(w))
            ;
    else
        bc_ends_flush(w);
    return w->ntaken == BC_EVENTS_MAX;
}

int bc_events_write_next(bc_worker *w)
{
    if (json_array_size(w->accepted))
        bc_dialing_flush_accepted(w);
    else if (json_array_size(w->progress))
        flush_progress(w);
    else if (json_array_size(w->amds))
        flush_amds(w);
    else if (json_array_size(w->ends))
        bc_ends_flush(w);
    else
        return 0;
    return 1;
}

void bc_events_settle(bc_worker *w)
{
    while (bc_events_write_next(w))
        ;
    /* Offsets are stored only once their effect is written. */
    for (int i = 0; i < w->ntaken; i++) {
        bc_kafka_store(w->events, w->taken[i]);
        rd_kafka_message_destroy(w->taken[i]);
    }
    w->ntaken = 0;
}
