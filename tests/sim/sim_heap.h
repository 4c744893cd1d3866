/* sim_heap: the carrier simulator's two timers, min-heaps by due time
 * (real ms): calls by their next status (sim->heap), and the timed events
 * of what a call runs, of its detection and of its recording (sim->tev).
 * The callback thread pops both; s->mu is held for every function here. */
#ifndef SIM_HEAP_H
#define SIM_HEAP_H

#include "sim_model.h"

/* Adds c (not in the heap) by c->due. */
void sim_heap_push(sim *s, call *c);
/* Removes and returns the earliest call; the heap must not be empty. */
call *sim_heap_pop(sim *s);
/* Puts c (in the heap) back in order after its due changed. */
void sim_heap_fix(sim *s, call *c);
/* Adds an event of kind (EV_*) for c's current gen, due at due, and wakes
 * the callback thread. Out of memory, the event is lost. */
void sim_heap_tev_push(sim *s, call *c, long long due, int kind);
/* Removes and returns the earliest event; there must be one. */
struct tev sim_heap_tev_pop(sim *s);

#endif
