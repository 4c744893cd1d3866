/* sim_heap: min-heaps of calls and of timed events by due time. */
#include <stdlib.h>

#include "sim_heap.h"

static void heap_swap(sim *s, size_t a, size_t b)
{
    call *t = s->heap[a];

    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_idx = (int)a;
    s->heap[b]->heap_idx = (int)b;
}

static void heap_up(sim *s, size_t i)
{
    while (i && s->heap[(i - 1) / 2]->due > s->heap[i]->due) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(sim *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && s->heap[l]->due < s->heap[m]->due)
            m = l;
        if (r < s->nheap && s->heap[r]->due < s->heap[m]->due)
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

void sim_heap_push(sim *s, call *c)
{
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 1024;
        s->heap = realloc(s->heap, s->capheap * sizeof *s->heap);
    }
    c->heap_idx = (int)s->nheap;
    s->heap[s->nheap++] = c;
    heap_up(s, s->nheap - 1);
}

call *sim_heap_pop(sim *s)
{
    call *c = s->heap[0];

    heap_swap(s, 0, s->nheap - 1);
    s->nheap--;
    if (s->nheap)
        heap_down(s, 0);
    c->heap_idx = -1;
    return c;
}

void sim_heap_fix(sim *s, call *c)
{
    heap_up(s, (size_t)c->heap_idx);
    heap_down(s, (size_t)c->heap_idx);
}

static void tev_swap(sim *s, size_t a, size_t b)
{
    struct tev t = s->tev[a];

    s->tev[a] = s->tev[b];
    s->tev[b] = t;
}

void sim_heap_tev_push(sim *s, call *c, long long due, int kind)
{
    size_t i;

    if (s->ntev == s->captev) {
        size_t cap = s->captev ? s->captev * 2 : 256;
        struct tev *v = realloc(s->tev, cap * sizeof *v);
        if (!v)
            return;
        s->tev = v;
        s->captev = cap;
    }
    i = s->ntev++;
    s->tev[i] = (struct tev){ due, c, c->gen, kind };
    c->refs++;
    while (i && s->tev[(i - 1) / 2].due > s->tev[i].due) {
        tev_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    /* The loop may be asleep for up to 50 ms; a Say at 5 ms/s is shorter. */
    curl_multi_wakeup(s->multi);
}

struct tev sim_heap_tev_pop(sim *s)
{
    struct tev top = s->tev[0];
    size_t i = 0;

    s->tev[0] = s->tev[--s->ntev];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->ntev && s->tev[l].due < s->tev[m].due)
            m = l;
        if (r < s->ntev && s->tev[r].due < s->tev[m].due)
            m = r;
        if (m == i)
            break;
        tev_swap(s, i, m);
        i = m;
    }
    return top;
}
