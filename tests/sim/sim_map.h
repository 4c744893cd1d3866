/* sim_map: the carrier simulator's small string-keyed map (calls by sid,
 * counts by batch and tenant, ...). Not thread-safe: the simulator's mutex
 * guards every map. Its buckets are open for iteration. */
#ifndef SIM_MAP_H
#define SIM_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sim_map_ent {
    struct sim_map_ent *next;
    void *val;
    char key[];              /* in the entry's allocation: one per put */
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

/* A set of strings by their 64-bit hash, counting how often each was
 * added: the attempt ids the carrier was asked to dial. One array, open
 * addressing, no allocation per entry: a map entry and a copied key per
 * dial, kept for the whole run, fragmented the heap of a soak's simulator
 * until its malloc and free cost it half as much again a call by minute
 * 60 (bench/RESULTS.md, thirty-second session). Two strings with the same
 * 62 bits of hash count as one: the ledger would report a dial twice that
 * was not (about one chance in 10^6 over 3 million ids), never miss one;
 * only a set that cannot grow (out of memory) stops counting. */
typedef struct sim_idset {
    uint64_t *v;
    size_t cap, n;
} sim_idset;

/* Adds k; returns how many times it was added before (0, 1, 2, 3 at most). */
int sim_idset_add(sim_idset *s, const char *k);
/* Makes room for n strings at once. */
void sim_idset_reserve(sim_idset *s, size_t n);
/* Frees s and empties it. */
void sim_idset_free(sim_idset *s);

#endif
