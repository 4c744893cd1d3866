"""A bounded chaos run on loopback: several workers, two schedulers, two
API instances and thousands of recipients over several tenants, while a
driver SIGKILLs workers every few seconds, kills the scheduler leader,
restarts the Kafka broker, restarts PostgreSQL, crashes an API instance
between commit and publish (BC_FAILPOINT=api.after_commit), and has the
carrier simulator play bursts of faults (5xx, 429, creates answered too late,
duplicated, reordered and lost callbacks). It ends with the invariant
checker's table and exits non-zero on any violation.

    python3 tests/chaos/run.py            # short profile (CI)
    python3 tests/chaos/run.py --long     # long profile, on demand
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from conftest import Stack, free_port, wait_until  # noqa: E402
import check  # noqa: E402

sys.path.insert(0, HERE)


def main():
    try:
        return run()
    finally:
        for sp in list(STACKS):
            sp.stop_all()


STACKS = []


def replace_killed(s, procs, victim, name, binary, env):
    """SIGKILLs victim, one of procs (processes of stack s), and starts a new
    one, name, in its place."""
    os.kill(victim.p.pid, signal.SIGKILL)
    victim.p.wait()
    procs.remove(victim)
    del s.procs[victim.name]
    procs.append(s.start(name, binary, env))


def restart(script, down_s):
    """Stops the local service deploy/local/<script> runs and starts it again
    down_s seconds later."""
    sh = os.path.join(ROOT, "deploy", "local", script)
    subprocess.run([sh, "stop"], check=True)
    time.sleep(down_s)
    subprocess.run([sh, "start"], check=True)


def run():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    recipients = 30000 if a.long else 6000
    fault_s = 240 if a.long else 45
    print(f"chaos: seed {a.seed}, {recipients} recipients, faults for {fault_s} s", flush=True)

    s = Stack(tempfile.mkdtemp(prefix="chaos-"))
    STACKS.append(s)
    s.create_db()
    api2 = free_port()
    s.start("sim", "batchcall-carrier-sim", {"BC_SIM_PORT": str(s.sim_port), "BC_SIM_MS_PER_SECOND": "3",
                                             "BC_SIM_RING_SECONDS": "1-3", "BC_SIM_TALK_SECONDS": "2-20",
                                             "BC_SIM_THREADS": "32", "BC_SIM_HANG_MS": "1500"})
    s.start("api", "batchcall-api", {"BC_API_PORT": str(s.api_port)})
    s.start("api2", "batchcall-api", {"BC_API_PORT": str(api2)})
    wenv = {"BC_LEASE_TTL": "3", "BC_RETRY_BASE_MS": "300", "BC_WORKER_PORT": "0",
            "BC_CARRIER_TIMEOUT_MS": "1000"}
    # Webhook delivery has its own crash test (tests/integration/test_webhooks.py).
    senv = {"BC_SCHEDULER_PORT": "0", "BC_SCHEDULER_TICK_MS": "50", "BC_LEASE_TTL": "3",
            "BC_QUIET_CALL_S": "5", "BC_WEBHOOKS": "0"}
    workers = [s.start(f"worker{i}", "batchcall-worker", wenv) for i in range(3)]
    scheds = [s.start(f"sched{i}", "batchcall-scheduler", senv) for i in range(2)]
    s.wait_ready(s.sim)
    s.wait_ready(s.api)
    s.wait_ready(f"http://127.0.0.1:{api2}")

    tenants = [s.tenant(concurrency=c) for c in (40, 20, 10)]
    accepted, per_batch, k = [], 1000, 0
    for i in range(recipients // per_batch):
        t = tenants[i % len(tenants)]
        base = s.api if i % 2 == 0 else f"http://127.0.0.1:{api2}"
        body = {"name": f"chaos-{i}", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                "target_concurrency_limit": max(1, t and {0: 20, 1: 10, 2: 5}[i % 3]),
                "recipients": [{"to_number": f"+1555{k + j:07d}"} for j in range(per_batch)]}
        k += per_batch
        r = requests.post(base + "/agents/calls/batches", json=body, timeout=60,
                          headers={"X-API-Key": t["api_key"], "Cartesia-Version": "2026-03-01"})
        assert r.status_code == 201, r.text
        accepted.append(r.json()["id"])
    fault_log = []   # (wall-clock seconds, fault), for check.blame
    faults = {"worker_sigkill": 0, "scheduler_leader_sigkill": 0, "kafka_restart": 0,
              "postgres_restart": 0, "api_crash_after_commit": 0, "carrier_fault_bursts": 0}
    t0 = time.monotonic()
    next_kill = t0 + 3
    next_burst = t0 + 2
    leader_killed = kafka_restarted = pg_restarted = api_crashed = False
    n = 3
    kinds = ["create_5xx", "create_429", "create_hang", "callback_dup", "callback_reorder",
             "callback_drop"]
    # Every one-shot fault happens even if the ones before it were slow.
    while time.monotonic() - t0 < fault_s or not (leader_killed and kafka_restarted and
                                                  pg_restarted and api_crashed):
        now = time.monotonic()
        if now >= next_kill:
            replace_killed(s, workers, rnd.choice(workers), f"worker{n}", "batchcall-worker", wenv)
            n += 1
            faults["worker_sigkill"] += 1
            fault_log.append((time.time(), "worker_sigkill"))
            next_kill = now + rnd.uniform(3, 6)
        if not leader_killed and now - t0 > fault_s * 0.3:
            for sc in scheds:
                if sc.events("scheduler.leading"):
                    replace_killed(s, scheds, sc, f"sched{n}", "batchcall-scheduler", senv)
                    n += 1
                    faults["scheduler_leader_sigkill"] += 1
                    fault_log.append((time.time(), "scheduler_leader_sigkill"))
                    break
            leader_killed = True
        if not kafka_restarted and now - t0 > fault_s * 0.6:
            fault_log.append((time.time(), "kafka_restart"))
            restart("kafka.sh", 2)
            faults["kafka_restart"] += 1
            kafka_restarted = True
        if not pg_restarted and now - t0 > fault_s * 0.45:
            fault_log.append((time.time(), "postgres_restart"))
            restart("pg.sh", 1)
            faults["postgres_restart"] += 1
            pg_restarted = True
        if not api_crashed and now - t0 > fault_s * 0.75:
            # The client never hears back; the batch is committed and its jobs
            # are left in the outbox for the scheduler's relay.
            crash_port = free_port()
            crash = s.start("api-crash", "batchcall-api", {"BC_API_PORT": str(crash_port),
                                                           "BC_FAILPOINT": "api.after_commit"})
            s.wait_ready(f"http://127.0.0.1:{crash_port}")
            t = tenants[0]
            body = {"name": "chaos-crash", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                    "target_concurrency_limit": 10,
                    "recipients": [{"to_number": f"+1556{j:07d}"} for j in range(300)]}
            try:
                requests.post(f"http://127.0.0.1:{crash_port}/agents/calls/batches", json=body, timeout=30,
                              headers={"X-API-Key": t["api_key"], "Cartesia-Version": "2026-03-01"})
                raise SystemExit("chaos: the failpoint did not stop the API")
            except requests.ConnectionError:
                pass
            assert crash.p.wait(30) == 86, "the API did not stop at its failpoint"
            del s.procs[crash.name]
            faults["api_crash_after_commit"] += 1
            fault_log.append((time.time(), "api_crash_after_commit"))
            api_crashed = True
        if now >= next_burst:
            # A hung create holds one simulator thread for BC_SIM_HANG_MS.
            burst = {k: rnd.randint(3, 8 if k == "create_hang" else 15)
                     for k in rnd.sample(kinds, rnd.randint(1, 3))}
            requests.post(s.sim + "/faults", params=burst, timeout=30).raise_for_status()
            faults["carrier_fault_bursts"] += 1
            next_burst = now + rnd.uniform(3, 6)
        time.sleep(0.2)
    requests.post(s.sim + "/faults", timeout=30)   # stop queuing; pending ones still play
    print(f"faults injected: {json.dumps(faults)}", flush=True)

    def settled():
        rows = s.sql("SELECT count(*) FILTER (WHERE status NOT IN ('completed','failed','cancelled'))"
                     " FROM recipients WHERE tenant_id = ANY(%s)", [t["tenant_id"] for t in tenants])
        return rows[0][0] == 0
    try:
        wait_until(settled, 600 if a.long else 240, "every recipient to be terminal", interval=2)
    except AssertionError as e:
        print(f"chaos: {e}", flush=True)
    time.sleep(3)   # let the last events reach Kafka
    played = requests.get(s.sim + "/faults", timeout=30).json()["played"]
    print(f"carrier faults played: {json.dumps(played)}", flush=True)
    violations = check.check(s.dsn, s.sim, s.brokers, s.prefix, [t["tenant_id"] for t in tenants],
                             accepted=accepted, faults=fault_log)
    s.stop_all()
    if violations:
        for name, p in s.procs.items():
            print(f"--- {name} (last 5 lines)")
            print("\n".join(p.log_lines()[-5:]))
    else:
        s.drop_db()
        s.drop_topics()
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
