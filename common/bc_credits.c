#include "bc_credits.h"

#include <string.h>

long long bc_credits_hold(int price, int max_min)
{
    if (price <= 0 || max_min <= 0)
        return 0;
    return (long long)price * max_min;
}

int bc_credits_minutes(long duration_s)
{
    if (duration_s <= 0)
        return 0;
    return (int)((duration_s + 59) / 60);
}

long long bc_credits_cost(const char *status, long duration_s, int price, long long hold)
{
    long long cost;

    /* Carriers bill answered calls only; busy, no-answer, failed and
     * canceled calls cost nothing. */
    if (!status || strcmp(status, "completed") || price <= 0)
        return 0;
    cost = (long long)bc_credits_minutes(duration_s) * price;
    return cost < hold ? cost : hold;
}
