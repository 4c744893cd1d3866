#include "bc_lease.h"

int bc_lease_default_limit(int tenant_limit)
{
    return tenant_limit / 2 > 0 ? tenant_limit / 2 : 1;
}

int bc_lease_reservation(int limit, long remaining)
{
    long n = remaining < limit ? remaining : limit;

    return n > 0 ? (int)n : 0;
}

int bc_lease_admits(int tenant_limit, long reserved, int want)
{
    return want >= 0 && reserved >= 0 && reserved + want <= tenant_limit;
}

long bc_lease_renew_ms(long ttl_s)
{
    long ms = ttl_s * 1000 / 3;

    return ms < 100 ? 100 : ms;
}

long bc_lease_window(int limit, int multiple)
{
    long w = (long)limit * multiple;

    return w < 1 ? 1 : w;
}

long long bc_lease_backoff_ms(long long base_ms, int attempt, double jitter,
                              long long cap_ms)
{
    long long d = base_ms;

    if (jitter < 0.5)
        jitter = 0.5;
    if (jitter >= 1.5)
        jitter = 1.499;
    /* Double without overflowing: stop once past the cap. */
    for (int i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    d = (long long)((double)d * jitter);
    return d > cap_ms ? cap_ms : d;
}

int bc_lease_token_current(long long current, long long presented)
{
    return current > 0 && presented == current;
}
