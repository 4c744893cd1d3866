#include "bc_intake.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 256

typedef struct part {
    int32_t partition;
    bc_job *head, *tail;
} part;

struct bc_intake {
    bc_kafka *jobs;
    bc_log *log;
    bc_wbatch *batches;
    part parts[MAX_PARTS];
    int nparts;
    long in_hand;
    long untried;
    int paused;
};

bc_intake *bc_intake_new(bc_kafka *jobs, bc_log *log)
{
    bc_intake *in = calloc(1, sizeof *in);

    if (!in)
        return NULL;
    in->jobs = jobs;
    in->log = log;
    return in;
}

void bc_intake_free(bc_intake *in)
{
    if (!in)
        return;
    for (int i = 0; i < in->nparts; i++) {
        for (bc_job *j = in->parts[i].head, *n; j; j = n) {
            n = j->next_part;
            rd_kafka_message_destroy(j->msg);
            free(j);
        }
    }
    for (bc_wbatch *b = in->batches, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(in);
}

long bc_intake_in_hand(const bc_intake *in) { return in->in_hand; }
long bc_intake_untried(const bc_intake *in) { return in->untried; }

void bc_intake_tried(bc_intake *in, bc_job *j)
{
    if (!j->tried) {
        j->tried = 1;
        in->untried--;
    }
}

bc_wbatch *bc_intake_batches(bc_intake *in) { return in->batches; }

/* ---- offsets ---------------------------------------------------------- */

static part *part_of(bc_intake *in, int32_t p)
{
    for (int i = 0; i < in->nparts; i++)
        if (in->parts[i].partition == p)
            return &in->parts[i];
    if (in->nparts == MAX_PARTS)
        return NULL;
    in->parts[in->nparts].partition = p;
    return &in->parts[in->nparts++];
}

/* Stores the offset of every finished job at the front of its partition:
 * an offset is committed only when every job before it is durable too. */
static void advance(bc_intake *in, part *p)
{
    while (p->head && p->head->done) {
        bc_job *j = p->head;

        p->head = j->next_part;
        if (!p->head)
            p->tail = NULL;
        bc_kafka_store(in->jobs, j->msg);
        rd_kafka_message_destroy(j->msg);
        free(j);
        in->in_hand--;
    }
}

void bc_intake_done(bc_intake *in, bc_job *j)
{
    j->done = 1;
    advance(in, part_of(in, j->msg->partition));
}

/* ---- wait queues ------------------------------------------------------ */

/* The wait queue of batch id (of tenant), made if there is none. */
static bc_wbatch *batch_of(bc_intake *in, const char *id, const char *tenant)
{
    bc_wbatch *b;

    for (b = in->batches; b; b = b->next)
        if (!strcmp(b->id, id))
            return b;
    if (!(b = calloc(1, sizeof *b)))
        return NULL;
    snprintf(b->id, sizeof b->id, "%s", id);
    snprintf(b->tenant, sizeof b->tenant, "%s", tenant);
    b->free_hint = -1;
    b->next = in->batches;
    in->batches = b;
    return b;
}

static void take(bc_intake *in, rd_kafka_message_t *m)
{
    json_t *doc = json_loadb(m->payload, m->len, 0, NULL);
    const char *r = json_string_value(json_object_get(doc, "recipient_id"));
    const char *b = json_string_value(json_object_get(doc, "batch_id"));
    const char *t = json_string_value(json_object_get(doc, "tenant_id"));
    json_t *a = json_object_get(doc, "attempt");
    bc_job *j = calloc(1, sizeof *j);
    part *p = part_of(in, m->partition);
    bc_wbatch *wb;

    if (!j || !p) {
        /* Not stored: it comes back after a restart. */
        free(j);
        rd_kafka_message_destroy(m);
        json_decref(doc);
        return;
    }
    j->msg = m;
    if (p->tail)
        p->tail->next_part = j;
    else
        p->head = j;
    p->tail = j;
    in->in_hand++;
    if (!r || !b || !t || !json_is_integer(a) || strlen(r) >= 48 || strlen(b) >= 48 ||
        strlen(t) >= 48 || !(wb = batch_of(in, b, t))) {
        bc_log(in->log, BC_WARN, "job.malformed", "{s:i,s:I}", "partition",
               (int)m->partition, "offset", (json_int_t)m->offset);
        json_decref(doc);
        bc_intake_done(in, j);
        return;
    }
    snprintf(j->recipient, sizeof j->recipient, "%s", r);
    snprintf(j->batch, sizeof j->batch, "%s", b);
    snprintf(j->tenant, sizeof j->tenant, "%s", t);
    j->attempt = (int)json_integer_value(a);
    json_decref(doc);
    if (wb->tail)
        wb->tail->next_wait = j;
    else
        wb->head = j;
    wb->tail = j;
    in->untried++;
}

int bc_intake_fetch(bc_intake *in, long max_in_hand)
{
    rd_kafka_message_t *m;
    int n;

    for (n = 0; n < 500 && in->in_hand < max_in_hand && (m = bc_kafka_consume(in->jobs, 0));
         n++)
        take(in, m);
    /* Back-pressure: stop fetching instead of buffering without bound,
     * and fetch again below half of it: 2 * in_hand < max, not in_hand
     * < max / 2, which with a maximum of 1 never holds (0 < 0). */
    if (!in->paused && in->in_hand >= max_in_hand) {
        bc_kafka_pause(in->jobs, 1);
        in->paused = 1;
    } else if (in->paused && 2 * in->in_hand < max_in_hand) {
        bc_kafka_pause(in->jobs, 0);
        in->paused = 0;
    }
    return n == 500;
}

void bc_intake_unlink_gone(bc_wbatch *b)
{
    bc_job **pj = &b->head, *last = NULL;

    while (*pj) {
        if ((*pj)->gone) {
            *pj = (*pj)->next_wait;
            continue;
        }
        last = *pj;
        pj = &(*pj)->next_wait;
    }
    b->tail = last;
}

int bc_wbatch_slot_freed(bc_wbatch *list, const char *batch, const char *tenant,
                         long long soon)
{
    bc_wbatch *own = NULL;

    for (bc_wbatch *b = list; b; b = b->next)
        if (!strcmp(b->id, batch)) {
            own = b;
            b->retry_at = 0;
            b->misses = 0;
            if (b->free_hint >= 0)
                b->free_hint++;
        }
    /* With jobs waiting here the batch takes its slot back itself. Without,
     * the slot goes to another batch of the tenant within a pass of the
     * scheduler, and that batch's jobs, turned away meanwhile, would wait
     * out a back-off of up to 100 ms (bc_claim.c): every 5,000-recipient
     * batch that followed another cost a second or two of refills 60-100
     * ms late (the soak's refill stalls, bench/RESULTS.md). */
    if ((own && own->head) || !tenant)
        return 0;
    for (bc_wbatch *b = list; b; b = b->next)
        if (b != own && b->head && b->retry_at > soon && !strcmp(b->tenant, tenant))
            b->retry_at = soon;
    return 1;
}

void bc_intake_rotate(bc_intake *in, bc_wbatch *last)
{
    if (last && last->next) {
        bc_wbatch *t = last->next;

        while (t->next)
            t = t->next;
        t->next = in->batches;
        in->batches = last->next;
        last->next = NULL;
    }
    for (bc_wbatch **pb = &in->batches; *pb;) {
        bc_wbatch *b = *pb;

        if (!b->head) {
            *pb = b->next;
            free(b);
            continue;
        }
        pb = &b->next;
    }
}
