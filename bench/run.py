"""batchcall benchmarks B2-B7, each beside its baseline measured in the same
run on the same machine. One command:

    python3 bench/run.py            # every scenario
    python3 bench/run.py B2 B4      # some of them

It brings up the project's PostgreSQL and Kafka (deploy/local/infra.sh),
builds, and gives each scenario a fresh database, its own topics and its own
simulator, API, scheduler and worker processes. It prints one table and never
fails on timing. B1 is bench/b1_create.py (it runs against the local stack).
"""
import argparse
import datetime
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psycopg2
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from conftest import scrape  # noqa: E402  (one /metrics read, as the tests do)


def load_env():
    subprocess.run([os.path.join(ROOT, "deploy", "local", "infra.sh"), "up"], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(ROOT, ".local", "env")) as f:
        for line in f:
            k, v = line.replace("export ", "").strip().split("=", 1)
            os.environ.setdefault(k, v)
    subprocess.run(["cmake", "--build", os.path.join(ROOT, "build")], check=True,
                   stdout=subprocess.DEVNULL)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def now_ms():
    # The simulator stamps dials with CLOCK_MONOTONIC, as does this.
    return time.monotonic() * 1000.0


ROWS = []


def row(bid, what, value, unit, baseline=None, target=""):
    ratio = (value / baseline) if baseline else None
    ROWS.append((bid, what, value, unit, baseline, ratio, target))
    b = f"{baseline:,.1f}" if baseline is not None else "-"
    r = f"{ratio:.2f}" if ratio is not None else "-"
    print(f"  {bid:3} {what:<44} {value:>12,.1f} {unit:<10} baseline {b:>12}  ratio {r:>5}  {target}",
          flush=True)


