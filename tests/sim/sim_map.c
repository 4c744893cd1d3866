/* sim_map: a chained hash map keyed by strings (FNV-1a), growing at load
 * factor 1. */
#include <stdlib.h>
#include <string.h>

#include "sim_map.h"

size_t sim_map_hash(const char *s)
{
    size_t h = 14695981039346656037ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

void *sim_map_get(sim_map *m, const char *k)
{
    if (!m->nb)
        return NULL;
    for (sim_map_ent *e = m->b[sim_map_hash(k) % m->nb]; e; e = e->next)
        if (!strcmp(e->key, k))
            return e->val;
    return NULL;
}

/* Rehashes m into nb buckets. */
static void rehash(sim_map *m, size_t nb)
{
    sim_map_ent **b = calloc(nb, sizeof *b);

    if (!b)
        return;   /* chains grow longer; lookups still work */
    for (size_t i = 0; i < m->nb; i++)
        for (sim_map_ent *x = m->b[i], *n; x; x = n) {
            size_t to = sim_map_hash(x->key) % nb;

            n = x->next;
            x->next = b[to];
            b[to] = x;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void sim_map_reserve(sim_map *m, size_t n)
{
    size_t nb = m->nb ? m->nb : 1024;

    while (nb < n)
        nb *= 2;
    if (nb > m->nb)
        rehash(m, nb);
}

void sim_map_put(sim_map *m, const char *k, void *v)
{
    size_t len = strlen(k) + 1, i;
    sim_map_ent *e;

    if (m->n >= m->nb)   /* grow at load factor 1 */
        rehash(m, m->nb ? m->nb * 2 : 1024);
    if (!(e = malloc(sizeof *e + len)))
        return;
    memcpy(e->key, k, len);
    e->val = v;
    i = sim_map_hash(k) % m->nb;
    e->next = m->b[i];
    m->b[i] = e;
    m->n++;
}

void *sim_map_del(sim_map *m, const char *k)
{
    sim_map_ent **p;

    if (!m->nb)
        return NULL;
    for (p = &m->b[sim_map_hash(k) % m->nb]; *p; p = &(*p)->next)
        if (!strcmp((*p)->key, k)) {
            sim_map_ent *e = *p;
            void *v = e->val;

            *p = e->next;
            free(e);
            m->n--;
            return v;
        }
    return NULL;
}

void sim_map_free(sim_map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->nb; i++)
        for (sim_map_ent *e = m->b[i], *n; e; e = n) {
            n = e->next;
            if (free_val)
                free_val(e->val);
            free(e);
        }
    free(m->b);
    memset(m, 0, sizeof *m);
}

/* A slot: 0 empty, else the key's 62 low hash bits (never 0) and, in the
 * top two, the times it was added (1-3). */
#define ID_MASK ((1ULL << 62) - 1)
#define ID_KEY(h) (((h) & ID_MASK) | 1)

static void idset_grow(sim_idset *s, size_t cap)
{
    uint64_t *v = calloc(cap, sizeof *v);

    if (!v)
        return;   /* full sets fail to add (below) */
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i]) {
            size_t j = (s->v[i] & ID_MASK) % cap;
            while (v[j])
                j = (j + 1) % cap;
            v[j] = s->v[i];
        }
    free(s->v);
    s->v = v;
    s->cap = cap;
}

void sim_idset_reserve(sim_idset *s, size_t n)
{
    size_t cap = s->cap ? s->cap : 1024;

    while (cap < 2 * n)
        cap *= 2;
    if (cap > s->cap)
        idset_grow(s, cap);
}

int sim_idset_add(sim_idset *s, const char *k)
{
    uint64_t key = ID_KEY((uint64_t)sim_map_hash(k));
    size_t i;

    if (2 * (s->n + 1) > s->cap)   /* load at most a half */
        idset_grow(s, s->cap ? 2 * s->cap : 1024);
    if (2 * (s->n + 1) > s->cap)
        return 0;
    for (i = key % s->cap; s->v[i]; i = (i + 1) % s->cap)
        if ((s->v[i] & ID_MASK) == key) {
            int before = (int)(s->v[i] >> 62);

            if (before < 3)
                s->v[i] = key | ((uint64_t)(before + 1) << 62);
            return before;
        }
    s->v[i] = key | (1ULL << 62);
    s->n++;
    return 0;
}

void sim_idset_free(sim_idset *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}
