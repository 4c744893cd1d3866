/* bc_csv: recipient lists uploaded as CSV (RFC 4180). */
#ifndef BC_CSV_H
#define BC_CSV_H

#include <jansson.h>

#include <stddef.h>

#include "bc_err.h"

#define BC_CSV_MAX_COLUMNS 100

/* Parses len bytes of CSV (need not be NUL-terminated) into recipients.
 *
 * The input is RFC 4180: fields separated by ',', records ended by CRLF or
 * LF, a field in double quotes may hold ',', line breaks and '""' for a
 * quote. A UTF-8 byte order mark is skipped, and so are blank lines. The
 * first record is the header and names the columns (surrounding spaces
 * dropped): exactly one of phone_number, to_number or number (any case) is
 * the number to call, an optional from_number is the caller id, and every
 * other column becomes a string in dynamic_variables, named as in the
 * header. A row with fewer fields than the header has "" for the rest.
 * Numbers are normalised with bc_e164_normalize; an empty from_number is
 * left out.
 *
 * Returns a new array, possibly empty, of
 *   {"to_number": "+1...", "from_number"?: "+1...", "dynamic_variables": {...}}
 * which the caller decrefs. Returns NULL with err set, naming the line
 * ("line 7: ..."), when the quoting is bad, the header lacks a number column
 * or repeats a column, a row has more fields than the header, a number is
 * not E.164, a field is not UTF-8 or holds a NUL byte, or there are more
 * than max_rows rows; and when len is over max_bytes. */
json_t *bc_csv_recipients(const char *buf, size_t len, size_t max_rows,
                          size_t max_bytes, bc_err *err);

#endif
