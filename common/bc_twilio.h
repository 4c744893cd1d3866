/* bc_twilio: the Twilio wire conventions shared by the carrier adapter, the
 * callback endpoint and the simulator: form bodies and X-Twilio-Signature. */
#ifndef BC_TWILIO_H
#define BC_TWILIO_H

#include <stddef.h>

#define BC_FORM_MAX 48

typedef struct bc_form {
    size_t n;
    char *key[BC_FORM_MAX];
    char *val[BC_FORM_MAX];
} bc_form;

/* Parses an application/x-www-form-urlencoded body (len bytes, need not be
 * NUL-terminated). Pairs past BC_FORM_MAX make it fail. 0 or -1; on -1 the
 * form is empty. Free with bc_form_free. */
int bc_form_parse(const char *body, size_t len, bc_form *f);
void bc_form_free(bc_form *f);
/* First value of key, or NULL. */
const char *bc_form_get(const bc_form *f, const char *key);
/* Adds a pair (copied). 0 or -1. */
int bc_form_add(bc_form *f, const char *key, const char *val);
/* Returns the urlencoded body; caller frees it. */
char *bc_form_encode(const bc_form *f);

/* X-Twilio-Signature: base64 HMAC-SHA1 under token of the full URL followed
 * by every POST parameter, sorted by name, as name + value. 0 or -1. */
int bc_twilio_sign(const char *token, const char *url, const bc_form *params,
                   char *out, size_t cap);
/* 1 if sig is the right signature for url + params, compared in constant
 * time; 0 otherwise. */
int bc_twilio_check(const char *token, const char *url, const bc_form *params,
                    const char *sig);

/* Twilio's call progress events (StatusCallbackEvent), as bits: bit i is
 * BC_TWILIO_EVENTS[i]. */
#define BC_TWILIO_NEVENTS 4
extern const char *const BC_TWILIO_EVENTS[BC_TWILIO_NEVENTS];
enum { BC_EV_INITIATED = 1, BC_EV_RINGING = 2, BC_EV_ANSWERED = 4, BC_EV_COMPLETED = 8 };

/* ORs into *bits the events named in words, split on any of seps. 0, or -1
 * with the first unknown word copied to bad (cap bytes). */
int bc_twilio_events(const char *words, const char *seps, int *bits, char *bad, size_t cap);

#endif
