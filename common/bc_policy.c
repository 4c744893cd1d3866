#include "bc_policy.h"

#include <string.h>

/* Each policy stop and its words on the surfaces that have their own. */
static const struct {
    const char *reason;
    const char *rymi;
} stops[] = {
    { BC_POLICY_DNC, "dnc_listed" },
    { BC_POLICY_LEGAL_HOURS, BC_POLICY_LEGAL_HOURS },
    { BC_POLICY_CREDITS, "insufficient_credits" },
};

static int find(const char *reason)
{
    for (size_t i = 0; reason && i < sizeof stops / sizeof stops[0]; i++)
        if (!strcmp(stops[i].reason, reason))
            return (int)i;
    return -1;
}

int bc_policy_stop(const char *reason)
{
    return find(reason) >= 0;
}

const char *bc_policy_word(const char *surface, const char *reason)
{
    int i = find(reason);

    if (i < 0 || !surface)
        return reason;
    if (!strcmp(surface, "rymi"))
        return stops[i].rymi;
    return reason;
}
