/* sim_ledger: the record of every dial and refusal, and /ledger. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_twilio.h"
#include "sim_control.h"
#include "sim_ledger.h"
#include "sim_req.h"

#define MAX_DIALS_LISTED 100000
#define REFUSED_MAX 10000        /* refused requests kept for /ledger/refused */
#define REFUSED_BODY_MAX 16384

static counts *counts_of(sim_map *m, const char *k)
{
    counts *c = sim_map_get(m, k);

    if (!c) {
        c = calloc(1, sizeof *c);
        sim_map_put(m, k, c);
    }
    return c;
}

void sim_ledger_live_add(sim *s, call *c, int d)
{
    s->live += d;
    c->gone_ms = d < 0 ? now_ms() : 0;
    if (s->live > s->peak)
        s->peak = s->live;
    if (c->batch[0]) {
        counts *b = counts_of(&s->batches, c->batch);
        b->live += d;
        if (b->live > b->peak)
            b->peak = b->live;
    }
    if (c->tenant[0]) {
        counts *t = counts_of(&s->tenants, c->tenant);
        t->live += d;
        if (t->live > t->peak)
            t->peak = t->live;
    }
}

int sim_ledger_kept(const sim *s, const char *batch)
{
    return s->keep_one_in <= 0 || !batch[0] || sim_map_hash(batch) % (size_t)s->keep_one_in == 0;
}

void sim_ledger_record_dial(sim *s, call *c, const char *body, size_t len)
{
    s->dials++;
    if (c->batch[0])
        counts_of(&s->batches, c->batch)->dials++;
    if (c->batch[0] && sim_ledger_kept(s, c->batch)) {
        blist *l = sim_map_get(&s->lists, c->batch);
        if (!l) {
            l = calloc(1, sizeof *l);
            sim_map_put(&s->lists, c->batch, l);
        }
        if (l->n < MAX_DIALS_LISTED) {
            if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 64;
                l->v = realloc(l->v, l->cap * sizeof *l->v);
            }
            dial *d = &l->v[l->n++];
            memset(d, 0, sizeof *d);
            snprintf(d->sid, sizeof d->sid, "%s", c->sid);
            snprintf(d->call_id, sizeof d->call_id, "%s", c->call_id);
            snprintf(d->to, sizeof d->to, "%s", c->to);
            snprintf(d->from, sizeof d->from, "%s", c->from);
            snprintf(d->batch, sizeof d->batch, "%s", c->batch);
            snprintf(d->tenant, sizeof d->tenant, "%s", c->tenant);
            d->at_ms = now_ms();
            d->form = strndup(body, len);
        }
    }
    if (c->tenant[0])
        counts_of(&s->tenants, c->tenant)->dials++;
    /* The evidence that matters most: our attempt id dialed twice. */
    if (c->call_id[0] && sim_idset_add(&s->per_call_id, c->call_id) == 1)
        json_array_append_new(s->duplicates, json_string(c->call_id));
}

/* The create's (or update's) form as JSON for the ledger: key -> string,
 * or an array of strings when the key repeats (StatusCallbackEvent). */
static json_t *form_json(const char *body)
{
    bc_form f = { 0 };
    json_t *o = json_object();

    if (!body || bc_form_parse(body, strlen(body), &f) < 0) {
        json_object_set_new(o, "_unparsed", json_string(body ? body : ""));
        return o;
    }
    for (size_t i = 0; i < f.n; i++) {
        json_t *v = json_object_get(o, f.key[i]);

        if (!v) {
            json_object_set_new(o, f.key[i], json_string(f.val[i]));
        } else if (json_is_array(v)) {
            json_array_append_new(v, json_string(f.val[i]));
        } else {
            json_object_set_new(o, f.key[i], json_pack("[O,s]", v, f.val[i]));
        }
    }
    bc_form_free(&f);
    return o;
}

