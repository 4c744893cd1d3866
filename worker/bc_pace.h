/* bc_pace: the carrier's pace (calls per second for the account), a token
 * bucket that holds one token: dials go out evenly, never in a burst that
 * the carrier's own bucket, filled on its own clock, might not have room
 * for. Over the pace a claim waits in Kafka's order; it is not tried, so
 * the carrier never has to refuse it and no retry is spent. */
#ifndef BC_PACE_H
#define BC_PACE_H

typedef struct bc_pace {
    double cps;        /* 0: no pace */
    double tokens;
    long long at;      /* ms of the last refill */
} bc_pace;

/* A full bucket for cps calls a second, at now (ms). */
void bc_pace_init(bc_pace *p, double cps, long long now);
/* Takes a dial token at now (ms): 1 if one was there (always without a
 * pace), else 0. */
int bc_pace_take(bc_pace *p, long long now);
/* Gives back n tokens taken for dials that did not happen. */
void bc_pace_give(bc_pace *p, int n);

#endif
