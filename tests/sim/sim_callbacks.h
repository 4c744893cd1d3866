/* sim_callbacks: the carrier simulator's callback thread. It moves each
 * call through its statuses when they are due (sim->heap) and sends the
 * signed status callbacks, in order, with Twilio's retries and the
 * callback faults tests queued; it runs the timed events of TwiML,
 * detection and recording (sim->tev), and fetches TwiML of a Url. All
 * HTTP goes through one libcurl multi handle, owned by this thread. */
#ifndef SIM_CALLBACKS_H
#define SIM_CALLBACKS_H

#include "sim_model.h"

/* The thread's body (pthread_create); arg is the sim. Returns once
 * sim->stop is set. */
void *sim_callbacks_loop(void *arg);

/* Frees the easy handles the thread kept, once it has returned. */
void sim_callbacks_free(sim *s);

#endif
