#include "bc_marks.h"

long long bc_marks_bound(bc_marks *k, long long now_ms, long long after_ms, long long id)
{
    long long bound = id;

    for (int i = 0; i < k->n; i++) {
        int j = (k->head - 1 - i + BC_MARKS_N) % BC_MARKS_N;

        bound = k->m[j].id;
        if (k->m[j].at <= now_ms - after_ms)
            break;
    }
    k->m[k->head].at = now_ms;
    k->m[k->head].id = id;
    k->head = (k->head + 1) % BC_MARKS_N;
    if (k->n < BC_MARKS_N)
        k->n++;
    return bound;
}
