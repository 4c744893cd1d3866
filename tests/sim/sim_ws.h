/* sim_ws: the carrier simulator's side of Twilio Media Streams. For a
 * <Connect><Stream> it opens a WebSocket (TLS) client connection to the
 * agent with libwebsockets and speaks Twilio's protocol on it: connected,
 * start (with the <Parameter>s as customParameters), a few media frames of
 * u-law silence, and stop when the call hangs up. One libwebsockets context
 * runs in a service thread of its own; libwebsockets is not thread-safe, so
 * other threads only queue work for it and wake it (lws_cancel_service). */
#ifndef SIM_WS_H
#define SIM_WS_H

#include <jansson.h>

#include "bc_err.h"

typedef struct sim_ws sim_ws;

/* What happened to a stream, told to the owner. */
enum {
    SIM_WS_OPEN,          /* the handshake succeeded (101) */
    SIM_WS_STARTED,       /* the start message was sent */
    SIM_WS_FAILED,        /* could not connect; code is Twilio's error */
    SIM_WS_AGENT_CLOSED,  /* the agent closed the socket before stop */
    SIM_WS_STOPPED,       /* the stop message was sent (we hung up) */
};

/* Called from the service thread, none of our locks held; owner and gen
 * are what sim_ws_open was given. */
typedef void (*sim_ws_event_fn)(void *ud, void *owner, unsigned gen, int what, int code);

typedef struct sim_ws_stream {
    const char *url;            /* wss://host[:port]/path */
    const char *account_sid, *call_sid;
    const json_t *params;       /* customParameters (copied) */
    int media_frames;           /* media messages to send, one each 20 ms */
    void *owner;
    unsigned gen;
} sim_ws_stream;

/* ca_file: PEM of the CAs trusted for agents' certificates; NULL or "" for
 * the system's. NULL with err set on failure. */
sim_ws *sim_ws_new(const char *ca_file, sim_ws_event_fn fn, void *ud, bc_err *err);
/* Queues a connection; returns its id (never 0). A malformed url is told
 * as SIM_WS_FAILED like a refused connection. Writes the stream's sid
 * ("MZ" + 32 hex) to sid_out (cap bytes). */
unsigned long sim_ws_open(sim_ws *w, const sim_ws_stream *st, char *sid_out, size_t cap);
/* Sends stop and closes the connection id; nothing if it is already gone. */
void sim_ws_stop(sim_ws *w, unsigned long id);
/* Closes every connection and stops the thread. NULL is a no-op. */
void sim_ws_free(sim_ws *w);

#endif
