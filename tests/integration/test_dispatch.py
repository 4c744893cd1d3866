"""The dispatch engine's promises, each on the real stack: nothing lost and
no second dial through crashes and duplicate jobs, the concurrency ceiling,
failover, fairness, cancel, retries, schedules, regions, fencing."""
import json
import os
import signal
import threading
import time
from collections import Counter

import psycopg2
import pytest
import requests
from confluent_kafka import Producer

from conftest import (BUILD, ROOT, Proc, api_proc, batchcall_headers, calls_update_fails_once,
                      cartesia_headers, consume_from_start, free_port, system_settled, wait_until)

TERMINAL = {"completed", "failed", "cancelled"}


class Extra:
    """Processes a test starts, kills or stops itself."""

    def __init__(self, stack, tmp_path):
        self.stack, self.tmp, self.procs = stack, str(tmp_path), []

    def start(self, name, binary, env):
        port = free_port()
        port_env = {"batchcall-worker": "BC_WORKER_PORT", "batchcall-scheduler": "BC_SCHEDULER_PORT",
                    "batchcall-carrier-sim": "BC_SIM_PORT"}[binary]
        p = Proc(name, [os.path.join(BUILD, binary)],
                 dict(self.stack.env, **{port_env: str(port)}, **env), self.tmp)
        p.port = port
        self.procs.append(p)
        self.stack.wait_ready(f"http://127.0.0.1:{port}")
        return p

    def region(self, name, sim_env, sched_env=None, worker_env=None):
        """Region apac of its own: a simulator (sim_env), a scheduler at a
        50 ms tick and a worker. Returns (the simulator's URL, scheduler,
        worker)."""
        sim = self.start(f"sim-{name}", "batchcall-carrier-sim", sim_env)
        url = f"http://127.0.0.1:{sim.port}"
        env = {"BC_REGION": "apac", "BC_CARRIER_URL": url}
        sched = self.start(f"sched-{name}", "batchcall-scheduler",
                           dict(env, BC_SCHEDULER_TICK_MS="50", **(sched_env or {})))
        return url, sched, self.start(f"w-{name}", "batchcall-worker",
                                      dict(env, **(worker_env or {})))

    def stop(self):
        for p in self.procs:
            if p.p.poll() is None:
                os.kill(p.p.pid, signal.SIGCONT)
            p.stop()


@pytest.fixture
def extra(stack, tmp_path):
    e = Extra(stack, tmp_path)
    yield e
    e.stop()