class Scenario:
    """A fresh database, topics and processes for one scenario."""

    def __init__(self, name, sim_env, workers=1, worker_env=None, sched_env=None):
        from conftest import Stack
        self.s = Stack(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        # BENCH_PARTITIONS: partitions per topic (the tests' 3 unless set);
        # BENCH_EVENTS_PARTITIONS: the carrier events' (`batchcall topics`'
        # default, 3, unless set).
        ev = os.environ.get("BENCH_EVENTS_PARTITIONS")
        self.s.create_db(int(os.environ.get("BENCH_PARTITIONS", "3")),
                         int(ev) if ev else None)
        s = self.s
        s.start("sim", "batchcall-carrier-sim", dict({"BC_SIM_PORT": str(s.sim_port),
                                                      "BC_SIM_THREADS": "4"}, **sim_env))
        # BENCH_API_LINGER_MS: the API's --kafka-linger-ms alone (the other
        # processes keep theirs): the trade docs/operations.md describes.
        api_env = {"BC_API_PORT": str(s.api_port), "BC_LOG_LEVEL": "warn"}
        # The carrier's callbacks on the API's callback port, as deployed
        # (deploy/k8s); BENCH_SPLIT_CALLBACKS=0 serves them on its API port
        # (the comparison of bench/RESULTS.md, twenty-fourth session).
        cb_env = {}
        if os.environ.get("BENCH_SPLIT_CALLBACKS", "1") == "1":
            cb_port = _free_port()
            cb_env = {"BC_CALLBACK_URL": f"http://127.0.0.1:{cb_port}"}
            api_env.update(cb_env, BC_API_CALLBACK_PORT=str(cb_port))
        if os.environ.get("BENCH_API_LINGER_MS"):
            api_env["BC_KAFKA_LINGER_MS"] = os.environ["BENCH_API_LINGER_MS"]
        s.start("api", "batchcall-api", api_env)
        # BENCH_SCHED_TICK_MS: the scheduler's tick (50 ms here, as the
        # tests run it; 100 ms in deploy/k8s). Its backend's CPU is paid
        # per tick, not per attempt (RESULTS.md, thirteenth session).
        tick = os.environ.get("BENCH_SCHED_TICK_MS", "50")
        # BENCH_PROMPT_ALL=1: the worker and the scheduler route by their
        # rate as the API does (--kafka-prompt-below 1000; their default is
        # 0, always batch): the comparison of bench/RESULTS.md, twenty-first
        # session.
        prompt = {"BC_KAFKA_PROMPT_BELOW": "1000"} if os.environ.get("BENCH_PROMPT_ALL") == "1" else {}
        s.start("sched", "batchcall-scheduler", dict({"BC_SCHEDULER_PORT": "0",
                                                      "BC_SCHEDULER_TICK_MS": tick},
                                                     **prompt, **(sched_env or {})))
        self.workers = []
        for i in range(workers):
            port = _free_port()
            self.workers.append((s.start(f"worker{i}", "batchcall-worker",
                                         dict({"BC_WORKER_PORT": str(port), "BC_LOG_LEVEL": "warn"},
                                              **prompt, **cb_env, **(worker_env or {}))), port))
        s.wait_ready(s.sim)
        s.wait_ready(s.api)
        for _, port in self.workers:
            s.wait_ready(f"http://127.0.0.1:{port}")

    def tenant(self, concurrency):
        t = self.s.tenant(concurrency=concurrency)
        self.s.sql("UPDATE tenants SET credits_cents = 1000000000 WHERE id = %s", t["tenant_id"])
        # A diagnostic: BENCH_AGENT=sip hands each answered call to a SIP
        # endpoint, so the harness runs no Media Streams client and no
        # reference agent; the difference is what their CPU costs the run.
        if os.environ.get("BENCH_AGENT") == "sip":
            self.s.sql("UPDATE agents SET endpoint = 'sip:bot@127.0.0.1' WHERE id = %s",
                       t["agent_id"])
        return t

    def create(self, t, numbers, limit, **extra):
        body = {"name": "bench", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                "target_concurrency_limit": limit, "recipients": [{"to_number": n} for n in numbers]}
        body.update(extra)
        r = requests.post(self.s.api + "/agents/calls/batches", json=body, timeout=120,
                          headers={"X-API-Key": t["api_key"], "Cartesia-Version": "2026-03-01"})
        r.raise_for_status()
        return r.json()["id"]

    def ledger(self):
        return requests.get(self.s.sim + "/ledger", timeout=30).json()

    def dials(self, bid):
        return requests.get(self.s.sim + "/ledger/dials", params={"batch_id": bid},
                            timeout=60).json()["dials"]

    def terminal(self, bids):
        return self.s.sql("SELECT count(*) FROM recipients WHERE batch_id = ANY(%s)"
                          " AND status IN ('completed', 'failed', 'cancelled')", list(bids))[0][0]

    def wait_terminal(self, bids, n, timeout, poll=0.05):
        """Waits until none of the batches' recipients is active, then
        checks that n are terminal. The poll reads the partial index of the
        active ones: a count of the terminal ones read every row of the
        batches (B2: 12-70 ms of the 2 cores a second, beside the stack it
        measured)."""
        deadline = time.monotonic() + timeout
        conn = psycopg2.connect(self.s.dsn)
        conn.autocommit = True
        try:
            cur = conn.cursor()
            while time.monotonic() < deadline:
                cur.execute("SELECT EXISTS (SELECT 1 FROM recipients WHERE batch_id = ANY(%s)"
                            " AND status IN ('queued', 'dispatched', 'started'))", (list(bids),))
                if not cur.fetchone()[0]:
                    done = now_ms()
                    if self.terminal(bids) >= n:
                        return done
                time.sleep(poll)
        finally:
            conn.close()
        raise RuntimeError(f"{n} recipients not terminal after {timeout}s")

    def close(self):
        self.s.stop_all()
        if os.environ.get("BENCH_KEEP_DB") == "1":    # to look at its plans afterwards
            print(f"  kept database {self.s.db}", flush=True)
        else:
            self.s.drop_db()
        self.s.drop_topics()


def _free_port():
    from conftest import free_port
    return free_port()


def numbers(prefix, n):
    return [f"+1{prefix}{i:07d}" for i in range(n)]


# ---- baselines ------------------------------------------------------------

def kafka_baseline(n, size=300):
    """Raw librdkafka (confluent-kafka) produce, then consume, n messages."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    brokers = os.environ["BC_KAFKA_BROKERS"]
    topic = f"bench-raw-{os.getpid()}-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result()
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "acks": "all"})
    payload = b"x" * size
    t0 = time.monotonic()
    for i in range(n):
        while True:
            try:
                p.produce(topic, payload, key=str(i).encode())
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)
    c = Consumer({"bootstrap.servers": brokers, "group.id": topic, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    while got < n:
        for m in c.consume(1000, 1.0):
            if not m.error():
                got += 1
    dt = time.monotonic() - t0
    c.close()
    admin.delete_topics([topic], operation_timeout=30)[topic].result()
    return n / dt


def pg_baseline(n):
    """Raw conditional UPDATEs, one per transaction, as our state changes are."""
    conn = psycopg2.connect(os.environ["BC_PG_DSN"])
    conn.autocommit = True
    cur = conn.cursor()
    # A logged table, as ours are: every commit waits for its WAL flush.
    cur.execute("DROP TABLE IF EXISTS bench_raw")
    cur.execute("CREATE TABLE bench_raw (id text PRIMARY KEY, status text)")
    cur.execute("INSERT INTO bench_raw SELECT 'r' || g, 'queued' FROM generate_series(1, %s) g", (n,))
    cur.execute("PREPARE up(text) AS UPDATE bench_raw SET status = 'done'"
                " WHERE id = $1 AND status = 'queued'")
    t0 = time.monotonic()
    for i in range(1, n + 1):
        cur.execute("EXECUTE up(%s)", (f"r{i}",))
    dt = time.monotonic() - t0
    cur.execute("DROP TABLE bench_raw")
    conn.close()
    return n / dt


def http_baseline(url, n=50):
    s = requests.Session()
    xs = []
    for _ in range(n):
        t0 = time.monotonic()
        s.get(url + "/healthz", timeout=5)
        xs.append((time.monotonic() - t0) * 1000)
    return pct(xs, 50)


# ---- scenarios ------------------------------------------------------------

def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def stack_pids(sc):
    """Every process the scenario's work runs in: ours, the simulator, the
    PostgreSQL backends serving its database, the Kafka broker."""
    pids = {name: p.p.pid for name, p in sc.s.procs.items()}
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    port = os.environ["BC_KAFKA_BROKERS"].rsplit(":", 1)[1]
    ss = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    apps = dict(sc.s.sql("SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s",
                         sc.s.db))
    for line in out.splitlines():
        pid, _, a = line.strip().partition(" ")
        if f"postgres: batchcall {sc.s.db} " in a:
            pids[f"pg {apps.get(int(pid)) or '?'} {pid}"] = int(pid)
        elif f"pid={pid}," in ss:
            pids["kafka"] = int(pid)
    return pids


class PgBackground:
    """PostgreSQL's work the scenario's writes cause outside its backends:
    autovacuum workers on its database, which come and go (sampled every
    0.1 s, each from its first sight: one that lives less than that is
    missed), and the cluster's WAL writer, checkpointer and background
    writer (the cluster serves only the bench while a scenario runs).
    Before the nineteenth session the table left both out: 0.02-0.04 ms
    an attempt in B2 (bench/RESULTS.md)."""

    CLUSTER = ("walwriter", "checkpointer", "background writer")

    def __init__(self, db):
        self.db, self.seen, self.base = db, {}, {}
        self.done = threading.Event()
        self.scan(first=True)
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def scan(self, first=False):
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if not cmd.startswith("postgres: "):
                continue
            what = cmd[len("postgres: "):].strip()
            if what.startswith("autovacuum worker") and self.db in what.split():
                key = "pg autovacuum"
            elif what in self.CLUSTER:
                key = "pg cluster"
            else:
                continue
            c = cpu_seconds(int(p))
            if int(p) not in self.base:
                self.base[int(p)] = (key, c if first or key == "pg cluster" else 0.0)
            self.seen[int(p)] = c

    def run(self):
        while not self.done.wait(0.1):
            self.scan()

    def stop(self):
        """{"pg autovacuum": s, "pg cluster": s}: CPU seconds since the start."""
        self.done.set()
        self.th.join()
        self.scan()
        out = {"pg autovacuum": 0.0, "pg cluster": 0.0}
        for pid, (key, c0) in self.base.items():
            out[key] += self.seen.get(pid, c0) - c0
        return out


REF_BUF = bytes(4 << 20)


def ref_core_ms():
    """The CPU time (this thread's, not the wall's) of a fixed piece of
    work, SHA-256 of 4 MiB: how fast a core is now, apart from how busy the
    cores are. The second hour at 800 calls/s ran at 2.46 ms of machine CPU
    a call in its first ten minutes and 2.24 in its third, with nothing of
    ours changed, and B2 runs back to back moved by a sixth; this tells
    such drifts of the machine from a cost of ours (bench/RESULTS.md,
    thirty-second and thirty-third sessions)."""
    t = time.thread_time()
    hashlib.sha256(REF_BUF).digest()
    return (time.thread_time() - t) * 1000.0


def ref_ms():
    """ref_core_ms at its best of three."""
    return min(ref_core_ms() for _ in range(3))


def cpu_table(label, pids, before, after, wall):
    """Prints each process's share of the run in cores; PostgreSQL backends
    are named by what they serve (the busiest is the worker's)."""
    used = sorted(((after[k] - before.get(k, 0.0)) / wall, k) for k in after)
    total = sum(u for u, _ in used)
    print(f"  {label} CPU over {wall:.1f} s, in cores (machine: {os.cpu_count()}):", flush=True)
    for u, k in reversed(used):
        if u >= 0.01:
            print(f"    {k:<22} {u:5.2f}", flush=True)
    print(f"    {'all of them':<22} {total:5.2f}", flush=True)
    return total


def statements_start(sc):
    """Turns on per-statement accounting for the scenario's database, if the
    cluster loads pg_stat_statements (deploy/local/pg.sh asks it to; a
    cluster started before that needs a restart). False if it does not."""
    try:
        sc.s.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        sc.s.sql("SELECT pg_stat_statements_reset()")
        return True
    except Exception as e:  # noqa: BLE001 (not loaded: say so, go on)
        print(f"  (no per-statement table: {str(e).strip().splitlines()[0]})", flush=True)
        return False


def statements_table(sc, label, attempts, top=15):
    """The statements of the scenario's database that took the most time,
    per attempt: where the PostgreSQL backends' CPU goes. WAL is each
    statement's own (bytes and full-page images per attempt): what a
    statement writes is most of what it costs, and what the WAL writer,
    the checkpointer and vacuum pay for again later."""
    rows = sc.s.sql(
        "SELECT s.calls, s.total_exec_time + s.total_plan_time, s.rows, s.total_plan_time,"
        "       s.wal_bytes, s.wal_fpi,"
        "       regexp_replace(left(s.query, 400), '\\s+', ' ', 'g')"
        "  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database()"
        " ORDER BY 2 DESC LIMIT %s", top)
    total, wal, fpi = sc.s.sql(
        "SELECT sum(s.total_exec_time + s.total_plan_time), sum(s.wal_bytes), sum(s.wal_fpi)"
        "  FROM pg_stat_statements s"
        "  JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()")[0]
    print(f"  {label} statements by time (all: {float(total or 0) / attempts * 1000:.0f} us, "
          f"{float(wal or 0) / attempts:,.0f} B of WAL and {float(fpi or 0) / attempts:.2f} "
          f"full-page images per attempt):", flush=True)
    print(f"    {'us/attempt':>10} {'calls':>8} {'us/call':>8} {'planning':>8} {'rows/call':>9}"
          f" {'WAL B/att':>9} {'FPI/att':>7}  statement", flush=True)
    for calls, ms, nrows, plan, wb, wf, q in rows:
        print(f"    {ms / attempts * 1000:10.1f} {calls:8d} {ms / calls * 1000:8.1f} "
              f"{plan / calls * 1000:8.1f} {nrows / calls:9.1f} {float(wb) / attempts:9.0f}"
              f" {wf / attempts:7.3f}  {q[:150]}", flush=True)


def b2(args):
    """Dispatch throughput with zero-length calls."""
    n = args.b2_n
    sc = Scenario("b2", {"BC_SIM_MS_PER_SECOND": "0", "BC_SIM_RING_SECONDS": "0",
                         "BC_SIM_TALK_SECONDS": "0", "BC_SIM_MIX": "completed=1"},
                  workers=args.workers)
    try:
        t = sc.tenant(concurrency=int(os.environ.get("B2_TENANT_LIMIT", "1000")))
        # B2_BATCH_SIZE: recipients a batch (5,000: four batches of 20,000).
        per = int(os.environ.get("B2_BATCH_SIZE", "5000"))
        bids = []
        pids = stack_pids(sc)
        idle_s = float(os.environ.get("B2_IDLE_S", "0"))
        if idle_s:    # what the stack costs per second with no work at all
            time.sleep(3)
            i0 = {k: cpu_seconds(p) for k, p in pids.items()}
            time.sleep(idle_s)
            i1 = {k: cpu_seconds(p) for k, p in pids.items()}
            idle = {k: (i1[k] - i0[k]) / idle_s for k in i1 if k not in ("sim", "agent")}
            print(f"  B2 idle over {idle_s:.0f} s, ours: {sum(idle.values()):.3f} cores "
                  + " ".join(f"{k}={v:.3f}" for k, v in sorted(idle.items()) if v >= 0.005), flush=True)
        stmts = statements_start(sc)
        ref0 = ref_ms()
        bg = PgBackground(sc.s.db)
        before = {k: cpu_seconds(p) for k, p in pids.items()}
        t0 = time.monotonic()
        for i in range(0, n, per):
            bids.append(sc.create(t, numbers(f"2{i // per:02d}", min(per, n - i)), limit=int(os.environ.get("B2_BATCH_LIMIT", "250"))))
        # Polled once a second: the count is itself a query on PostgreSQL,
        # which shares the 2 cores. The span comes from PostgreSQL's own
        # timestamps: the first claim to the last recipient ended.
        sc.wait_terminal(bids, n, 600, poll=1.0)
        pids.update(stack_pids(sc))
        after = {k: cpu_seconds(p) for k, p in pids.items()}
        after.update(bg.stop())
        ref = (ref0 + ref_ms()) / 2
        cores = cpu_table("B2", pids, before, after, time.monotonic() - t0)
        if stmts:
            statements_table(sc, "B2", n)
        # Ours alone: the carrier (simulator) and the customer's agent are
        # not batchcall's cost.
        ours = sum(after[k] - before.get(k, 0.0) for k in after if k not in ("sim", "agent"))
        span = sc.s.sql("SELECT extract(epoch FROM (SELECT max(updated_at) FROM recipients)"
                        " - (SELECT min(created_at) FROM calls))")[0][0]
        rate = n / float(span)
        dials = sc.ledger()["dials"]
        print(f"  B2 dispatch: {rate:,.0f} attempts/s ({float(span):.1f} s)", flush=True)
    finally:
        sc.close()
    kb = kafka_baseline(n)
    pb = pg_baseline(n)
    row("B2", f"attempts/s, {n:,} zero-length calls", rate, "att/s", min(kb, pb), ">= 3,500")
    row("B2", "  baseline: raw Kafka produce+consume", kb, "msg/s")
    row("B2", "  baseline: raw PostgreSQL conditional UPDATE", pb, "upd/s")
    row("B2", "  dials placed (must equal recipients)", dials, "dials", float(n))
    row("B2", "  CPU of every process of the stack", cores, "cores", float(os.cpu_count()))
    # In microseconds: to one decimal of a millisecond, runs 5 % apart read
    # the same (the target is 0.6 ms).
    row("B2", "  CPU per attempt, simulator and agent excluded", ours * 1e6 / n, "us", None,
        "<= 600 us")
    # The same in units of a fixed piece of work timed before and after the
    # run (ref_core_ms): runs a machine's drift apart compare here.
    row("B2", "  the same, per ms of ref (SHA-256 of 4 MiB)", ours * 1e6 / n / ref, "us/ref-ms",
        ref)


def b3(args):
    """Slot utilisation at limit 200, calls of 1-3 s."""
    limit, n = 200, args.b3_n
    # B3_TALK_SPREAD=1: talk times anywhere in 1-3 s, to the millisecond.
    # By default they are whole seconds, so calls that start together end
    # together, and the slots' ends keep coming in bursts (RESULTS.md).
    # B3_WORKERS: workers sharing the batch (1; two measured worse, RESULTS.md).
    sc = Scenario("b3", {"BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
                         "BC_SIM_TALK_SECONDS": "1-3", "BC_SIM_MIX": "completed=1",
                         "BC_SIM_TALK_SPREAD": os.environ.get("B3_TALK_SPREAD", "0")},
                  workers=int(os.environ.get("B3_WORKERS", "1")))
    try:
        t = sc.tenant(concurrency=limit)
        pids = stack_pids(sc)
        stmts = statements_start(sc)
        bg = PgBackground(sc.s.db)
        before = {k: cpu_seconds(p) for k, p in pids.items()}
        age0 = event_age(sc)
        wurl = f"http://127.0.0.1:{sc.workers[0][1]}"
        h_age0 = hist(wurl, "worker_carrier_event_age_seconds", 'kind="end"')
        h_cb0 = hist(sc.s.api, "http_request_duration_seconds", "twilio/status")
        t0 = time.monotonic()
        bid = sc.create(t, numbers("300", n), limit=limit)
        samples, stop = [], threading.Event()

        # The harness's own queries share the 2 cores with the stack. Each
        # Stack.sql opens a connection, so a sample forked a backend and
        # planned a count on its cold caches (2.8-3.2 ms, ten a second). The
        # sampler keeps one connection and asks only whether work waits, and
        # the end is polled twice a second, not twenty times
        # (bench/RESULTS.md, sixteenth session).
        def sample():
            conn = psycopg2.connect(sc.s.dsn)
            conn.autocommit = True
            cur = conn.cursor()
            while not stop.is_set():
                led = sc.ledger()
                cur.execute("SELECT EXISTS (SELECT 1 FROM recipients WHERE batch_id = %s"
                            " AND status = 'queued')", (bid,))
                samples.append((led["batches"].get(bid, {}).get("live", 0), cur.fetchone()[0]))
                time.sleep(0.1)
            conn.close()
        th = threading.Thread(target=sample)
        th.start()
        sc.wait_terminal([bid], n, 600, poll=0.5)
        stop.set()
        th.join()
        # Who takes the cores while the slots turn over: the idle below is
        # mostly waiting for one (bench/RESULTS.md, fifteenth session).
        pids.update(stack_pids(sc))
        cpu_table("B3", pids, before, dict({k: cpu_seconds(p) for k, p in pids.items()},
                                           **bg.stop()), time.monotonic() - t0)
        if stmts:
            statements_table(sc, "B3", n, top=8)
        age1 = event_age(sc)
        h_age1 = hist(wurl, "worker_carrier_event_age_seconds", 'kind="end"')
        h_cb1 = hist(sc.s.api, "http_request_duration_seconds", "twilio/status")
        peak = sc.ledger()["batches"][bid]["peak_live"]
        rows = sc.s.sql("SELECT extract(epoch FROM created_at) * 1000, extract(epoch FROM ended_at) * 1000,"
                        " id FROM calls WHERE batch_id = %s", bid)
        dials = sc.dials(bid)
        split = b3_split(dials, rows, limit)
        if os.environ.get("B3_DUMP"):
            with open(os.environ["B3_DUMP"], "w") as f:
                json.dump({"dials": dials, "rows": [[float(a), float(b) if b else None, c] for a, b, c in rows],
                           "off": time.time() * 1000.0 - time.monotonic() * 1000.0}, f)
    finally:
        sc.close()
    # Only while work waits, after the first fill.
    busy = [live for live, waiting in samples if waiting]
    busy = busy[next((i for i, v in enumerate(busy) if v >= limit * 0.9), 0):]
    util = statistics.mean(busy) / limit * 100 if busy else float("nan")
    starts = sorted(r[0] for r in rows)[limit:]
    ends = sorted(r[1] for r in rows)
    gaps = [max(0.0, s - e) for s, e in zip(starts, ends)]
    row("B3", "slots busy while work waits", util, "%", 100.0, ">= 95 %")
    print(f"  B3 slots busy while work waits, to two places: {util:.2f} % of {len(busy)} samples",
          flush=True)
    row("B3", "peak live calls (limit 200)", float(peak), "calls", float(limit), "never above")
    row("B3", "refill gap p99 (our end -> next claim)", pct(gaps, 99), "ms", None, "<= 100 ms")
    for key, what in B3_LEGS:
        row("B3", what, split[key], "ms")
    print("  B3 slot idle by 10 s of the run, mean (ms): " + "  ".join(
        f"{s}-{s + 10} s: {v:.1f}" for s, v in split["windows"].items()), flush=True)
    if age1[1] > age0[1]:
        row("B3", "      of it, API's publish -> worker takes the end, mean",
            (age1[0] - age0[0]) / (age1[1] - age0[1]) * 1000.0, "ms")
    # Where the tail is: the ends' age when the worker takes them, and the
    # API's answer to the carrier's callbacks (it answers once Kafka has
    # the event), as shares at or under each bound.
    print("  B3 ends taken by the worker within (ms): " + "  ".join(
        f"{float(le) * 1000:g}: {v:.1f} %" for le, v in
        hist_shares(h_age0, h_age1, ["0.002", "0.005", "0.01", "0.02", "0.05"])), flush=True)
    print("  B3 callbacks answered by the API within (ms): " + "  ".join(
        f"{float(le) * 1000:g}: {v:.1f} %" for le, v in
        hist_shares(h_cb0, h_cb1, ["0.001", "0.005", "0.01", "0.025", "0.05"])), flush=True)


def hist(url, name, match):
    """{le: cumulative count} of the histogram name at url, its series whose
    labels hold match (summed over the rest)."""
    out = {}
    for series, v in scrape(url).items():
        if series.startswith(name + "_bucket{") and match in series:
            le = series.split('le="')[1].split('"')[0]
            out[le] = out.get(le, 0.0) + v
    return out


def hist_shares(h0, h1, les):
    """The share of a histogram's new observations at or under each le."""
    inf = h1.get("+Inf", 0.0) - h0.get("+Inf", 0.0)
    return [(le, (h1.get(le, 0.0) - h0.get(le, 0.0)) / inf * 100 if inf else float("nan"))
            for le in les]


def event_age(sc):
    """(sum s, count) of the first worker's worker_carrier_event_age_seconds
    of the calls' ends."""
    m = scrape(f"http://127.0.0.1:{sc.workers[0][1]}")
    return (m.get('worker_carrier_event_age_seconds_sum{kind="end"}', 0.0),
            m.get('worker_carrier_event_age_seconds_count{kind="end"}', 0.0))


# b3_split's legs, in B3's rows: (key, label).
B3_LEGS = [("idle", "  slot idle, carrier's end -> its next dial, mean"),
           ("end", "    carrier's end -> our end written, mean"),
           ("create", "    our claim -> carrier has the create, mean"),
           ("idle_p50", "  slot idle, p50"), ("end_p50", "    carrier's end -> our end, p50"),
           ("create_p50", "    our claim -> the create, p50"), ("idle_p90", "  slot idle, p90")]


def b3_split(dials, rows, limit):
    """Where a slot's idle time goes, as the carrier sees it: from a call's
    end at the carrier to the next dial it receives, split into the legs
    of the path, by the keys of B3_LEGS (means over the run, medians, p90).
    dials: the carrier's ledger; rows: (created_at ms, ended_at ms, id) of
    our calls. The carrier's clock is
    CLOCK_MONOTONIC, PostgreSQL's is the wall clock: converted here."""
    off = time.time() * 1000.0 - time.monotonic() * 1000.0
    ours = {r[2]: (float(r[0]) - off, float(r[1]) - off if r[1] is not None else None)
            for r in rows}
    cb, dl = [], []
    for d in dials:
        o = ours.get(d["call_id"])
        if not o:
            continue
        dl.append(d["at_ms"] - o[0])              # our claim -> the carrier has the create
        if d.get("ended_ms") and o[1] is not None:
            cb.append(o[1] - d["ended_ms"])       # carrier's end -> our end written
    starts = sorted(d["at_ms"] for d in dials)
    ends = sorted(d["ended_ms"] for d in dials if d.get("ended_ms"))
    total = [max(0.0, a - e) for a, e in zip(starts[limit:], ends)]
    # The idle by 10 s of the run (by the carrier's end): the calls begin
    # together and end in step for their first seconds (RESULTS.md,
    # twenty-fifth session), so the mean alone hides where it is.
    windows = {}
    for e, gap in zip(ends, total):
        windows.setdefault(int((e - starts[0]) // 10000) * 10, []).append(gap)
    # The means, and the medians beside them: a mean well above its median
    # is a tail (stalls), not the path every slot takes.
    return {"idle": statistics.mean(total) if total else 0.0,
            "end": statistics.mean(cb) if cb else 0.0,
            "create": statistics.mean(dl) if dl else 0.0,
            "idle_p50": pct(total, 50), "end_p50": pct(cb, 50), "create_p50": pct(dl, 50),
            "idle_p90": pct(total, 90),
            "windows": {s: statistics.mean(v) for s, v in sorted(windows.items())}}


def b4(args):
    """First-dial latency: POST -> the carrier's first dial."""
    sc = Scenario("b4", {"BC_SIM_MS_PER_SECOND": "10", "BC_SIM_MIX": "completed=1"})
    try:
        t = sc.tenant(concurrency=100)
        lat = []
        # The first run waits for the worker's partition assignment: not counted.
        time.sleep(float(os.environ.get("B4_SETTLE_S", "0")))
        for i in range(-1, args.b4_runs):
            t0 = now_ms()
            bid = sc.create(t, numbers(f"4{i + 1:02d}", 1), limit=1)
            while True:
                d = sc.dials(bid)
                if d:
                    if i >= 0:
                        lat.append(d[0]["at_ms"] - t0)
                    break
                time.sleep(0.002)
        base = http_baseline(sc.s.sim)
    finally:
        sc.close()
    print("  B4 runs (ms):", " ".join(f"{x:.0f}" for x in lat), flush=True)
    row("B4", "first dial after POST, p50", pct(lat, 50), "ms", base, "<= 50 ms")
    row("B4", "first dial after POST, p99", pct(lat, 99), "ms", base)
    row("B4", "  baseline: bare HTTP round trip to the sim", base, "ms")


def rate_over(sc, bids, seconds, cap=None):
    """Attempts ended per second over a window, after a 5 s warm-up. With
    cap, the window ends early once cap attempts have ended, so a small
    backlog is measured while every batch still has work (each poll is a
    count over the batches: only used for small ones)."""
    time.sleep(5)
    n0, t0 = sc.terminal(bids), time.monotonic()
    if cap is None:
        time.sleep(seconds)
        n = sc.terminal(bids)
    else:
        while True:
            time.sleep(1)
            n = sc.terminal(bids)
            if n - n0 >= cap or time.monotonic() - t0 >= seconds:
                break
    wall = time.monotonic() - t0
    print(f"  {n - n0:,} attempts ended in {wall:.1f} s ({n:,} of the backlog done)", flush=True)
    return (n - n0) / wall


def b5(args):
    """Scale: dispatch with 1,000,000 waiting vs 10,000; worker RSS; bytes per recipient."""
    zero = {"BC_SIM_MS_PER_SECOND": "0", "BC_SIM_RING_SECONDS": "0", "BC_SIM_TALK_SECONDS": "0",
            "BC_SIM_MIX": "completed=1"}
    # The same 200 batches and limits both times; only the backlog differs.
    nb, slots = 200, 400
    rates = {}
    for waiting in (10000, args.b5_big):
        sc = Scenario(f"b5-{waiting}", zero)
        try:
            t = sc.tenant(concurrency=slots)
            per = waiting // nb
            start = (datetime.datetime.now(datetime.timezone.utc)
                     + datetime.timedelta(seconds=120 if waiting > 10000 else 10))
            bids = [sc.create(t, numbers(f"5{i:03d}", per), limit=slots // nb,
                              scheduled_at=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
                    for i in range(nb)]
            if waiting > 10000:
                size = sc.s.sql("SELECT pg_total_relation_size('recipients'), count(*) FROM recipients")[0]
            while sc.s.sql("SELECT count(*) FROM batches WHERE id = ANY(%s) AND state = 'admitted'",
                           bids)[0][0] < nb:
                time.sleep(0.5)
            pids = stack_pids(sc)
            before, t0 = {k: cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
            # The small half would run out of work within the window (50
            # per batch): it is measured until 40 % of it has ended, while
            # every batch still has recipients waiting.
            rates[waiting] = rate_over(sc, bids, args.b5_window,
                                       cap=int(waiting * 0.4) if waiting <= 10000 else None)
            cpu_table(f"B5 {waiting:,}", pids, before, {k: cpu_seconds(p) for k, p in pids.items()},
                      time.monotonic() - t0)
        finally:
            sc.close()
    row("B5", f"attempts/s, {args.b5_big:,} waiting in {nb} batches",
        rates[args.b5_big], "att/s", rates[10000], "ratio >= 0.9")
    row("B5", f"  the same, 10,000 waiting in {nb} batches", rates[10000], "att/s")
    row("B5", "PostgreSQL bytes per recipient (table + indexes)", size[0] / size[1], "B")
    # Worker memory with 5,000 live calls.
    sc = Scenario("b5-rss", {"BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "1",
                             "BC_SIM_TALK_SECONDS": "300", "BC_SIM_MIX": "completed=1"},
                  worker_env={"BC_WORKER_MAX_DIALS": "512"})
    try:
        t = sc.tenant(concurrency=5000)
        bid = sc.create(t, numbers("590", 5000), limit=5000)
        deadline = time.monotonic() + 150
        live = 0
        while time.monotonic() < deadline:
            live = sc.ledger()["batches"].get(bid, {}).get("live", 0)
            if live >= 5000:
                break
            time.sleep(1)
        pid = sc.workers[0][0].p.pid
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) / 1024.0
    finally:
        sc.close()
    row("B5", f"worker RSS with {live:,} live calls", rss, "MiB", None, "<= 64 MB")


def b6(args):
    """Cancel latency: from cancel returning to the last new dial."""
    sc = Scenario("b6", {"BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
                         "BC_SIM_TALK_SECONDS": "0-1", "BC_SIM_MIX": "completed=1"})
    try:
        t = sc.tenant(concurrency=1000)
        lat, after = [], 0
        for i in range(args.b6_runs):
            bid = sc.create(t, numbers(f"6{i:02d}", 2000), limit=100)
            while len(sc.dials(bid)) < 300:
                time.sleep(0.05)
            r = requests.post(f"{sc.s.api}/agents/calls/batches/{bid}/cancel", timeout=30,
                              headers={"X-API-Key": t["api_key"], "Cartesia-Version": "2026-03-01"})
            r.raise_for_status()
            returned = now_ms()
            time.sleep(2)
            last = max(d["at_ms"] for d in sc.dials(bid))
            lat.append(max(0.0, last - returned))
            after += sum(1 for d in sc.dials(bid) if d["at_ms"] > returned)
    finally:
        sc.close()
    row("B6", "cancel returned -> last new dial, p99", pct(lat, 99), "ms", None, "<= 500 ms (0)")
    row("B6", f"dials after cancel returned, {args.b6_runs} cancels", float(after), "dials", None, "0")


def b7(args):
    """Fairness: a tenant with a huge backlog, another with 100."""
    big = args.b7_big
    sc = Scenario("b7", {"BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "1",
                         "BC_SIM_TALK_SECONDS": "20-40", "BC_SIM_MIX": "completed=1"})
    try:
        a = sc.tenant(concurrency=200)
        b = sc.tenant(concurrency=20)
        t0 = time.monotonic()
        per = 5000
        for i in range(0, big, per):
            sc.create(a, numbers(f"7{i // per:03d}", min(per, big - i)), limit=1)
        build_s = time.monotonic() - t0
        lat = []
        for i in range(args.b7_runs):
            t1 = now_ms()
            bid = sc.create(b, numbers(f"79{i:02d}", 100), limit=10)
            while not sc.dials(bid):
                time.sleep(0.005)
            lat.append(min(d["at_ms"] for d in sc.dials(bid)) - t1)
            requests.post(f"{sc.s.api}/agents/calls/batches/{bid}/cancel", timeout=30,
                          headers={"X-API-Key": b["api_key"], "Cartesia-Version": "2026-03-01"})
        waiting = sc.s.sql("SELECT count(*) FROM recipients WHERE tenant_id = %s AND status = 'queued'",
                           a["tenant_id"])[0][0]
    finally:
        sc.close()
    row("B7", f"small tenant's first dial, {waiting:,} waiting, p50", pct(lat, 50), "ms", None, "<= 1,000 ms")
    row("B7", "small tenant's first dial, max", max(lat), "ms", None, "<= 1,000 ms")
    row("B7", "  backlog built through the API in", build_s, "s")


# The dial-time gate's expression (common/bc_policy.h BC_SQL_POLICY_BLOCK),
# over an array of numbers: what dial_start_many evaluates per call.
def gate_sql():
    """The gate's own expression, common/sql/policy_block.sql, the text the
    worker's dial-start statement and the API's create embed (bc_policy.h),
    over one tenant and an array of numbers: how many of them are stopped."""
    with open(os.path.join(ROOT, "common", "sql", "policy_block.sql")) as f:
        expr = " ".join(l for l in f.read().splitlines() if not l.lstrip().startswith("--"))
    expr = expr.replace(":tenant", "%s").replace(":number", "n")
    return f"SELECT count(*) FILTER (WHERE {expr} IS NOT NULL) FROM unnest(%s::text[]) AS n"


def gate_us(sc, tenant, nums, runs=7):
    """Microseconds per lookup of the gate over nums, the median of runs."""
    took = []
    with psycopg2.connect(sc.s.dsn) as conn, conn.cursor() as cur:
        for _ in range(runs):
            t0 = time.perf_counter()
            cur.execute(gate_sql(), (tenant, nums))
            hits = cur.fetchone()[0]
            took.append((time.perf_counter() - t0) * 1e6 / len(nums))
    return statistics.median(took), hits


def whole_path(sc, out, runs, n, first):
    """A batch of n numbers, none of them listed, through the API and the
    worker for each (name, tenant) in turn; the best rate and create of each
    name count (interleaved, so a machine busy with something else for a
    while hurts both alike)."""
    for k, (name, t) in enumerate(runs, first):
        t0 = time.monotonic()
        bid = sc.create(t, numbers(f"89{k}", n), limit=250)
        create_ms = (time.monotonic() - t0) * 1000
        sc.wait_terminal([bid], n, 300, poll=0.5)
        span = sc.s.sql("SELECT extract(epoch FROM (SELECT max(updated_at) FROM recipients"
                        " WHERE batch_id = %s) - (SELECT min(created_at) FROM calls"
                        " WHERE batch_id = %s))", bid, bid)[0][0]
        rate = n / float(span)
        out[f"rate_{name}"] = max(out.get(f"rate_{name}", 0), rate)
        out[f"create_{name}_ms"] = min(out.get(f"create_{name}_ms", 1e9), create_ms)
        print(f"  B8 {name}: create {create_ms:.0f} ms, {rate:,.0f} attempts/s", flush=True)


def b8(args):
    """Dial-time DNC lookup with 1,000,000 listed numbers against none."""
    big, n = args.b8_big, args.b8_n
    sc = Scenario("b8", {"BC_SIM_MS_PER_SECOND": "0", "BC_SIM_RING_SECONDS": "0",
                         "BC_SIM_TALK_SECONDS": "0", "BC_SIM_MIX": "completed=1"})
    out = {}
    try:
        none_t, listed_t = sc.tenant(concurrency=500), sc.tenant(concurrency=500)
        probe = [f"+1889{i:07d}" for i in range(20000)]
        hit = [f"+1888{i * (big // 20000):07d}" for i in range(20000)]
        # The baseline: the same lookups while nothing at all is listed.
        out["miss_empty"], _ = gate_us(sc, listed_t["tenant_id"], probe)
        out["hit_empty"], hits = gate_us(sc, listed_t["tenant_id"], hit)
        assert hits == 0, hits
        whole_path(sc, out, (("empty", listed_t),), n, 0)
        # The list goes in as an operator would: one CSV through dnc-import.
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("number\n")
            f.writelines(f"+1888{i:07d}\n" for i in range(big))
            path = f.name
        t0 = time.monotonic()
        got = json.loads(subprocess.run(
            [sc.s.bin("batchcall"), "dnc-import", "--tenant", listed_t["tenant_id"], "--file", path],
            env=sc.s.env, check=True, capture_output=True, text=True, timeout=600).stdout)
        out["import_s"] = time.monotonic() - t0
        os.unlink(path)
        assert got["added"] == big, got
        print(f"  B8 imported {big:,} numbers in {out['import_s']:.1f} s", flush=True)
        # Lookups: numbers that are not listed (the common case, a dial that
        # goes out) and numbers that are, for each tenant.
        out["miss_big_fresh"], _ = gate_us(sc, listed_t["tenant_id"], probe)
        conn = psycopg2.connect(sc.s.dsn)   # autovacuum's work, done now (sql/0018)
        conn.autocommit = True
        conn.cursor().execute("VACUUM (ANALYZE) dnc")
        try:
            # The import's WAL, flushed now rather than during the runs below.
            conn.cursor().execute("CHECKPOINT")
        except psycopg2.Error:
            pass
        conn.close()
        out["miss_big"], _ = gate_us(sc, listed_t["tenant_id"], probe)
        out["hit_big"], hits = gate_us(sc, listed_t["tenant_id"], hit)
        assert hits == len(hit), hits
        out["miss_none"], _ = gate_us(sc, none_t["tenant_id"], probe)
        plan = sc.s.sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT 1 FROM dnc"
                        " WHERE dnc.tenant_id = %s AND dnc.number = %s",
                        listed_t["tenant_id"], hit[7])
        print("  B8 plan of one lookup, 1,000,000 listed:", flush=True)
        for line in plan:
            print("    " + line[0], flush=True)
        # The whole path again, now that 1,000,000 are listed.
        whole_path(sc, out, (("none", none_t), ("big", listed_t)) * 2, n, 1)
        out["dials"] = sc.ledger()["dials"]
    finally:
        sc.close()
    row("B8", f"gate lookup, {big:,} listed, number not listed", out["miss_big"], "us",
        out["miss_empty"])
    row("B8", f"gate lookup, {big:,} listed, number listed", out["hit_big"], "us",
        out["hit_empty"])
    row("B8", "  same, right after the import (before vacuum)", out["miss_big_fresh"], "us",
        out["miss_empty"])
    row("B8", "  another tenant, none of its own listed", out["miss_none"], "us",
        out["miss_empty"])
    row("B8", "  baseline: gate lookup, nothing listed (before the import)", out["miss_empty"], "us")
    row("B8", "  baseline: the listed numbers, nothing listed", out["hit_empty"], "us")
    row("B8", f"attempts/s, {n:,} zero-length calls, {big:,} listed", out["rate_big"], "att/s",
        out["rate_empty"])
    row("B8", "  another tenant, none of its own listed", out["rate_none"], "att/s",
        out["rate_empty"])
    row("B8", "  baseline: attempts/s, nothing listed (before the import)", out["rate_empty"],
        "att/s")
    row("B8", f"create of {n:,} recipients, {big:,} listed", out["create_big_ms"], "ms",
        out["create_none_ms"])
    row("B8", "  baseline: create, none listed", out["create_none_ms"], "ms")
    row("B8", f"dnc-import of {big:,} numbers (CSV, one transaction)", big / out["import_s"],
        "numbers/s")
    row("B8", "  dials placed (must equal recipients)", out["dials"], "dials", float(5 * n))


def b9(args):
    """A create on statistics that say no recipient is queued, against the
    same creates once the table is analyzed again."""
    n, k = args.b9_n, args.b9_runs
    sc = Scenario("b9", {})
    times = {}
    try:
        t = sc.tenant(concurrency=1)
        s = sc.s
        # What a table analyzed after its work was done looks like: every
        # recipient finished. Autovacuum is held off so the statistics stay
        # as they are while queued rows pile up (a tenant limit of 1 keeps
        # them queued).
        s.sql("ALTER TABLE recipients SET (autovacuum_enabled = false)")
        for i in range(4):
            sc.create(t, numbers(f"5{i:02d}", n), limit=1)
        s.sql("UPDATE batches SET state = 'cancelled'")
        s.sql("UPDATE recipients SET status = 'completed', released = false")
        s.sql("ANALYZE recipients")
        for label, prefix in (("stale", "6"), ("fresh", "7")):
            if label == "fresh":
                s.sql("ANALYZE recipients")
            times[label] = []
            for i in range(k):
                t0 = time.monotonic()
                sc.create(t, numbers(f"{prefix}{i:02d}", n), limit=1)
                times[label].append((time.monotonic() - t0) * 1000.0)
            print(f"  B9 {label} statistics, ms per create in order: "
                  + ", ".join(f"{v:.0f}" for v in times[label]), flush=True)
    finally:
        sc.close()
    fresh = statistics.median(times["fresh"])
    row("B9", f"create of {n:,} on stale statistics, p50", statistics.median(times["stale"]), "ms",
        fresh, "ratio <= 1.5")
    row("B9", f"  the last of {k} stale creates", times["stale"][-1], "ms", fresh, "no growth")


SCENARIOS = {"B2": b2, "B3": b3, "B4": b4, "B5": b5, "B6": b6, "B7": b7, "B8": b8, "B9": b9}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ids", nargs="*", help="scenario ids (default: all)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "1")))
    ap.add_argument("--b2-n", type=int, default=20000)
    ap.add_argument("--b3-n", type=int, default=5000)
    ap.add_argument("--b4-runs", type=int, default=30)
    ap.add_argument("--b5-big", type=int, default=1000000)
    ap.add_argument("--b5-window", type=int, default=30)
    ap.add_argument("--b6-runs", type=int, default=10)
    ap.add_argument("--b7-big", type=int, default=1000000)
    ap.add_argument("--b7-runs", type=int, default=5)
    ap.add_argument("--b8-big", type=int, default=1000000)
    ap.add_argument("--b8-n", type=int, default=3000)
    ap.add_argument("--b9-n", type=int, default=5000)
    ap.add_argument("--b9-runs", type=int, default=8)
    args = ap.parse_args()
    ids = [i.upper() for i in args.ids] or list(SCENARIOS)
    load_env()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"batchcall bench, commit {commit}, {os.cpu_count()} CPUs, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
    for i in ids:
        t0 = time.monotonic()
        print(f"{i}: {SCENARIOS[i].__doc__}", flush=True)
        SCENARIOS[i](args)
        print(f"  ({time.monotonic() - t0:.0f} s)", flush=True)
    print()
    print("| id | what | value | unit | baseline | ratio | target |")
    print("|---|---|---|---|---|---|---|")
    for bid, what, value, unit, base, ratio, target in ROWS:
        print(f"| {bid} | {what.strip()} | {value:,.1f} | {unit} | "
              f"{'-' if base is None else f'{base:,.1f}'} | {'-' if ratio is None else f'{ratio:.2f}'} | {target} |")


if __name__ == "__main__":
    main()
