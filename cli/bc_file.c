#include "bc_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bc_file_read(const char *path, size_t max, char **buf, size_t *len, bc_err *err)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 16, n = 0, got;
    char *p = NULL, *q;

    if (!f) {
        bc_err_set(err, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    do {
        if (n == cap || !p) {
            if (!(q = realloc(p, cap = p ? cap * 2 : cap))) {
                bc_err_set(err, "cannot read %s: out of memory", path);
                goto fail;
            }
            p = q;
        }
        got = fread(p + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            bc_err_set(err, "%s is larger than %zu MiB", path, max >> 20);
            goto fail;
        }
    } while (got > 0);
    if (ferror(f)) {
        bc_err_set(err, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    *buf = p;
    *len = n;
    return 0;
fail:
    fclose(f);
    free(p);
    return -1;
}