def create(stack, t, numbers, limit, **extra_fields):
    body = {"name": "dispatch", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": limit, "recipients": [{"to_number": n} for n in numbers]}
    body.update(extra_fields)
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def all_terminal(stack, bid, timeout):
    def done():
        rows = stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s GROUP BY 1", bid)
        return rows if rows and all(s in TERMINAL for s, _ in rows) else None
    return wait_until(done, timeout, f"every recipient of {bid} to be terminal", interval=0.5)


def ledger(stack, sim=None):
    return requests.get((sim or stack.sim) + "/ledger", timeout=10).json()


def dials(stack, bid, sim=None):
    return requests.get((sim or stack.sim) + "/ledger/dials", params={"batch_id": bid},
                        timeout=30).json()["dials"]


def assert_one_dial_per_recipient(stack, bid, numbers, limit, sim=None):
    led = ledger(stack, sim)
    assert led["duplicate_call_ids"] == []
    d = dials(stack, bid, sim)
    per_number = Counter(x["to"] for x in d)
    assert set(per_number) == set(numbers)
    assert set(per_number.values()) == {1}, [n for n, c in per_number.items() if c > 1][:5]
    assert led["batches"][bid]["peak_live"] <= limit
    return led


def metric(port, name):
    """The sum of every series of metric name: its one value, or its values
    per label set (worker_calls_finished_total has one per outcome)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_worker_killed_mid_flight_loses_nothing_and_dials_nobody_twice(stack, extra):
    t = stack.tenant(concurrency=100)
    w1 = extra.start("w1", "batchcall-worker", {"BC_LEASE_TTL": "2"})
    w2 = extra.start("w2", "batchcall-worker", {"BC_LEASE_TTL": "2"})
    numbers = [f"+1416{i:07d}" for i in range(2000)]
    bid = create(stack, t, numbers, limit=50)
    wait_until(lambda: metric(w2.port, "worker_claims_total") >= 20, 30, "w2 to be dialing")
    os.kill(w2.p.pid, signal.SIGKILL)
    all_terminal(stack, bid, 180)
    assert_one_dial_per_recipient(stack, bid, numbers, 50)
    assert stack.sql("SELECT count(*) FROM leases WHERE batch_id = %s AND call_id IS NOT NULL",
                     bid)[0][0] == 0
    assert w1.p.poll() is None


def test_an_end_one_worker_could_not_record_for_another_workers_call_is_not_left_open(
        stack, extra):
    """A call's carrier events go to the worker that reads its partition,
    not always the one that dialed it and renews its lease. When that
    worker cannot record the end (a trigger here; in life a deadlock, a
    dropped connection), it lets the call's lease lapse whoever holds it,
    so the reconciler asks the carrier and ends it. It lapsed only leases
    it held itself: the dialer went on renewing, and the call stayed open
    until the quiet-call sweep (300 s), as test_a_worker_killed_mid_flight's
    2,000 recipients once did past its 180 s."""
    sim, _, wa = extra.region("lapse", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
        "BC_SIM_TALK_SECONDS": "1", "BC_SIM_MIX": "completed=1"},
        sched_env={"BC_LEASE_TTL": "2"},
        worker_env={"BC_LEASE_TTL": "2", "PGAPPNAME": "w-lapse-a"})
    wb = extra.start("w-lapse-b", "batchcall-worker",
                     {"BC_REGION": "apac", "BC_CARRIER_URL": sim, "BC_LEASE_TTL": "2",
                      "PGAPPNAME": "w-lapse-b"})
    t = stack.tenant(concurrency=50)
    # The first end a worker writes for a call whose lease the other one
    # holds fails (its holder is "<host>-<pid>-<random>").
    stack.sql("CREATE TABLE lapse_pids (app text PRIMARY KEY, pid text NOT NULL);"
              " INSERT INTO lapse_pids VALUES ('w-lapse-a', %s), ('w-lapse-b', %s)",
              str(wa.p.pid), str(wb.p.pid))
    try:
        with calls_update_fails_once(
                stack, "lapse_end_fails_once",
                "NEW.tenant_id = %s AND OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL",
                t["tenant_id"],
                cond="EXISTS (SELECT 1 FROM leases l, lapse_pids p"
                     "         WHERE l.call_id = NEW.id"
                     "           AND p.app = current_setting('application_name')"
                     "           AND position('-' || p.pid || '-' IN l.holder) = 0)") as reached:
            numbers = [f"+1427{i:07d}" for i in range(40)]
            bid = create(stack, t, numbers, limit=10, region="APAC")
            all_terminal(stack, bid, 60)
            fired = reached()
    finally:
        stack.sql("DROP TABLE lapse_pids")
    assert fired >= 1, "no worker ended a call whose lease the other held"
    failed = [e for w in (wa, wb) for e in w.events("call.end_failed")]
    assert len(failed) == 1, failed
    assert_one_dial_per_recipient(stack, bid, numbers, 10, sim=sim)
    assert stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s GROUP BY 1",
                     bid) == [("completed", 40)]


def test_an_end_that_deadlocks_is_written_again_at_once(stack, extra):
    """Two workers may write the same calls at once (a call's events are
    not always read by its dialer); each writes a turn's calls in call id
    order, and an end statement PostgreSQL still picks as a deadlock's
    victim is run once more at once rather than left to the reconciler."""
    _, _, w = extra.region("deadlock", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
        "BC_SIM_TALK_SECONDS": "1", "BC_SIM_MIX": "completed=1"})
    t = stack.tenant(concurrency=10)
    with calls_update_fails_once(
            stack, "end_deadlocks_once",
            "NEW.tenant_id = %s AND OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL",
            t["tenant_id"], errcode="deadlock_detected") as reached:
        numbers = [f"+1428{i:07d}" for i in range(6)]
        bid = create(stack, t, numbers, limit=3, region="APAC")
        all_terminal(stack, bid, 60)
        fired = reached()
    assert fired >= 2, fired
    assert w.events("call.end_failed") == []
    assert stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s GROUP BY 1",
                     bid) == [("completed", 6)]
    assert stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s", bid)[0][0] == 6


def test_duplicated_jobs_are_not_dialed_twice(stack):
    t = stack.tenant(concurrency=20)
    numbers = [f"+1417{i:07d}" for i in range(60)]
    bid = create(stack, t, numbers, limit=5)
    topic = f"{stack.prefix}.jobs.us"
    c = consume_from_start(stack, "jobs.us", "dup-" + bid)
    jobs, deadline = [], time.monotonic() + 5
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m and not m.error() and json.loads(m.value())["batch_id"] == bid:
            jobs.append((m.key(), m.value()))
    c.close()
    assert jobs, "the batch's jobs are on the topic"
    p = Producer({"bootstrap.servers": stack.brokers})
    for k, v in jobs:
        for _ in range(3):
            p.produce(topic, key=k, value=v)
        # A forged job for a later attempt must not claim either.
        j = json.loads(v)
        j["attempt"] += 1
        p.produce(topic, key=k, value=json.dumps(j))
    p.flush(10)
    all_terminal(stack, bid, 120)
    system_settled(stack)   # every copy taken and dropped
    assert_one_dial_per_recipient(stack, bid, numbers, 5)


def test_a_standby_scheduler_takes_over_from_a_dead_leader(stack, extra):
    env = {"BC_REGION": "apac", "BC_SCHEDULER_TICK_MS": "50"}
    leader = extra.start("sched-a", "batchcall-scheduler", env)
    wait_until(lambda: leader.events("scheduler.leading"), 10, "the first scheduler to lead")
    standby = extra.start("sched-b", "batchcall-scheduler", env)
    extra.start("w-apac", "batchcall-worker", {"BC_REGION": "apac"})
    t = stack.tenant(concurrency=10)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
    numbers = [f"+1418{i:07d}" for i in range(20)]
    bid = create(stack, t, numbers, limit=5, scheduled_at=when, region="APAC")
    assert not standby.events("scheduler.leading")
    os.kill(leader.p.pid, signal.SIGKILL)
    wait_until(lambda: standby.events("scheduler.leading"), 15, "the standby to take over")
    all_terminal(stack, bid, 60)
    first = stack.sql("SELECT min(created_at) >= (SELECT scheduled_at FROM batches WHERE id = %s)"
                      " FROM calls WHERE batch_id = %s", bid, bid)[0][0]
    assert first, "nothing was dialed before its scheduled time"
    assert_one_dial_per_recipient(stack, bid, numbers, 5)


def test_a_small_tenant_is_not_starved_by_a_huge_one(stack):
    big, small = stack.tenant(concurrency=20), stack.tenant(concurrency=10)
    worker = stack.procs["worker"].port
    waits = metric(worker, "worker_lease_waits_total")
    big_ids = [create(stack, big, [f"+1419{b:02d}{i:05d}" for i in range(5000)], limit=20)
               for b in range(20)]

    # The precondition: the big tenant saturates first. Its calls fill its
    # whole concurrency, its released jobs wait at the worker for a slot,
    # and its other batches wait for admission behind it.
    def saturated():
        peak = ledger(stack)["tenants"].get(big["tenant_id"], {}).get("peak_live", 0)
        return peak == 20 and metric(worker, "worker_lease_waits_total") > waits
    wait_until(saturated, 30, "the big tenant to saturate its concurrency", interval=0.1)
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s AND state = 'pending'",
                     big["tenant_id"])[0][0] >= 1
    assert stack.sql("SELECT count(*) FROM recipients r JOIN batches b ON b.id = r.batch_id"
                     " WHERE b.tenant_id = %s AND r.status = 'queued'",
                     big["tenant_id"])[0][0] >= 95000
    t0 = time.monotonic()
    sid = create(stack, small, [f"+1420{i:07d}" for i in range(10)], limit=5)
    first = wait_until(lambda: dials(stack, sid), 10, "the small tenant's first dial", interval=0.02)
    latency = min(d["at_ms"] for d in first) / 1000.0 - t0
    for b in big_ids:
        requests.post(f"{stack.api}/agents/calls/batches/{b}/cancel",
                      headers=cartesia_headers(big["api_key"]), timeout=30)
    print(f"small tenant first dial {latency * 1000:.0f} ms after its POST")
    assert latency <= 1.0


def test_no_dial_after_cancel_returns(stack):
    t = stack.tenant(concurrency=20)
    numbers = [f"+1421{i:07d}" for i in range(400)]
    bid = create(stack, t, numbers, limit=10)
    wait_until(lambda: len(dials(stack, bid)) >= 20, 30, "the batch to be dialing")
    r = requests.post(f"{stack.api}/agents/calls/batches/{bid}/cancel",
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    returned = time.monotonic()
    assert r.status_code == 200
    system_settled(stack)
    late = [d for d in dials(stack, bid) if d["at_ms"] / 1000.0 > returned]
    assert late == []
    all_terminal(stack, bid, 60)
    n = stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s AND status = 'cancelled'", bid)[0][0]
    assert n > 300


def test_retries_stop_at_max_retries_and_back_off(stack):
    t = stack.tenant(concurrency=10)
    busy = [f"+142200{i}0486" for i in range(3)]   # the simulator answers busy
    body = {"from_number": "+14157774444", "agent_id": t["agent_id"], "send_now": True,
            "tasks": [{"to_number": n, "max_retries": 2} for n in busy] +
                     [{"to_number": "+14220009999", "max_retries": 2}]}
    r = requests.post(stack.api + "/batch-call", json=body, headers=batchcall_headers(t), timeout=10)
    assert r.status_code == 201, r.text
    bid = r.json()["data"]["batch_call_id"]
    all_terminal(stack, bid, 60)
    rows = stack.sql("SELECT r.to_number, r.attempts, r.status, array_agg(extract(epoch FROM c.created_at)"
                     " ORDER BY c.attempt), array_agg(extract(epoch FROM c.ended_at) ORDER BY c.attempt)"
                     " FROM recipients r JOIN calls c ON c.recipient_id = r.id"
                     " WHERE r.batch_id = %s GROUP BY 1, 2, 3", bid)
    per = {row[0]: row for row in rows}
    base = 0.2   # BC_RETRY_BASE_MS of the test workers
    for n in busy:
        num, attempts, status, starts, ends = per[n]
        assert attempts == 3 and status == "failed" and len(starts) == 3, per
        for k in (1, 2):
            gap = float(starts[k]) - float(ends[k - 1])
            assert gap >= 0.5 * base * 2 ** (k - 1) - 0.01, (n, k, gap)
    assert per["+14220009999"][1] <= 3
    d = Counter(x["to"] for x in dials(stack, bid))
    assert all(d[n] == 3 for n in busy)


def test_an_eu_worker_never_dials_a_us_batch(stack, extra):
    eu = extra.start("w-eu", "batchcall-worker", {"BC_REGION": "eu"})
    t = stack.tenant(concurrency=10)
    us_id = create(stack, t, [f"+1423{i:07d}" for i in range(30)], limit=5)
    eu_id = create(stack, t, [f"+1424{i:07d}" for i in range(10)], limit=5, region="EU")
    all_terminal(stack, us_id, 60)
    all_terminal(stack, eu_id, 60)
    assert metric(eu.port, "worker_claims_total") == 10   # only the eu batch's
    assert stack.sql("SELECT region FROM batches WHERE id = %s", eu_id)[0][0] == "eu"


def test_a_late_write_after_the_lease_was_taken_over_is_refused(stack, extra):
    """A worker stalls (SIGSTOP) with a dial in flight; its lease expires and
    the scheduler takes it over with a new token and finds the call at the
    carrier by number. When the worker wakes, its record of the dial is
    refused, and nobody dials the person again."""
    sim, _, w = extra.region("slow", {
        "BC_SIM_CREATE_DELAY_MS": "2500", "BC_SIM_MS_PER_SECOND": "1000",
        "BC_SIM_RING_SECONDS": "1", "BC_SIM_TALK_SECONDS": "30", "BC_SIM_MIX": "completed=1"},
        worker_env={"BC_LEASE_TTL": "1"})
    t = stack.tenant()
    bid = create(stack, t, ["+14250000001"], limit=1, region="APAC")
    wait_until(lambda: dials(stack, bid, sim), 30, "the dial to reach the carrier", interval=0.02)
    os.kill(w.p.pid, signal.SIGSTOP)   # a stall: a pause, a swap storm, a stuck disk
    wait_until(lambda: stack.sql("SELECT holder FROM leases WHERE batch_id = %s AND call_id IS NOT NULL",
                                 bid) == [("scheduler:apac",)], 15, "the lease to be taken over")
    os.kill(w.p.pid, signal.SIGCONT)
    wait_until(lambda: metric(w.port, "worker_late_writes_refused_total") >= 1, 15,
               "the stalled worker's late write to be refused")
    assert len(dials(stack, bid, sim)) == 1
    assert stack.sql("SELECT carrier_call_id IS NOT NULL FROM calls WHERE batch_id = %s", bid)[0][0]


def test_an_answer_read_after_its_call_ended_is_recorded_not_refused(stack, extra):
    """The carrier sends a call's first callbacks as it places it, before
    it answers the create, and a busy line ends the call in milliseconds.
    With the answer held 1.5 s, each call's end frees the only slot before
    the answer is read, and the next recipient's claim takes it with a new
    token (the last call's slot is given back). The answer adds nothing and
    is no late write: nothing is refused (all three were, before), every
    call keeps its sid, and no one is dialed twice."""
    sim, _, w = extra.region("busy", {
        "BC_SIM_CREATE_DELAY_MS": "1500", "BC_SIM_MS_PER_SECOND": "1000",
        "BC_SIM_RING_SECONDS": "0", "BC_SIM_MIX": "busy=1"})
    t = stack.tenant()
    numbers = [f"+1445{i:07d}" for i in range(3)]
    bid = create(stack, t, numbers, limit=1, region="APAC")
    all_terminal(stack, bid, 60)
    # Each answer was read (the dials' accepted count) after its call ended.
    wait_until(lambda: metric(w.port, "worker_calls_started_total") == 3, 15,
               "the three answers to be read")
    rows = stack.sql("SELECT status, carrier_call_id IS NOT NULL, lease_token"
                     "  FROM calls WHERE batch_id = %s ORDER BY created_at", bid)
    assert [r[:2] for r in rows] == [("busy", True)] * 3
    # One slot, taken again with a new token while each answer was held.
    assert rows[0][2] < rows[1][2] < rows[2][2]
    assert metric(w.port, "worker_late_writes_refused_total") == 0
    assert_one_dial_per_recipient(stack, bid, numbers, 1, sim)


def test_a_batch_admitted_with_few_slots_releases_a_window_for_those(stack, extra):
    """A tenant's second batch is admitted with the slots its first gives
    back as it drains, a few at a time. Its window follows the slots it
    holds (2 jobs a slot), not its limit: the jobs released beyond them
    waited in the workers until the first batch ended, and held back every
    partition's commits meanwhile (the soak's minute 59). Sampled
    throughout, the second batch never has more jobs out than twice its
    slots; it is grown and topped up to its limit, and every recipient of
    both is called once. (Exact since every window release takes the
    batch's release lock: two at once could each fill the room, test
    below.) Talk times are spread over 1-2 s: with whole seconds, the first
    batch's last calls can all end in one burst, and the second is then
    admitted with every slot at once, not the few this is about."""
    sim, _, _ = extra.region("window", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
        "BC_SIM_TALK_SECONDS": "1-2", "BC_SIM_TALK_SPREAD": "1",
        "BC_SIM_MIX": "completed=1"})
    t = stack.tenant(concurrency=10)
    first = [f"+1446{i:07d}" for i in range(40)]
    second = [f"+1448{i:07d}" for i in range(60)]
    a = create(stack, t, first, limit=10, region="APAC")
    wait_until(lambda: stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s", a)[0][0] >= 10,
               30, "the first batch to fill its slots", interval=0.05)
    b = create(stack, t, second, limit=10, region="APAC")
    seen, worst = set(), 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        (state, out, held, backlog), = stack.sql(
            "SELECT (SELECT state FROM batches WHERE id = %s),"
            "       (SELECT count(*) FROM recipients WHERE batch_id = %s AND released"
            "           AND status IN ('queued', 'dispatched', 'started')),"
            "       (SELECT count(*) FROM leases WHERE batch_id = %s),"
            "       (SELECT count(*) FROM recipients WHERE batch_id = %s AND NOT released"
            "           AND status = 'queued')", b, b, b, b)
        if state == "admitted" and backlog > 0:
            seen.add(held)
            worst = max(worst, out - 2 * max(held, 1))
        if state == "admitted" and out == 0 and backlog == 0:
            break
        time.sleep(0.02)
    # Admitted with fewer slots than its limit, and grown to it.
    assert min(seen) < 10 and max(seen) == 10, sorted(seen)
    assert worst <= 0, f"{worst} jobs out beyond twice the slots held"
    all_terminal(stack, a, 60)
    all_terminal(stack, b, 60)
    assert_one_dial_per_recipient(stack, a, first, 10, sim)
    assert_one_dial_per_recipient(stack, b, second, 10, sim)


def common_sql(name):
    """A statement of common/sql/ as the services prepare it."""
    with open(os.path.join(ROOT, "common", "sql", name + ".sql")) as f:
        return f.read()


def in_flight(stack, bid):
    return stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s AND released"
                     " AND status IN ('queued', 'dispatched', 'started')", bid)[0][0]


class Releaser:
    """A connection that tops batches' windows up as the services do: in a
    transaction, release_lock.sql for them (unless lock is false), then
    release.sql for each."""

    def __init__(self, stack):
        self.conn = psycopg2.connect(stack.dsn)
        self.pid = self.conn.get_backend_pid()
        with self.conn.cursor() as cur:
            cur.execute("PREPARE release_lock AS " + common_sql("release_lock"))
            cur.execute("PREPARE release AS " + common_sql("release"))
        self.conn.commit()

    def lock(self, bids):
        with self.conn.cursor() as cur:
            cur.execute("EXECUTE release_lock(%s)", (json.dumps(bids),))

    def release(self, bid, topic, lock=True):
        if lock:
            self.lock([bid])
        with self.conn.cursor() as cur:
            cur.execute("EXECUTE release(%s, 2, %s)", (bid, topic))
            return cur.rowcount


def waits_for_advisory_lock(stack, pid):
    return stack.sql("SELECT wait_event_type = 'Lock' AND wait_event = 'advisory'"
                     "  FROM pg_stat_activity WHERE pid = %s", pid)[0][0]


def test_two_window_top_ups_of_one_batch_at_once_release_its_room_once(stack, extra):
    """A worker's top-up after an end and the scheduler's after it grew the
    batch can run at once. release.sql counts the jobs in flight in its own
    snapshot, so each counted without the other's and both filled the room:
    shown here first without the lock, on a batch of its own (16 jobs out
    for a window of 10). With release_lock.sql first, as every service
    runs it, the second waits for the first to commit, then sees its jobs
    and releases nothing: the window is exact."""
    _, sched, _ = extra.region("twice", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
        "BC_SIM_TALK_SECONDS": "60", "BC_SIM_MIX": "completed=1"})
    t = stack.tenant(concurrency=4)
    bids = [create(stack, t, [f"+1449{i}{j:06d}" for j in range(30)], limit=2, region="APAC")
            for i in range(2)]
    for bid in bids:
        wait_until(lambda: in_flight(stack, bid) == 4, 30, "each batch's first window (2 slots x 2)")
    # Nothing else tops them up from here: the scheduler is stopped, and
    # no call ends for a minute. Each batch may now hold 5 slots and has 3
    # more (as the scheduler's grow gives them): its window is 10, with 4
    # jobs out, so its room is 6.
    os.kill(sched.p.pid, signal.SIGSTOP)
    for bid in bids:
        stack.sql("UPDATE batches SET target_concurrency_limit = 5 WHERE id = %s", bid)
        stack.sql("INSERT INTO leases (batch_id, slot, number)"
                  " SELECT %s, g, (SELECT from_pool[1 + g %% cardinality(from_pool)]"
                  "                  FROM batches WHERE id = %s)"
                  "   FROM generate_series(2, 4) AS g", bid, bid)
    topic = f"{stack.prefix}.jobs.apac"
    one, two = Releaser(stack), Releaser(stack)

    # Without the lock: neither waits, both fill the room.
    unlocked = bids[0]
    assert one.release(unlocked, topic, lock=False) == 6
    assert two.release(unlocked, topic, lock=False) == 6
    two.conn.commit()
    one.conn.commit()
    assert in_flight(stack, unlocked) == 16

    # With it: the second waits for the first's commit, then releases nothing.
    locked, got = bids[1], {}
    assert one.release(locked, topic) == 6
    th = threading.Thread(target=lambda: got.update(n=two.release(locked, topic)))
    th.start()
    wait_until(lambda: waits_for_advisory_lock(stack, two.pid), 10,
               "the second top-up to wait for the first's lock", interval=0.02)
    assert "n" not in got
    one.conn.commit()
    th.join(10)
    two.conn.commit()
    assert got == {"n": 0}
    assert in_flight(stack, locked) == 10
    one.conn.close()
    two.conn.close()


def test_the_release_lock_takes_a_transactions_batches_in_one_order(stack):
    """A transaction locks every batch it will release in one statement, in
    the order of their keys, whatever the order it names them in: so two
    never hold one each and wait for the other's. Here the batch with the
    higher key is held elsewhere; a transaction naming it first already
    holds the lower one while it waits."""
    (pair,), = stack.sql("SELECT CASE WHEN hashtext('batch-a') < hashtext('batch-b')"
                         "            THEN ARRAY['batch-a', 'batch-b']"
                         "            ELSE ARRAY['batch-b', 'batch-a'] END")
    lo, hi = pair
    holder, waiter = Releaser(stack), Releaser(stack)
    holder.lock([hi])
    th = threading.Thread(target=lambda: waiter.lock([hi, lo]))
    th.start()
    wait_until(lambda: waits_for_advisory_lock(stack, waiter.pid), 10,
               "the second transaction to wait for the higher key", interval=0.02)
    held = stack.sql("SELECT objid::bigint = (hashtext(%s)::bigint & 4294967295), granted"
                     "  FROM pg_locks WHERE locktype = 'advisory' AND classid = 7417"
                     "   AND pid = %s", lo, waiter.pid)
    assert (True, True) in held, held
    holder.conn.commit()
    th.join(10)
    waiter.conn.commit()
    holder.conn.close()
    waiter.conn.close()


def test_a_top_up_on_a_timer_leaves_a_batch_being_released_and_comes_back(stack, extra):
    """The worker's top-up after its ends and the scheduler's pass do not
    wait for a batch's release lock: the transaction holding it is filling
    that window. Waiting, the worker's loop stood still (no end written, no
    claim, no dial) behind the scheduler's once-a-second pass over every
    running batch, up to 40 ms a time with 100 batches. Here another
    session holds the batch's lock: both skip it and count the skip, the
    worker's loop keeps turning, and the window drains. Once the lock is
    let go, the worker's next top-up fills it, and every recipient ends."""
    sim, sched, worker = extra.region("trylock", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
        "BC_SIM_TALK_SECONDS": "1", "BC_SIM_MIX": "completed=1"})
    t = stack.tenant(concurrency=2)
    numbers = [f"+1449777{j:04d}" for j in range(16)]
    bid = create(stack, t, numbers, limit=2, region="APAC")
    wait_until(lambda: in_flight(stack, bid) == 4, 30, "the first window (2 slots x 2)")
    holder = psycopg2.connect(stack.dsn)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(7417, hashtext(%s))", (bid,))
    wait_until(lambda: metric(worker.port, "worker_window_topups_skipped_total") > 0, 20,
               "the worker to skip the held batch's top-up")
    wait_until(lambda: metric(sched.port, "scheduler_window_topups_skipped_total") > 0, 20,
               "the scheduler's pass to skip it")
    turns = metric(worker.port, "worker_loop_turns_total")
    skips = metric(worker.port, "worker_window_topups_skipped_total")
    # The window drains: its calls end and nothing is released meanwhile.
    wait_until(lambda: in_flight(stack, bid) < 4, 20, "the held batch's window to drain")
    wait_until(lambda: metric(worker.port, "worker_loop_turns_total") > turns + 5, 10,
               "the worker's loop to keep turning")
    assert not stack.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                         "   AND wait_event = 'advisory'")[0][0]
    wait_until(lambda: metric(worker.port, "worker_window_topups_skipped_total") > skips, 20,
               "the worker to try again and skip again")
    holder.commit()
    holder.close()
    all_terminal(stack, bid, 60)
    assert_one_dial_per_recipient(stack, bid, numbers, 2, sim)


