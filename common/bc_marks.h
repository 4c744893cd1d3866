/* bc_marks: the outbox id handed out at each of a relay's recent runs, so
 * a relay of the rows older than a delay can end its scan of the outbox's
 * primary key at the id handed out that long ago, instead of reading the
 * young rows publishers are about to delete (docs/operations.md, "The
 * outbox relays"). An id is drawn after its transaction began, so every
 * row up to that id is at least that old; created_at still decides. */
#ifndef BC_MARKS_H
#define BC_MARKS_H

/* A minute of runs, at one a second. */
#define BC_MARKS_N 64

typedef struct {
    struct { long long at, id; } m[BC_MARKS_N];
    int n, head;
} bc_marks;

/* Records that id was the last handed out at now_ms, and returns the
 * highest id a relay of rows older than after_ms needs to read: the one
 * recorded after_ms ago or before. Without a mark that old (the first
 * runs, or after_ms beyond the ring) the oldest mark, or id itself. */
long long bc_marks_bound(bc_marks *k, long long now_ms, long long after_ms, long long id);

#endif