void sim_ledger_refuse(sim *s, bc_http_resp *resp, const char *body, size_t len, int status,
                   int code, const char *msg)
{
    struct refusal *r;

    pthread_mutex_lock(&s->mu);
    if (!s->refused)
        s->refused = calloc(REFUSED_MAX, sizeof *s->refused);
    if (s->refused) {
        r = &s->refused[s->nrefused % REFUSED_MAX];
        free(r->form);
        r->form = strndup(body ? body : "", len < REFUSED_BODY_MAX ? len : REFUSED_BODY_MAX);
        r->status = status;
        r->code = code;
        snprintf(r->msg, sizeof r->msg, "%s", msg);
        s->nrefused++;
    }
    pthread_mutex_unlock(&s->mu);
    bc_metrics_inc(s->ctx->metrics, "sim_rejected_total", "Creates refused", "reason=\"invalid\"", 1);
    sim_req_error(resp, status, code, msg);
}

static json_t *counts_json(sim_map *m)
{
    json_t *o = json_object();

    for (size_t i = 0; i < m->nb; i++)
        for (sim_map_ent *e = m->b[i]; e; e = e->next) {
            counts *c = e->val;
            json_object_set_new(o, e->key, json_pack("{s:I,s:I,s:I}", "dials", (json_int_t)c->dials,
                                                     "live", (json_int_t)c->live,
                                                     "peak_live", (json_int_t)c->peak));
        }
    return o;
}

/* What the agent side of a call did, for /ledger/dials. */
static json_t *agent_json(const call *c)
{
    return json_pack("{s:s?,s:s?,s:b,s:o,s:o,s:o}", "kind", c ? c->ag_kind : NULL,
                     "target", c ? c->ag_target : NULL, "connected", c && c->ag_connected,
                     "error", c && c->ag_error ? json_integer(c->ag_error) : json_null(),
                     "played", c && c->played ? json_deep_copy(c->played) : json_array(),
                     "sip_headers", c && c->sip_headers ? json_deep_copy(c->sip_headers)
                                                        : json_object());
}

/* {"refused": [...]}: the last REFUSED_MAX refused creates and updates. */
static json_t *refused_json(sim *s)
{
    json_t *arr = json_array();
    size_t n = s->nrefused < REFUSED_MAX ? s->nrefused : REFUSED_MAX;

    for (size_t i = s->nrefused - n; i < s->nrefused; i++) {
        struct refusal *r = &s->refused[i % REFUSED_MAX];
        json_array_append_new(arr, json_pack("{s:o,s:i,s:i,s:s}", "params", form_json(r->form),
                                             "status", r->status, "code", r->code,
                                             "message", r->msg));
    }
    return json_pack("{s:o}", "refused", arr);
}

static void refused_reset(sim *s)
{
    for (size_t i = 0; s->refused && i < REFUSED_MAX; i++) {
        free(s->refused[i].form);
        s->refused[i].form = NULL;
    }
    s->nrefused = 0;
}

static void lists_free(sim *s)
{
    for (size_t i = 0; i < s->lists.nb; i++)
        for (sim_map_ent *e = s->lists.b[i]; e; e = e->next) {
            blist *l = e->val;
            for (size_t k = 0; k < l->n; k++)
                free(l->v[k].form);
            free(l->v);
        }
    sim_map_free(&s->lists, free);
}