def test_a_worker_that_cannot_renew_its_leases_stops_dialing_until_it_can(stack, extra):
    """PostgreSQL refuses the worker's lease renewals (a trigger here; in life a
    lock timeout, a full disk, a revoked grant). The failure is logged and
    counted, readiness goes down, and the worker dials no new call while its
    leases could expire under it; once a renewal succeeds it dials again."""
    url, _, w = extra.region("renew", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
        "BC_SIM_TALK_SECONDS": "60", "BC_SIM_MIX": "completed=1"},
        worker_env={"BC_LEASE_TTL": "3"})
    ready = f"http://127.0.0.1:{w.port}/readyz"
    t = stack.tenant(concurrency=10)
    first = create(stack, t, ["+14260000001"], limit=2, region="APAC")
    wait_until(lambda: dials(stack, first, url), 30, "the first call to be dialed", interval=0.05)
    # Every update of a held lease that keeps its call: the renewal, and
    # the scheduler's take-over once it expires (which would leave the
    # worker nothing to renew, and so nothing to fail). Claims and ends go on.
    stack.sql("""CREATE FUNCTION no_renewal() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'renewal refused by the test'; END $$;
                 CREATE TRIGGER no_renewal BEFORE UPDATE ON leases FOR EACH ROW
                 WHEN (OLD.call_id IS NOT NULL AND NEW.call_id = OLD.call_id)
                 EXECUTE FUNCTION no_renewal()""")
    wait_until(lambda: requests.get(ready, timeout=5).status_code == 503, 15,
               "readiness to go down once renewals fail", interval=0.05)
    assert metric(w.port, "worker_lease_renewals_failed_total") >= 1
    second = create(stack, t, ["+14260000002"], limit=2, region="APAC")
    # Barrier: the job is in the worker's hands (its lag is 0 and the
    # scheduler released it), and still nobody was dialed.
    wait_until(lambda: stack.sql("SELECT status, released FROM recipients WHERE batch_id = %s",
                                 second) == [("queued", True)], 15, "the job to be released")
    wait_until(lambda: metric(w.port, 'kafka_consumer_lag{topic="jobs"}') == 0
               and metric(w.port, "worker_jobs_in_hand") >= 1, 15, "the worker to hold the job")
    assert dials(stack, second, url) == []
    stack.sql("DROP TRIGGER no_renewal ON leases")
    wait_until(lambda: requests.get(ready, timeout=5).status_code == 200, 15,
               "readiness to come back with a renewal")
    wait_until(lambda: dials(stack, second, url), 15, "the held job to be dialed")
    assert len(dials(stack, first, url)) == 1
    events = [json.loads(x)["event"] for x in w.log_lines()]
    assert "lease.renew_failed" in events
    assert events.index("worker.dialing_stopped") < events.index("worker.dialing_resumed")
    # Leave no live call behind for the tests after this one: hang both up.
    for bid in (first, second):
        hang_up(stack, t, bid)
    wait_until(lambda: stack.sql("SELECT count(*) FROM calls WHERE batch_id IN (%s, %s)"
                                 " AND ended_at IS NULL", first, second) == [(0,)], 20,
               "both calls to end at the carrier")


