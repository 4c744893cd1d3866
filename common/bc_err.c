#include "bc_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void bc_err_set(bc_err *err, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void bc_err_wrap(bc_err *err, const char *fmt, ...)
{
    char ctx[BC_ERR_MAX], old[BC_ERR_MAX];
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%.200s: %.300s", ctx, old);
}

const char *bc_err_msg(const bc_err *err)
{
    return err ? err->msg : "";
}
