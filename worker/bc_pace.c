#include "bc_pace.h"

void bc_pace_init(bc_pace *p, double cps, long long now)
{
    p->cps = cps;
    p->tokens = 1.0;
    p->at = now;
}

int bc_pace_take(bc_pace *p, long long now)
{
    if (p->cps <= 0)
        return 1;
    p->tokens += (double)(now - p->at) * p->cps / 1000.0;
    if (p->tokens > 1.0)
        p->tokens = 1.0;
    p->at = now;
    if (p->tokens < 1.0)
        return 0;
    p->tokens -= 1.0;
    return 1;
}

void bc_pace_give(bc_pace *p, int n)
{
    if (p->cps > 0)
        p->tokens += n;
}
