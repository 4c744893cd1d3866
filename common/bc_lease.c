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

int bc_lease_grant(int tenant_limit, long reserved, int want)
{
    long room = tenant_limit - reserved;

    if (want < 0 || reserved < 0 || room < 0 || (room == 0 && want > 0))
        return -1;
    return want < room ? want : (int)room;
}

long bc_lease_renew_ms(long ttl_s)
{
    long ms = ttl_s * 1000 / 3;

    return ms < 100 ? 100 : ms;
}
