/* sim_map: a chained hash map keyed by strings (FNV-1a), growing at load
 * factor 1. */
#include <stdlib.h>
#include <string.h>

#include "sim_map.h"

size_t sim_map_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;

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
            n = x->next;
            x->next = b[sim_map_hash(x->key) % nb];
            b[sim_map_hash(x->key) % nb] = x;
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
    sim_map_ent *e;

    if (m->n >= m->nb)   /* grow at load factor 1 */
        rehash(m, m->nb ? m->nb * 2 : 1024);
    e = calloc(1, sizeof *e);
    e->key = strdup(k);
    e->val = v;
    e->next = m->b[sim_map_hash(k) % m->nb];
    m->b[sim_map_hash(k) % m->nb] = e;
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
            free(e->key);
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
            free(e->key);
            free(e);
        }
    free(m->b);
    memset(m, 0, sizeof *m);
}