def hang_up(stack, t, bid):
    r = requests.post(f"{stack.api}/agents/calls/batches/{bid}/cancel?hangup=true",
                      headers=cartesia_headers(t["api_key"]), timeout=30)
    assert r.status_code == 200, r.text


def ended_at_carrier(stack, bid, sim, timeout, what):
    """Waits for the batch's one call to stop at the carrier (the
    simulator's ledger, not our database); returns its dial."""
    return wait_until(lambda: [d for d in dials(stack, bid, sim) if d["ended_ms"] is not None],
                      timeout, what)[0]


def test_a_cancel_with_hangup_ends_a_ringing_call_with_one_command(stack, extra):
    """Status=completed ends a call whether it rings or talks. The worker
    used to send canceled too for a call not known to talk: both in flight
    at once, completed could reach the call still ringing and canceled the
    same call answered a moment later, and then neither ended it (a CI
    run's hang-up test saw a call talk on). One command now, and the
    carrier ends the ringing call canceled."""
    url, _, _ = extra.region("ring", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "30",
        "BC_SIM_TALK_SECONDS": "60", "BC_SIM_MIX": "completed=1"})
    t = stack.tenant(concurrency=2)
    bid = create(stack, t, ["+14260000021"], limit=1, region="APAC")
    wait_until(lambda: stack.sql("SELECT status FROM calls WHERE batch_id = %s", bid) == [("ringing",)],
               30, "the call to ring")
    hang_up(stack, t, bid)
    d = ended_at_carrier(stack, bid, url, 15, "the ringing call to end at the carrier")
    assert d["ended_ms"] - d["at_ms"] < 15000
    wait_until(lambda: stack.sql("SELECT status, end_reason FROM calls WHERE batch_id = %s", bid)
               == [("canceled", "api_cancelled")], 15, "the carrier's final status")
    assert ledger(stack, url)["agent"]["updates"] == 1


