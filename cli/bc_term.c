#include "bc_term.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CELL_MAX 64

void bc_term_bar(char *buf, size_t cap, int width, double frac)
{
    size_t pos = 0;
    int full;

    if (!cap)
        return;
    if (width < 1)
        width = 1;
    if (!(frac >= 0))          /* NaN too */
        frac = 0;
    if (frac > 1)
        frac = 1;
    full = (int)(frac * width);
    if (pos + 1 < cap)
        buf[pos++] = '[';
    for (int i = 0; i < width && pos + 1 < cap; i++)
        buf[pos++] = i < full ? '=' : i == full && frac > 0 ? '>' : ' ';
    if (pos + 1 < cap)
        buf[pos++] = ']';
    buf[pos] = '\0';
}

void bc_term_bytes(char *buf, size_t cap, long long n)
{
    static const char *units[] = { "KiB", "MiB", "GiB", "TiB" };
    double v = (double)n;
    int u = -1;

    if (n < 1024) {
        snprintf(buf, cap, "%lld B", n);
        return;
    }
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
}

void bc_term_duration(char *buf, size_t cap, long long s)
{
    if (s < 0)
        snprintf(buf, cap, "-");
    else if (s < 60)
        snprintf(buf, cap, "%llds", s);
    else if (s < 3600)
        snprintf(buf, cap, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, cap, "%lldh%02lldm", s / 3600, s % 3600 / 60);
}

int bc_term_width(int fd, int def)
{
    struct winsize ws;

    if (isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return def;
}

struct bc_term_table {
    int ncols;
    size_t nrows, cap;
    char (*cells)[CELL_MAX];   /* nrows * ncols */
};

bc_term_table *bc_term_table_new(int ncols)
{
    bc_term_table *t = calloc(1, sizeof *t);

    if (t)
        t->ncols = ncols > 0 ? ncols : 1;
    return t;
}

int bc_term_table_row(bc_term_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        void *p = realloc(t->cells, cap * (size_t)t->ncols * sizeof *t->cells);

        if (!p)
            return -1;
        t->cells = p;
        t->cap = cap;
    }
    for (int c = 0; c < t->ncols; c++)
        snprintf(t->cells[t->nrows * (size_t)t->ncols + (size_t)c], CELL_MAX, "%s",
                 cells[c] ? cells[c] : "");
    t->nrows++;
    return 0;
}

void bc_term_table_print(const bc_term_table *t, FILE *out)
{
    int w[32] = { 0 }, right[32] = { 0 }, n = t->ncols < 32 ? t->ncols : 32;

    for (int c = 0; c < n && t->nrows; c++)
        right[c] = t->cells[c][0] == '>';
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < n; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            int len = (int)strlen(s) - (r == 0 && right[c]);
            if (len > w[c])
                w[c] = len;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < n; c++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            if (r == 0 && right[c])
                s++;
            if (c == n - 1 && !right[c])
                fprintf(out, "%s", s);
            else
                fprintf(out, right[c] ? "%*s" : "%-*s", w[c], s);
            if (c < n - 1)
                fputs("  ", out);
        }
        fputc('\n', out);
    }
}

void bc_term_table_free(bc_term_table *t)
{
    if (!t)
        return;
    free(t->cells);
    free(t);
}

void bc_term_frame_init(bc_term_frame *f, FILE *out, int width)
{
    f->out = out;
    f->lines = 0;
    f->width = width > 1 ? width : 80;
}

void bc_term_frame_draw(bc_term_frame *f, const char *const *lines, int n)
{
    /* Back to the first line of the last frame: up that many lines, column 1. */
    if (f->lines > 0)
        fprintf(f->out, "\r\033[%dA", f->lines);
    for (int i = 0; i < n; i++)
        fprintf(f->out, "\r%.*s\033[K\n", f->width - 1, lines[i]);
    /* A shorter frame leaves old lines below it: clear them. */
    for (int i = n; i < f->lines; i++)
        fputs("\033[K\n", f->out);
    if (f->lines > n)
        fprintf(f->out, "\033[%dA", f->lines - n);
    f->lines = n;
    fflush(f->out);
}

void bc_term_cursor(FILE *out, int visible)
{
    fputs(visible ? "\033[?25h" : "\033[?25l", out);
    fflush(out);
}
