/* sim_twiml: the TwiML the carrier simulator runs when a call is answered,
 * read with libxml2 and checked at create as strictly as Twilio checks it
 * (or more: what Twilio only warns about, the simulator refuses, so a test
 * sees it). Only the verbs a batch-calling agent uses are kept; others are
 * valid TwiML the simulator skips. */
#ifndef SIM_TWIML_H
#define SIM_TWIML_H

#include <jansson.h>
#include <stddef.h>

typedef enum {
    SIM_TW_STREAM,    /* <Connect><Stream url="wss://..."> */
    SIM_TW_SIP,       /* <Dial><Sip>sip:...</Sip></Dial> */
    SIM_TW_SAY,
    SIM_TW_PLAY,
    SIM_TW_PAUSE,
    SIM_TW_HANGUP,
} sim_tw_kind;

typedef struct sim_tw_verb {
    sim_tw_kind kind;
    char *arg;        /* stream url, SIP URI, text said or url played */
    json_t *extra;    /* stream: its <Parameter>s; SIP: its X- headers, decoded */
    int secs;         /* <Pause length> */
} sim_tw_verb;

typedef struct sim_twiml {
    sim_tw_verb *v;
    size_t n;
} sim_twiml;

/* Why a document was refused: Twilio's error code and words for its body. */
typedef struct sim_tw_err {
    int code;
    char msg[200];
} sim_tw_err;

/* Reads len bytes of TwiML. Returns a new document (free it with
 * sim_twiml_free), or NULL with err set: 12100 not well-formed XML, 12102
 * root not <Response>, 31922 a <Stream> url that is not wss://, 13243 a
 * SIP URI that is not sip:/sips:, 13252 a SIP header that is not X-. */
sim_twiml *sim_twiml_parse(const char *xml, size_t len, sim_tw_err *err);
void sim_twiml_free(sim_twiml *doc);    /* NULL is a no-op */

/* Characters (not bytes) of a UTF-8 string: Twilio's 4,000 is in these. */
size_t sim_twiml_chars(const char *s);

#endif
