/* bc_intake: the jobs a worker consumed and has not finished with. Each
 * waits in its batch's queue until a claim takes it, drops it or puts it
 * back in the backlog, and keeps its Kafka message until then: a
 * partition's offset is stored only once every job before it on that
 * partition is done, so a worker that dies loses nothing. */
#ifndef BC_INTAKE_H
#define BC_INTAKE_H

#include "bc_kafka.h"
#include "bc_log.h"

typedef struct bc_intake bc_intake;

typedef struct bc_job bc_job;
struct bc_job {
    bc_job *next_wait;        /* in its batch's wait queue */
    bc_job *next_part;        /* in its partition's offset order */
    rd_kafka_message_t *msg;  /* kept until its offset can be stored */
    int done;
    int gone;                 /* taken off its batch's wait queue this turn */
    int tried;                /* offered to a claim once (untried counts the rest) */
    int attempt;
    char recipient[48], batch[48], tenant[48];
};

/* A batch with jobs waiting in this worker. */
typedef struct bc_wbatch bc_wbatch;
struct bc_wbatch {
    bc_wbatch *next;
    char id[48], tenant[48];
    bc_job *head, *tail;
    long long retry_at;       /* no slot free: try again then */
    /* Slots known free: -1 unknown (try a fair share of jobs), else the
     * ends of this batch's calls seen since a claim found none free. A
     * claim sends no more jobs than that (at least one, a probe: another
     * worker may have ended calls), so jobs that cannot get a slot are not
     * looked up again and again. */
    int free_hint;
    int misses;               /* claims in a row that found no slot */
};

/* Takes the jobs of the consumer jobs (borrowed; it must outlive the
 * intake). NULL out of memory. */
bc_intake *bc_intake_new(bc_kafka *jobs, bc_log *log);
/* Gives every message back to librdkafka: call it before the consumer is
 * freed. NULL is a no-op. */
void bc_intake_free(bc_intake *in);

/* Consumes up to 500 jobs while fewer than max_in_hand are held, and
 * pauses the consumer at max_in_hand (back-pressure), resuming it below
 * half of that. Returns 1 if it stopped at 500 (more may be waiting). */
int bc_intake_fetch(bc_intake *in, long max_in_hand);
/* Jobs consumed and not yet done. */
long bc_intake_in_hand(const bc_intake *in);
/* Jobs waiting that no claim was offered yet (a test's barrier: the worker
 * has looked at everything it consumed). */
long bc_intake_untried(const bc_intake *in);
/* A claim was offered j. */
void bc_intake_tried(bc_intake *in, bc_job *j);

/* The batches with jobs waiting, in the order their turn comes. */
bc_wbatch *bc_intake_batches(bc_intake *in);
/* Drops the jobs marked gone from b's wait queue. */
void bc_intake_unlink_gone(bc_wbatch *b);
/* Marks j done (claimed, dropped or put back: durable) and stores every
 * offset this allows. j may be freed. */
void bc_intake_done(bc_intake *in, bc_job *j);
/* A call of batch (of tenant) ended, so a slot of it is free: its waiting
 * jobs, in list (bc_intake_batches), try at once. If none of its jobs waits
 * there, the batch is running out of work and the scheduler hands its
 * slots to the tenant's other batches (give_back, grow): their jobs try
 * again by soon, not at the end of a longer back-off. Returns 1 in that
 * case (the batch is draining), else 0. */
int bc_wbatch_slot_freed(bc_wbatch *list, const char *batch, const char *tenant,
                         long long soon);
/* The batches after last (served this turn) go first next turn, and
 * batches with no job waiting are forgotten. */
void bc_intake_rotate(bc_intake *in, bc_wbatch *last);

#endif
