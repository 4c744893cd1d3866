/* bc_file: a file the CLI is given (a recipients CSV, a DNC list, the time
 * zone prefixes), read whole. */
#ifndef BC_FILE_H
#define BC_FILE_H

#include <stddef.h>

#include "bc_err.h"

/* Reads the file at path into *buf (caller frees; bytes, not a string) and
 * its size into *len. -1 with err set ("cannot read <path>: ...", or
 * "<path> is larger than <n> MiB") if it cannot be read or holds more than
 * max bytes. */
int bc_file_read(const char *path, size_t max, char **buf, size_t *len, bc_err *err);

#endif
