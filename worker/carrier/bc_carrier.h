/* bc_carrier: the carrier adapter. Places calls through a Twilio-style REST
 * API with libcurl multi, many requests in flight from one thread. */
#ifndef BC_CARRIER_H
#define BC_CARRIER_H

#include "bc_err.h"
#include "bc_metrics.h"
#include "bc_twilio.h"

typedef struct bc_carrier bc_carrier;

typedef enum {
    BC_DIAL_ACCEPTED = 0,  /* the carrier created the call: sid is set */
    BC_DIAL_PACED,         /* 429: over the carrier's pace; try again later */
    BC_DIAL_REJECTED,      /* 4xx: this call can never be placed as asked */
    BC_DIAL_UNKNOWN,       /* 5xx or network: the carrier may or may not have it */
} bc_dial_result;

typedef struct bc_dial {
    char call_id[48];      /* ours: also in the callback URL */
    char to[20], from[20];
    int timeout_s, time_limit_s;
    char callback_url[512];
    /* With answering-machine detection, its verdict comes here, in the
     * background (AsyncAmd): the callee hears the agent at once. */
    char amd_url[512];
    /* Recorded when set; the recording is announced here. */
    int record;
    char recording_url[512];
    /* How the answered call reaches its agent (bc_agent_instructions): one
     * of twiml (inline TwiML) or url (the agent's own TwiML URL, fetched
     * with GET). The caller's strings: the carrier keeps copies. */
    char *twiml, *url;
    /* The caller's context, handed back untouched. */
    char batch_id[48];
    long long lease_token;
} bc_dial;

/* Copies src into dst with copies of its strings. 0, or -1 (dst empty). */
int bc_dial_copy(bc_dial *dst, const bc_dial *src);
/* Frees d's strings. */
void bc_dial_clear(bc_dial *d);

/* Called from bc_carrier_perform for each finished dial. sid is the carrier's
 * call id when accepted; why explains a failure. */
typedef void (*bc_dial_done)(void *ud, const bc_dial *d, bc_dial_result r,
                             const char *sid, const char *why);

/* base_url: "http://127.0.0.1:8090"; account and token for Basic auth. */
bc_carrier *bc_carrier_new(const char *base_url, const char *account,
                           const char *token, long timeout_ms, bc_dial_done done, void *ud,
                           bc_err *err);
void bc_carrier_free(bc_carrier *c);

/* Asks the carrier to tell who answers each call from now on (Twilio's
 * MachineDetection: "DetectMessageEnd" waits for a voicemail's beep,
 * "Enable" answers sooner; "off" or "" asks nothing). Its answer comes as
 * AnsweredBy on the status callbacks. 0, or -1 for an unknown mode. */
int bc_carrier_machine_detection(bc_carrier *c, const char *mode, bc_err *err);
/* The status callbacks asked of the carrier for each call from now on
 * (Twilio's StatusCallbackEvent): a space-separated list of initiated,
 * ringing, answered and completed. completed is always asked: it ends the
 * attempt. Unknown words fail. 0 or -1. */
int bc_carrier_events(bc_carrier *c, const char *events, bc_err *err);
/* Called from bc_carrier_perform for each finished update of a live call
 * (bc_carrier_update): ok, or why not. */
typedef void (*bc_update_done)(void *ud, const char *call_id, int ok, const char *why);
void bc_carrier_on_update(bc_carrier *c, bc_update_done done);

/* Asks the carrier to change the live call sid (ours: call_id): f is
 * Twilio's update form, e.g. Status=completed (hang up), Status=canceled
 * (stop ringing) or Twiml (play something instead). 0 or -1. */
int bc_carrier_update(bc_carrier *c, const char *sid, const char *call_id, const bc_form *f,
                      bc_err *err);

/* Starts a dial (d is copied). 0 or -1. */
int bc_carrier_dial(bc_carrier *c, const bc_dial *d, bc_err *err);
/* Drives transfers and reports finished dials, first waiting up to
 * timeout_ms for one of them to make progress or for wake_fd to become
 * readable (-1: none; without it and with no transfer, no wait). */
void bc_carrier_perform(bc_carrier *c, int timeout_ms, int wake_fd);
/* Observes each dial's dispatch latency (request sent to the carrier's
 * answer, as libcurl timed it) into hist, a histogram; NULL stops. */
void bc_carrier_observe(bc_carrier *c, bc_metric *hist);
/* Dials in flight. */
int bc_carrier_inflight(const bc_carrier *c);

#endif