def test_a_hang_up_the_carrier_refused_is_sent_again(stack, extra):
    """The carrier answers the hang-up 500 (an outage): the call stays
    marked, and the scheduler's sweep sends the command again once it is
    older than BC_HANGUP_AGAIN_S, until the call ends. Before, the refusal
    was logged and the call talked to its end."""
    url, sched, w = extra.region("again", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
        "BC_SIM_TALK_SECONDS": "60", "BC_SIM_MIX": "completed=1"},
        sched_env={"BC_HANGUP_AGAIN_S": "1"})
    t = stack.tenant(concurrency=2)
    bid = create(stack, t, ["+14260000031"], limit=1, region="APAC")
    wait_until(lambda: stack.sql("SELECT status FROM calls WHERE batch_id = %s", bid)
               == [("in-progress",)], 30, "the call to be answered")
    requests.post(url + "/faults", params={"update_5xx": 1}, timeout=10).raise_for_status()
    hang_up(stack, t, bid)
    d = ended_at_carrier(stack, bid, url, 20, "the call to end at the carrier")
    assert d["ended_ms"] - d["at_ms"] < 20000
    assert ledger(stack, url)["faults"]["played"]["update_5xx"] == 1
    assert metric(w.port, "worker_call_update_failures_total") >= 1
    assert metric(sched.port, "reconcile_hangups_sent_total") >= 1
    wait_until(lambda: stack.sql("SELECT status FROM calls WHERE batch_id = %s", bid)
               == [("completed",)], 15, "the carrier's final status")


