#include "bc_failpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bc_failpoint(const char *name)
{
    const char *armed = getenv("BC_FAILPOINT");

    if (!armed || strcmp(armed, name))
        return;
    fprintf(stderr, "{\"event\":\"failpoint.hit\",\"failpoint\":\"%s\"}\n", name);
    fflush(stderr);
    /* _exit, not abort: no core file, no atexit work, like a kill -9. */
    _exit(86);
}
