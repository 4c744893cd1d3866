/* bc_err: the "why" of a failed call, carried up to where it is handled. */
#ifndef BC_ERR_H
#define BC_ERR_H

#include <stddef.h>

#define BC_ERR_MAX 512

typedef struct bc_err {
    char msg[BC_ERR_MAX];
} bc_err;

/* Sets err's message (printf format). A NULL err is allowed and ignored. */
void bc_err_set(bc_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes context to err's message: "ctx: old message". */
void bc_err_wrap(bc_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns the message, or "" for a NULL err. */
const char *bc_err_msg(const bc_err *err);

#endif