def test_a_voicemail_hang_up_the_carrier_refused_is_sent_again(stack, extra):
    """The batch's voicemail policy says hang up on a machine; the carrier
    answers that hang-up 500. It is marked as a cancel's is, and the sweep
    sends it again: the machine does not keep the line (and the agent)
    for its whole 60 s."""
    number = "+14260000051"
    url, sched, _ = extra.region("vmagain", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
        "BC_SIM_TALK_SECONDS": "60", "BC_SIM_MIX": "completed=1", "BC_SIM_AMD_SECONDS": "1"},
        sched_env={"BC_HANGUP_AGAIN_S": "1"})
    requests.post(url + "/outcomes", params={"to": number, "outcomes": "voicemail"},
                  timeout=10).raise_for_status()
    requests.post(url + "/faults", params={"update_5xx": 1}, timeout=10).raise_for_status()
    t = stack.tenant(concurrency=2)
    bid = create(stack, t, [number], limit=1, region="APAC", voicemail={"action": "hangup"})
    d = ended_at_carrier(stack, bid, url, 20, "the machine's call to end at the carrier")
    assert d["ended_ms"] - d["at_ms"] < 20000
    assert ledger(stack, url)["faults"]["played"]["update_5xx"] == 1
    assert metric(sched.port, "reconcile_hangups_sent_total") >= 1
    wait_until(lambda: stack.sql("SELECT voicemail_action, end_reason FROM calls WHERE batch_id = %s",
                                 bid) == [("hangup", "voicemail")], 15, "the call's end")


