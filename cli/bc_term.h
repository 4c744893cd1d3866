/* bc_term: what the CLI draws for people: bars, sizes, durations, tables,
 * and frames redrawn in place on a terminal. Everything but the bc_term_frame
 * calls is pure formatting into a caller's buffer, so it is unit-tested. */
#ifndef BC_TERM_H
#define BC_TERM_H

#include <stddef.h>
#include <stdio.h>

/* A progress bar of exactly width cells between brackets: "[=====>    ]".
 * frac is clamped to [0, 1]. Writes at most cap bytes (NUL included). */
void bc_term_bar(char *buf, size_t cap, int width, double frac);

/* Bytes for people: "812 B", "1.5 KiB", "12.0 MiB". */
void bc_term_bytes(char *buf, size_t cap, long long n);

/* Seconds for people: "45s", "3m05s", "2h07m"; negative is "-". */
void bc_term_duration(char *buf, size_t cap, long long secs);

/* Columns of a terminal on fd, or def when fd is not one. */
int bc_term_width(int fd, int def);

/* A table: add a header row, then rows, then print with each column as wide
 * as its widest cell (2 spaces apart; cells are copied, at most 64 bytes).
 * Columns whose header starts with '>' are right-aligned (the '>' is not
 * printed). */
typedef struct bc_term_table bc_term_table;
bc_term_table *bc_term_table_new(int ncols);
/* Adds a row of ncols cells (NULL prints as ""). -1 when out of memory. */
int bc_term_table_row(bc_term_table *t, const char *const *cells);
void bc_term_table_print(const bc_term_table *t, FILE *out);
void bc_term_table_free(bc_term_table *t);   /* NULL is a no-op */

/* A frame of lines redrawn in place: each draw moves the cursor back over
 * the previous frame's lines and overwrites them, clearing what is left of
 * each line, so a terminal shows one frame that changes. Lines are cut to
 * the terminal's width so none wraps (a wrapped line would throw the count
 * off). */
typedef struct bc_term_frame {
    FILE *out;
    int lines;       /* lines drawn by the last draw */
    int width;
} bc_term_frame;

void bc_term_frame_init(bc_term_frame *f, FILE *out, int width);
/* Draws n lines (no newlines inside them). */
void bc_term_frame_draw(bc_term_frame *f, const char *const *lines, int n);
/* Hides or shows the cursor while frames are drawn. */
void bc_term_cursor(FILE *out, int visible);

#endif
