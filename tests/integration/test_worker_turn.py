"""The worker's loop frees a slot between two of a turn's writes: an end
that arrives while one of them waits is written, and its slot claimed and
dialed again, before the turn's next write (bc_worker_tick; bench/RESULTS.md,
seventeenth session). Before, it waited for the whole turn."""
import time

import psycopg2
import requests

from conftest import wait_until
from test_carrier_faults import Region, extra  # noqa: F401 (extra: a fixture)
from test_dispatch import create, dials, metric
from test_sim_strict import signature

# Kafka hands a message the API has published (the callback's answer waits
# for the broker's acknowledgement) to the worker's consumer in its own
# thread, even while the loop waits on PostgreSQL; nothing outside the
# worker shows when that fetch is done, so the test gives it this long.
FETCHED_S = 1.0


def callback(url, form):
    r = requests.post(url, data=form, headers={"X-Twilio-Signature": signature(url, form)},
                      timeout=10)
    assert r.status_code in (200, 204), r.text


def status(d, st, **more):
    callback(d["params"]["StatusCallback"], dict({
        "AccountSid": "ACsimulator", "CallSid": d["call_sid"], "CallStatus": st,
        "To": d["to"], "From": d["from"]}, **more))


class Lock:
    """A call's row locked FOR UPDATE by a transaction of the test's."""

    def __init__(self, stack, call_id):
        self.conn = psycopg2.connect(stack.dsn)
        cur = self.conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        self.pid = cur.fetchone()[0]
        cur.execute("SELECT 1 FROM calls WHERE id = %s FOR UPDATE", (call_id,))

    def waiting(self, stack):
        """The worker's statements waiting for this lock."""
        return stack.sql("SELECT left(query, 60) FROM pg_stat_activity"
                         " WHERE %s = ANY(pg_blocking_pids(pid))", self.pid)

    def release(self):
        self.conn.commit()
        self.conn.close()


def test_an_end_that_comes_while_a_write_waits_is_served_before_the_next_write(stack, extra):
    # Calls ring for a minute (their first ringing comes after 20 s): until
    # then nothing moves but what the test sends. The leases outlive the
    # test, whose worker cannot renew them while it waits.
    region = Region(stack, extra,
                    sim_env={"BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "600"},
                    sched_env={"BC_LEASE_TTL": "120"}, worker_env={"BC_LEASE_TTL": "120"})
    t = stack.tenant(concurrency=50)
    one = create(stack, t, ["+14485550001", "+14485550002"], limit=1, region="APAC")
    other = create(stack, t, ["+14485550011", "+14485550012", "+14485550013"], limit=3,
                   region="APAC")

    def placed(bid, n):
        """The batch's n dials, once the carrier's answer to each is written."""
        d = dials(stack, bid, sim=region.sim)
        rows = stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s"
                         " AND carrier_call_id IS NOT NULL", bid)[0][0]
        return sorted(d, key=lambda x: x["to"]) if len(d) == n and rows == n else None
    (a,) = wait_until(lambda: placed(one, 1), 30, "A to be placed")
    c, d, e = wait_until(lambda: placed(other, 3), 30, "C, D and E to be placed")
    # B waits in the worker's hand for A's slot.
    wait_until(lambda: metric(region.worker.port, "worker_jobs_in_hand") >= 1, 30, "B in hand")
    locks = []
    try:
        # 1. The worker waits to write that E rings.
        lock_e = Lock(stack, e["call_id"])
        locks.append(lock_e)
        status(e, "ringing")
        wait_until(lambda: lock_e.waiting(stack), 15, "the worker to wait for E")
        # 2. Meanwhile C rings and D's machine detection says human: both
        #    are taken together once E's news is written, and their writes
        #    then wait on C (progress), then on D (verdicts).
        lock_c, lock_d = Lock(stack, c["call_id"]), Lock(stack, d["call_id"])
        locks += [lock_c, lock_d]
        status(c, "ringing")
        callback(d["params"]["AsyncAmdStatusCallback"], {
            "AccountSid": "ACsimulator", "CallSid": d["call_sid"], "AnsweredBy": "human"})
        time.sleep(FETCHED_S)
        lock_e.release()
        wait_until(lambda: lock_c.waiting(stack), 15, "the worker to wait for C")
        # 3. A ends while the worker waits on C.
        status(a, "completed", CallDuration="1")
        time.sleep(FETCHED_S)
        lock_c.release()
        # 4. The turn's next write waits on D; A's slot is B's already.
        wait_until(lambda: lock_d.waiting(stack), 15, "the worker to wait for D")
        wait_until(lambda: len(dials(stack, one, sim=region.sim)) == 2, 15,
                   "B to be dialed while the turn's next write waits")
        assert lock_d.waiting(stack), "the write on D no longer waits: the check proved nothing"
        assert stack.sql("SELECT status FROM calls WHERE id = %s", a["call_id"])[0][0] == "completed"
    finally:
        for lk in locks:
            if not lk.conn.closed:
                lk.release()
    # The other calls end now, so nothing of the test's is left live.
    b = next(x for x in dials(stack, one, sim=region.sim) if x["call_id"] != a["call_id"])
    wait_until(lambda: stack.sql("SELECT carrier_call_id FROM calls WHERE id = %s",
                                 b["call_id"])[0][0], 30, "B to be placed")
    for x in (b, c, d, e):
        status(x, "completed", CallDuration="1")
    wait_until(lambda: not stack.sql("SELECT 1 FROM recipients WHERE batch_id IN (%s, %s)"
                                     " AND status NOT IN ('completed', 'failed')", one, other),
               30, "every recipient of both batches to finish")