def test_a_call_whose_dialer_stalled_is_hung_up_once_its_sid_is_found(stack, extra):
    """The worker stalls with the create on its way, so the cancel finds the
    call dialing with no carrier sid and cannot address a hang-up to it.
    The call stays marked; once the reconciler has taken the lapsed lease
    over and found the call at the carrier, the scheduler's sweep sends the
    command, and the worker (let go) ends the call. Before, such a call ran
    its course after a cancel with hang-up."""
    url, _, w = extra.region("stall", {
        "BC_SIM_CREATE_DELAY_MS": "2500", "BC_SIM_MS_PER_SECOND": "1000",
        "BC_SIM_RING_SECONDS": "1", "BC_SIM_TALK_SECONDS": "30", "BC_SIM_MIX": "completed=1"},
        worker_env={"BC_LEASE_TTL": "1"})
    t = stack.tenant(concurrency=2)
    bid = create(stack, t, ["+14260000041"], limit=1, region="APAC")
    wait_until(lambda: dials(stack, bid, url), 30, "the dial to reach the carrier", interval=0.02)
    os.kill(w.p.pid, signal.SIGSTOP)
    try:
        hang_up(stack, t, bid)
        assert stack.sql("SELECT carrier_call_id, hangup_requested_at IS NOT NULL FROM calls"
                         " WHERE batch_id = %s", bid) == [(None, True)]
        # Barrier: the reconciler adopted the call and the sweep wrote its
        # command, which only a worker of the region can carry out.
        wait_until(lambda: stack.sql("SELECT carrier_call_id IS NOT NULL, hangup_sent_at IS NOT NULL"
                                     "  FROM calls WHERE batch_id = %s", bid) == [(True, True)],
                   15, "the sweep to send the hang-up")
    finally:
        os.kill(w.p.pid, signal.SIGCONT)
    d = ended_at_carrier(stack, bid, url, 15, "the call to end at the carrier")
    assert d["ended_ms"] - d["at_ms"] < 20000
    assert len(dials(stack, bid, url)) == 1


def test_a_burst_is_paced_to_the_carriers_rate_without_refusals(stack, extra):
    """500 recipients against a carrier that takes 5 calls a second would take
    100 s here; the same shape at 20/s with 200 recipients: the worker paces
    itself, the carrier refuses nothing, no attempt is spent on pacing."""
    cps, n = 20, 200
    sim = extra.start("sim-paced", "batchcall-carrier-sim", {
        "BC_SIM_CPS": str(cps), "BC_SIM_MS_PER_SECOND": "5"})
    url = f"http://127.0.0.1:{sim.port}"
    env = {"BC_REGION": "apac", "BC_CARRIER_URL": url}
    extra.start("sched-paced", "batchcall-scheduler", env)
    extra.start("w-paced", "batchcall-worker", dict(env, BC_CARRIER_CPS=str(cps)))
    t = stack.tenant(concurrency=100)
    numbers = [f"+1426{i:07d}" for i in range(n)]
    bid = create(stack, t, numbers, limit=50, region="APAC")
    all_terminal(stack, bid, 120)
    led = assert_one_dial_per_recipient(stack, bid, numbers, 50, sim=url)
    assert led["rejected_429"] == 0
    at = sorted(d["at_ms"] for d in dials(stack, bid, url))
    span = (at[-1] - at[0]) / 1000.0
    assert span >= (n - 1) / cps * 0.95, span
    assert stack.sql("SELECT max(attempts) FROM recipients WHERE batch_id = %s", bid)[0][0] == 1


def test_a_worker_holding_one_job_at_most_finishes_its_batch(stack, extra):
    """BC_WORKER_MAX_IN_HAND=1: the worker pauses its partitions at every job
    it takes and must fetch again once that job is claimed; it once waited
    for fewer than 1 / 2 (integer: 0) jobs in hand and never fetched again."""
    w = extra.start("w-eu-one", "batchcall-worker", {"BC_REGION": "eu",
                                                    "BC_WORKER_MAX_IN_HAND": "1"})
    t = stack.tenant(concurrency=10)
    numbers = [f"+1437{i:07d}" for i in range(5)]
    bid = create(stack, t, numbers, limit=5, region="EU")
    all_terminal(stack, bid, 60)
    assert_one_dial_per_recipient(stack, bid, numbers, 5)
    assert metric(w.port, "worker_claims_total") >= 5


def hhmm(dt):
    return dt.strftime("%H:%M")


def test_calling_hours_are_honoured_in_the_batchs_timezone(stack):
    import datetime
    from zoneinfo import ZoneInfo
    t = stack.tenant(concurrency=10)
    tokyo = datetime.datetime.now(ZoneInfo("Asia/Tokyo"))
    closed = {"start": hhmm(tokyo + datetime.timedelta(hours=2)),
              "end": hhmm(tokyo + datetime.timedelta(hours=3))}
    numbers = [f"+1427{i:07d}" for i in range(5)]
    bid = create(stack, t, numbers, limit=5, timezone="Asia/Tokyo", calling_hours=closed)
    # The scheduler admitted the batch and, at its release, put every
    # recipient off to the hours' opening instead of releasing it.
    wait_until(lambda: stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s"
                                 " AND window_wait AND NOT released AND next_attempt_at > now()",
                                 bid)[0][0] == len(numbers), 15, "the recipients to be put off")
    system_settled(stack)
    assert stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s", bid)[0][0] == 0
    assert dials(stack, bid) == []
    # Move the clock calling hours are read on 2.5 hours ahead: Tokyo's
    # hours open (UTC's clock would say otherwise).
    stack.sql("INSERT INTO clock_offset (one, offset_s) VALUES (true, 9000)")
    try:
        all_terminal(stack, bid, 60)
    finally:
        stack.sql("DELETE FROM clock_offset")
    assert_one_dial_per_recipient(stack, bid, numbers, 5)


@pytest.mark.parametrize("hours,at,inside", [
    ({"start": "09:00", "end": "17:00"}, "2026-03-02 08:59:00+00", False),
    ({"start": "09:00", "end": "17:00"}, "2026-03-02 09:00:00+00", True),
    ({"start": "09:00", "end": "17:00"}, "2026-03-02 17:00:00+00", False),
    ({"start": "22:00", "end": "06:00"}, "2026-03-02 23:30:00+00", True),
    ({"start": "22:00", "end": "06:00"}, "2026-03-02 05:59:00+00", True),
    ({"start": "22:00", "end": "06:00"}, "2026-03-02 12:00:00+00", False),
    ({"start": "09:00", "end": "17:00", "days": [1, 2, 3, 4, 5]}, "2026-03-01 10:00:00+00", False),
    ({"start": "09:00", "end": "17:00", "days": [1, 2, 3, 4, 5]}, "2026-03-02 10:00:00+00", True),
])
def test_calling_hours_window_arithmetic(stack, hours, at, inside):
    # 2026-03-01 is a Sunday (ISO 7), 2026-03-02 a Monday.
    got = stack.sql("SELECT in_calling_hours(%s::jsonb, 'UTC', %s::timestamptz)",
                    json.dumps(hours), at)[0][0]
    assert got is inside


