/* sim_map: the carrier simulator's small string-keyed map (calls by sid,
 * counts by batch and tenant, ...). Not thread-safe: the simulator's mutex
 * guards every map. Its buckets are open for iteration. */
#ifndef SIM_MAP_H
#define SIM_MAP_H

#include <stddef.h>

typedef struct sim_map_ent {
    struct sim_map_ent *next;
    char *key;
    void *val;
} sim_map_ent;

typedef struct sim_map {
    sim_map_ent **b;
    size_t nb, n;
} sim_map;

/* The value stored under k, or NULL. */
void *sim_map_get(sim_map *m, const char *k);
/* Stores v under a copy of k (takes v); a key already there is not
 * replaced but shadowed: callers look up first. */
void sim_map_put(sim_map *m, const char *k, void *v);
/* Makes room for n entries at once. Growing doubles the buckets and moves
 * every entry, under the simulator's mutex: at 2^18 calls that held every
 * request and callback for a moment (bench/RESULTS.md, twenty-ninth
 * session), which a long run reserves away (--expect-calls). */
void sim_map_reserve(sim_map *m, size_t n);
/* Removes k's entry and returns its value (NULL when k is not there). */
void *sim_map_del(sim_map *m, const char *k);
/* The FNV-1a hash of k, as the map buckets it (the soak picks the batches
 * the simulator keeps with the same function: bench/soak.py). */
size_t sim_map_hash(const char *k);
/* Frees every entry (and its value with free_val, unless NULL) and empties m. */
void sim_map_free(sim_map *m, void (*free_val)(void *));

#endif
