/* sim_control: the faults and scripted outcomes tests ask for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_e164.h"
#include "sim_control.h"
#include "sim_req.h"

#define FAULT_KINDS(X) \
    X(create_5xx) X(create_429) X(create_4xx) X(create_hang) X(callback_dup) \
    X(callback_reorder) X(callback_drop) X(update_5xx)
#define ONE(k) +1
enum { N_FAULT_KINDS = 0 FAULT_KINDS(ONE) };
#undef ONE

json_t *sim_control_faults_json(sim *s)
{
    json_t *p = json_object(), *d = json_object();
#define X(k)                                                   \
    json_object_set_new(p, #k, json_integer(s->pending.k));     \
    json_object_set_new(d, #k, json_integer(s->done.k));
    FAULT_KINDS(X)
#undef X
    return json_pack("{s:o,s:o}", "pending", p, "played", d);
}

/* POST /faults?create_5xx=N&...: queue N of each kind for the next creates,
 * callbacks or updates; GET /faults shows what is pending and what was played. */
void sim_control_faults(sim *s, const bc_http_req *req, bc_http_resp *resp)
{
    long v[N_FAULT_KINDS];
    int i = 0, bad = 0;

    if (!strcmp(bc_http_method(req), "POST")) {
#define X(k) bad |= bc_http_query_long(req, #k, 0, 1000000, 0, &v[i++]) < 0;
        FAULT_KINDS(X)
#undef X
        if (bad) {
            sim_req_error(resp, 400, 21200, "fault counts are integers 0..1000000");
            return;
        }
        i = 0;
        pthread_mutex_lock(&s->mu);
#define X(k) s->pending.k += v[i++];
        FAULT_KINDS(X)
#undef X
    } else {
        pthread_mutex_lock(&s->mu);
    }
    bc_http_json(resp, 200, sim_control_faults_json(s));
    pthread_mutex_unlock(&s->mu);
}

/* POST /outcomes?to=+1...&outcomes=busy,voicemail,completed: the next calls
 * to that number end so, one outcome per call, in order; then the number is
 * back to BC_SIM_FORCE and BC_SIM_MIX. An empty list forgets the script.
 * GET /outcomes?to=... shows what is left of it. */
void sim_control_outcomes(sim *s, const bc_http_req *req, bc_http_resp *resp)
{
    const char *to = bc_http_query(req, "to"), *list = bc_http_query(req, "outcomes");
    script next = { 0 }, *sc;
    json_t *left;

    if (!to || !bc_e164_valid(to)) {
        sim_req_error(resp, 400, 21201, "to must be an E.164 number");
        return;
    }
    if (!strcmp(bc_http_method(req), "POST")) {
        char copy[SCRIPT_MAX * 16], *save = NULL;

        if (!list || strlen(list) >= sizeof copy) {
            sim_req_error(resp, 400, 21200, "outcomes must list at most 16 outcomes");
            return;
        }
        snprintf(copy, sizeof copy, "%s", list);
        for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
            if (!sim_control_outcome_ok(o) || next.n == SCRIPT_MAX) {
                sim_req_error(resp, 400, 21200, "outcomes are at most 16 of completed, busy, "
                                               "no-answer, failed, voicemail");
                return;
            }
            snprintf(next.out[next.n++], sizeof next.out[0], "%s", o);
        }
    }
    pthread_mutex_lock(&s->mu);
    sc = sim_map_get(&s->scripts, to);
    if (!strcmp(bc_http_method(req), "POST")) {
        if (!sc) {
            sc = calloc(1, sizeof *sc);
            sim_map_put(&s->scripts, to, sc);
        }
        *sc = next;
    }
    left = json_array();
    for (int i = sc ? sc->next : 0; sc && i < sc->n; i++)
        json_array_append_new(left, json_string(sc->out[i]));
    pthread_mutex_unlock(&s->mu);
    bc_http_json(resp, 200, json_pack("{s:s,s:o}", "to", to, "outcomes", left));
}

int sim_control_outcome_ok(const char *o)
{
    return !strcmp(o, "completed") || !strcmp(o, "busy") || !strcmp(o, "no-answer") ||
           !strcmp(o, "failed") || !strcmp(o, "voicemail");
}