def test_calling_hours_are_validated(stack):
    t = stack.tenant()
    for bad in ({"start": "9:00", "end": "17:00"}, {"start": "09:00"}, {"start": "09:00", "end": "09:00"},
                {"start": "09:00", "end": "17:00", "days": [0]}, {"start": "25:00", "end": "17:00"}):
        body = {"name": "h", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                "calling_hours": bad, "recipients": [{"to_number": "+14155550000"}]}
        r = requests.post(stack.api + "/agents/calls/batches", json=body,
                          headers=cartesia_headers(t["api_key"]), timeout=10)
        assert r.status_code == 400 and "calling_hours" in r.json()["error"], (bad, r.text)
    body = {"name": "h", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "timezone": "Mars/Olympus", "recipients": [{"to_number": "+14155550000"}]}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 400 and "timezone" in r.json()["error"]


def test_an_outbox_row_left_unpublished_is_relayed(stack):
    """A publisher that crashed between commit and publish leaves its outbox
    rows; the scheduler publishes them, and the job is dialed."""
    t = stack.tenant(concurrency=10)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    bid = create(stack, t, ["+14280000001"], limit=1, scheduled_at=when)
    # Admit it by hand and write its job as a crashed API would have left it.
    # One statement: the scheduler, which adds the slots an admitted batch
    # lacks and releases its recipients, sees it admitted only with its slot
    # and its recipient released (in three, it once added slot 0 itself
    # between the first two).
    rid = stack.sql("SELECT id FROM recipients WHERE batch_id = %s", bid)[0][0]
    stack.sql("WITH b AS (UPDATE batches SET state = 'admitted', admitted_at = now(),"
              "                  scheduled_at = NULL WHERE id = %s RETURNING id),"
              " l AS (INSERT INTO leases (batch_id, slot) SELECT id, 0 FROM b)"
              " UPDATE recipients SET released = true WHERE id = %s", bid, rid)
    job = json.dumps({"v": 1, "recipient_id": rid, "batch_id": bid, "tenant_id": t["tenant_id"],
                      "attempt": 1})
    stack.sql("INSERT INTO outbox (topic, key, payload, created_at)"
              " VALUES (%s, %s, %s, now() - interval '10 seconds')",
              f"{stack.prefix}.jobs.us", rid, job)
    all_terminal(stack, bid, 30)
    # The job row and the call-result row are deleted once their delivery
    # reports arrive, which may trail the terminal write by a moment.
    wait_until(lambda: stack.sql("SELECT count(*) FROM outbox WHERE key = %s", rid)[0][0] == 0,
               10, "the outbox rows of the recipient to be published and deleted")
    assert len(dials(stack, bid)) == 1


def test_an_api_crash_between_commit_and_publish_loses_nothing(stack, tmp_path):
    """BC_FAILPOINT=api.after_commit stops the API right after the batch's
    transaction commits and before its jobs are published: the client sees
    the connection drop, the batch is durable, and the scheduler's relay
    publishes the jobs, so every recipient is still dialed once."""
    p, _, url = api_proc(stack, tmp_path, "api-crash", BC_FAILPOINT="api.after_commit")
    try:
        t = stack.tenant(concurrency=10)
        numbers = [f"+1429{i:07d}" for i in range(20)]
        body = {"name": "crash", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                "target_concurrency_limit": 5, "recipients": [{"to_number": n} for n in numbers]}
        with pytest.raises(requests.ConnectionError):
            requests.post(url + "/agents/calls/batches", json=body,
                          headers=cartesia_headers(t["api_key"]), timeout=30)
        assert p.p.wait(10) == 86
        assert p.events("failpoint.hit")
    finally:
        p.stop()
    bid = stack.sql("SELECT id FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]
    all_terminal(stack, bid, 60)
    assert_one_dial_per_recipient(stack, bid, numbers, 5)


def test_a_cancel_waiting_on_a_dial_holds_up_no_other_request(stack, extra, tmp_path):
    """A cancel returns once no dial of the batch is on its way to the
    carrier, which can take the worker's carrier timeout. It used to wait on
    the server thread that read it, and every connection pinned to that
    thread waited too: in a CI run a schemathesis request that is answered
    in 2 ms alone took 10.8 s, in the minute a cancel of the same run
    waited 13 s. It now waits on a thread of its own. One server thread
    (BC_API_THREADS=1) makes the old way fail every time."""
    url, _, _ = extra.region("waits", {
        "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "30", "BC_SIM_HANG_MS": "4000"},
        worker_env={"BC_CARRIER_TIMEOUT_MS": "6000"})
    requests.post(url + "/faults", params={"create_hang": 1}, timeout=5).raise_for_status()
    api, _, base = api_proc(stack, tmp_path, "api-one-thread", BC_API_THREADS="1")
    try:
        cancel_beside(stack, base)
    finally:
        api.stop()


def cancel_beside(stack, base):
    """A cancel through the API at base waits for a held dial; other
    requests to it are answered meanwhile."""
    t = stack.tenant(concurrency=2)
    bid = create(stack, t, ["+14385550101"], 1, region="APAC")
    wait_until(lambda: stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s AND status ="
                                 " 'dialing'", bid)[0][0] == 1, 20, "the dial to be in flight")
    answer = {}

    def cancel():
        answer["r"] = requests.post(f"{base}/agents/calls/batches/{bid}/cancel",
                                    headers=cartesia_headers(t["api_key"]), timeout=30)
    th = threading.Thread(target=cancel)
    th.start()
    wait_until(lambda: stack.sql("SELECT state FROM batches WHERE id = %s", bid)[0][0]
               == "cancelled", 10, "the cancel to commit")
    # The cancel now waits for the held dial (about 4 s); meanwhile the
    # same server answers others at once.
    for _ in range(3):
        t0 = time.monotonic()
        r = requests.get(f"{base}/agents/calls/batches/{bid}",
                         headers=cartesia_headers(t["api_key"]), timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        assert time.monotonic() - t0 < 1.5
        assert th.is_alive(), "the cancel did not wait for the dial in flight"
    th.join(30)
    assert answer["r"].status_code == 200, answer["r"].text