void sim_ledger_route(sim *s, const bc_http_req *req, const char *path, bc_http_resp *resp)
{
    pthread_mutex_lock(&s->mu);
    if (!strcmp(path, "/ledger") && !strcmp(bc_http_method(req), "GET")) {
        json_t *l = json_pack(
            "{s:I,s:I,s:I,s:O,s:o,s:o,s:{s:I,s:I},s:I}", "dials", (json_int_t)s->dials,
            "live", (json_int_t)s->live, "peak_live", (json_int_t)s->peak,
            "duplicate_call_ids", s->duplicates, "batches", counts_json(&s->batches),
            "tenants", counts_json(&s->tenants), "callbacks", "sent", (json_int_t)s->cb_ok,
            "failed", (json_int_t)s->cb_failed, "rejected_429", (json_int_t)s->rejected_cps);
        json_object_set_new(l, "faults", sim_control_faults_json(s));
        json_object_set_new(l, "forgotten", json_integer(s->forgotten));
        json_object_set_new(l, "agent", json_pack(
            "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "connections", (json_int_t)s->ag.connections,
            "stream_starts", (json_int_t)s->ag.stream_starts,
            "stream_stops", (json_int_t)s->ag.stream_stops, "errors", (json_int_t)s->ag.errors,
            "twiml_fetches", (json_int_t)s->ag.twiml_fetches,
            "amd_callbacks", (json_int_t)s->ag.amd_callbacks, "plays", (json_int_t)s->ag.plays,
            "updates", (json_int_t)s->ag.updates, "recordings", (json_int_t)s->ag.recordings));
        bc_http_json(resp, 200, l);
    } else if (!strcmp(path, "/ledger/refused") && !strcmp(bc_http_method(req), "GET")) {
        bc_http_json(resp, 200, refused_json(s));
    } else if (!strcmp(path, "/ledger/dials") && !strcmp(bc_http_method(req), "GET")) {
        const char *b = bc_http_query(req, "batch_id");
        blist *l = b ? sim_map_get(&s->lists, b) : NULL;
        json_t *arr = json_array();

        for (size_t i = 0; l && i < l->n; i++) {
            dial *d = &l->v[i];
            call *c = sim_map_get(&s->calls, d->sid);
            /* ended_ms: when the call stopped holding a line here (B3
             * splits each slot's idle time at it), null while live. */
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o,s:o}",
                                                 "call_sid", d->sid, "call_id", d->call_id,
                                                 "to", d->to, "from", d->from, "batch_id", d->batch,
                                                 "tenant_id", d->tenant, "at_ms",
                                                 (json_int_t)d->at_ms, "ended_ms",
                                                 c && c->gone_ms ? json_integer(c->gone_ms) : json_null(),
                                                 "params", form_json(d->form),
                                                 "agent", agent_json(c)));
        }
        bc_http_json(resp, 200, json_pack("{s:o}", "dials", arr));
    } else if (!strcmp(path, "/ledger/reset") && !strcmp(bc_http_method(req), "POST")) {
        sim_map_free(&s->batches, free);
        sim_map_free(&s->tenants, free);
        sim_idset_free(&s->per_call_id);
        lists_free(s);
        refused_reset(s);
        memset(&s->ag, 0, sizeof s->ag);
        json_array_clear(s->duplicates);
        memset(&s->pending, 0, sizeof s->pending);
        memset(&s->done, 0, sizeof s->done);
        s->dials = s->peak = s->cb_ok = s->cb_failed = s->rejected_cps = 0;
        s->peak = s->live;
        /* Live calls keep counting from here. */
        for (size_t i = 0; i < s->calls.nb; i++)
            for (sim_map_ent *e = s->calls.b[i]; e; e = e->next) {
                call *c = e->val;
                if (c->live) {
                    c->live = 0;
                    s->live--;
                    sim_ledger_live_add(s, c, 1);
                    c->live = 1;
                }
            }
        bc_http_json(resp, 200, json_pack("{s:s}", "status", "reset"));
    } else {
        sim_req_error(resp, 404, 20404, "The requested resource was not found");
    }
    pthread_mutex_unlock(&s->mu);
}

void sim_ledger_free(sim *s)
{
    sim_map_free(&s->batches, free);
    sim_map_free(&s->tenants, free);
    sim_idset_free(&s->per_call_id);
    lists_free(s);
    refused_reset(s);
    free(s->refused);
    json_decref(s->duplicates);
}
