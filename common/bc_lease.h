/* bc_lease: the arithmetic of concurrency leases and admission. The leases
 * themselves are rows (see sql/0001_init.sql); these are the numbers around
 * them, kept in one place so every process agrees. */
#ifndef BC_LEASE_H
#define BC_LEASE_H

/* A batch without target_concurrency_limit gets half the tenant's limit,
 * leaving headroom for other calls, and at least 1. */
int bc_lease_default_limit(int tenant_limit);

/* The slots a batch reserves: what it can use, min(limit, recipients
 * still to finish), never below 0. A 2-recipient batch with a limit of 10
 * reserves 2, and as a batch drains its reservation shrinks with it. */
int bc_lease_reservation(int limit, long remaining);

/* The slots a batch that can use want (0 or more: a batch with nothing
 * left to call reserves nothing) is given now beside reserved ones under
 * the tenant's limit: all of them if they are free, else the ones that
 * are (it is admitted and grows as slots free up, so no slot stays idle
 * while a batch waits). -1: not one is free, the batch waits. */
int bc_lease_grant(int tenant_limit, long reserved, int want);

/* The PostgreSQL channel a worker notifies, with its region, when a call of
 * a batch running out of work ended: its slot goes to the tenant's other
 * batches at the scheduler's next pass (give_back, grow), which the
 * notification brings forward. */
#define BC_LEASE_SLOTS_CHANNEL "batchcall_slots"

/* How often a holder renews a lease of ttl_s seconds: a third of it, so two
 * renewals can fail before the lease expires. At least 100 ms. */
long bc_lease_renew_ms(long ttl_s);

#endif
