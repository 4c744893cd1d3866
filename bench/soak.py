"""The long-running profile (issue 17): an hour of steady dialing at half of
B2's rate with calls of 1-3 s, sampled every --every seconds, to show what
grows. Not part of CI. One command:

    python3 bench/soak.py                       # 60 minutes, about 800 calls/s
    python3 bench/soak.py --minutes 5 --rate 50 # a short look

The default rate, 800 calls/s, is half of B2's at d9d1850 (1,622-1,653
attempts/s); the soaks before the thirty-first session ran at 100, half of
B2's when this was written (bench/RESULTS.md). Each answered call goes to
a SIP endpoint (BENCH_AGENT=sip, unless set): the reference agent cannot
take 1,600 Media Streams on two cores, and would measure itself.

The rate is set the way a customer sets it, by concurrency: with calls of
1-3 s (2 s on average) a limit of 2 x rate keeps `rate` calls a second
going (Little's law). New 5,000-recipient batches are created whenever
fewer than a minute of work is queued, so the backlog never runs dry.

Each sample records, in bench/soak.csv: the RSS of every process of ours
and of the simulator; the size and dead-tuple share of the busiest tables
with their indexes (pg_stat_user_tables); the Kafka consumer lag of the
worker's jobs and carrier-event groups; live calls; and the p99 refill gap
of the calls that ended in the interval (a call's end to the next claim, as
B3 measures it); the CPU every process used per call ended in the
interval (ours, the simulator, the PostgreSQL backends of our services, the
broker, and the whole machine, the harness included); the WAL written
per call (bytes and full-page images); and how long a fixed piece of
work takes a core (`cpu_ref_ms`), to tell the machine's drifts from ours.
At the end it prints, per series, the mean of minutes 5-10 against the
mean of the last five minutes, draws bench/soak.png, and splits the
calls of the batches the simulator keeps (one in twenty) as B3 does (the
carrier's end to ours, our claim to the carrier's create) beside the simulator's own length of a call,
so that what grows in the harness is told from what grows in batchcall.
`--reset-agent` clears the reference agent's records at each sample.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (bench/run.py: Scenario, numbers, pct)
from conftest import sim_map_hash  # noqa: E402  (on the path bench/run.py adds)

TABLES = ("recipients", "calls", "outbox", "leases", "batches", "credit_ledger", "credit_usage")
PROCS = ("api", "sched", "worker0", "sim")


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def lag(admin, consumer_cls, brokers, group, topic):
    """The group's lag on topic: end offsets minus committed, all partitions."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    md = admin.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or not md.partitions:
        return 0
    parts = [TopicPartition(topic, p) for p in md.partitions]
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, parts)])
    committed = {tp.partition: tp.offset for tp in fut[group].result().topic_partitions}
    c = consumer_cls({"bootstrap.servers": brokers, "group.id": group + ".soak-probe"})
    try:
        total = 0
        for tp in parts:
            _, high = c.get_watermark_offsets(tp, timeout=10)
            done = committed.get(tp.partition, -1)
            total += high - done if done >= 0 else high
        return total
    finally:
        c.close()


def table_stats(sc):
    rows = sc.s.sql("SELECT relname, pg_total_relation_size(relid), n_live_tup, n_dead_tup"
                    "  FROM pg_stat_user_tables WHERE relname = ANY(%s)", list(TABLES))
    out = {}
    for name, size, live, dead in rows:
        out[f"{name}_mib"] = size / 1048576.0
        out[f"{name}_dead_pct"] = 100.0 * dead / (live + dead) if live + dead else 0.0
    return out


# Statements of the scheduler whose pages a call must not grow with the
# region's history (bench/RESULTS.md, thirtieth session): the two probes
# that walk unfinished_batches() (sql/0036) and admission's look at a
# batch, told apart by how their text begins. (wait_region walks it too,
# but runs only while a region has no worker.)
PROBES = (("running", "SELECT b.id FROM unfinished_batches"),
          ("short", "SELECT b.id, b.tenant_id"),
          ("need", "-- What admitting a batch takes"))


def probes_now(sc):
    """{name: (calls, shared pages)} of the scheduler's probes so far
    (pg_stat_statements, this database; nested statements count in theirs)."""
    rows = sc.s.sql("SELECT left(s.query, 60), s.calls, s.shared_blks_hit + s.shared_blks_read"
                    "  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                    " WHERE d.datname = current_database()")
    out = {name: (0, 0) for name, _ in PROBES}
    for q, calls, pages in rows:
        for name, head in PROBES:
            if q.startswith(head):
                c, p = out[name]
                out[name] = (c + calls, p + pages)
    return out


def probe_pages(a, b):
    """{probe_<name>_pages: shared pages a call} between two probes_now."""
    return {f"probe_{k}_pages": (b[k][1] - a[k][1]) / (b[k][0] - a[k][0])
            if b[k][0] > a[k][0] else float("nan") for k in b}


def vacuum_stats(sc):
    """recipients' dead tuples (thousands) and autovacuum runs so far: what
    the probes' walk of recipients_active passes over until vacuum."""
    dead, runs = sc.s.sql("SELECT n_dead_tup, autovacuum_count FROM pg_stat_user_tables"
                          " WHERE relname = 'recipients'")[0]
    return {"recipients_dead_k": dead / 1000.0, "recipients_autovacuums": runs}


def machine_cpu_s():
    """Non-idle CPU seconds of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def cpu_now(sc, fixed):
    """Cumulative CPU seconds: each of ours, the simulator, the broker
    (fixed: name -> pid), our services' PostgreSQL backends as one (they
    keep their connections; the harness's come and go and are left out),
    and the machine."""
    out = {k: bench.cpu_seconds(p) for k, p in fixed.items()}
    apps = sc.s.sql("SELECT pid FROM pg_stat_activity WHERE datname = %s"
                    "   AND application_name <> ''", sc.s.db)
    out["pg"] = {pid: bench.cpu_seconds(pid) for (pid,) in apps}
    out["machine"] = machine_cpu_s()
    return out


def cpu_per_call(a, b, calls):
    """{cpu_<name>_ms: ms of CPU per call} between two cpu_now samples."""
    per = 1000.0 / calls if calls else 0.0
    out = {f"cpu_{k}_ms": (b[k] - a[k]) * per for k in b if k != "pg"}
    out["cpu_pg_ms"] = sum(c - a["pg"][p] for p, c in b["pg"].items() if p in a["pg"]) * per
    return out


def wal_now(sc):
    return sc.s.sql("SELECT wal_bytes::float8, wal_fpi FROM pg_stat_wal")[0]


def recent_calls(sc, tenant, since):
    """(created ms, ended ms or None) of the tenant's calls that could have
    ended since `since`: created within a call's longest life before it
    (the batches' max_call_duration_minutes=1, and 10 s for the dial).
    Read through calls_tenant_created, so a sample costs the same at
    minute 60 as at minute 5 (a scan of all of calls grew with the table,
    and the harness's own CPU with it). It was 3 minutes: at 800 calls/s
    that read 150,000 rows a sample, 1.2-2 s of the harness's time on the
    two cores it measures (bench/RESULTS.md, thirty-second session)."""
    return sc.s.sql(
        "SELECT extract(epoch FROM created_at) * 1000, extract(epoch FROM ended_at) * 1000"
        "  FROM calls WHERE tenant_id = %s AND created_at >= to_timestamp(%s) - interval '70 seconds'",
        tenant, since)


def refill_p99(rows, since, until):
    """p99 of end -> next claim for calls that ended in [since, until): each
    end is paired with the first claim after it, as slots free and fill."""
    ends = sorted(e for _, e in rows if e is not None and since * 1000 <= e < until * 1000)
    starts = sorted(c for c, _ in rows if c >= since * 1000)
    gaps, j = [], 0
    for e in ends:
        while j < len(starts) and starts[j] < e:
            j += 1
        if j == len(starts):
            break
        gaps.append(starts[j] - e)
        j += 1
    return bench.pct(gaps, 99) if gaps else float("nan")


KEEP = 20


def kept(batch_id):
    """Whether the simulator keeps batch_id's calls (BC_SIM_KEEP_ONE_IN=KEEP):
    its id's FNV-1a hash, as sim_map_hash computes it, is 0 mod KEEP."""
    return sim_map_hash(batch_id) % KEEP == 0


def legs(sc, limit):
    """The kept batches' calls (about one in KEEP), split as B3 splits a
    slot's idle time (bench.b3_split), with the simulator's own lateness
    beside them: a call's length on its clock (its create to its end) less
    the whole seconds it planned and reported (CallDuration,
    calls.duration_s; no ring in the soak). What grows in the first two
    is ours, in the third the simulator's."""
    print(f"\n{'minute':>6} {'carrier end -> our end':>23} {'claim -> carrier create':>24}"
          f" {'simulator late':>15}")
    bids = sc.s.sql("SELECT id, created_at FROM batches ORDER BY created_at")
    for bid, at in (b for b in bids if kept(b[0])):
        rows = sc.s.sql("SELECT extract(epoch FROM created_at) * 1000,"
                        "       extract(epoch FROM ended_at) * 1000, id, duration_s"
                        "  FROM calls WHERE batch_id = %s AND ended_at IS NOT NULL", bid)
        dials = sc.dials(bid)
        if not rows or not dials:
            continue
        reported = {r[2]: float(r[3] or 0) for r in rows}
        late = [d["ended_ms"] - d["at_ms"] - 1000.0 * reported[d["call_id"]]
                for d in dials if d.get("ended_ms") and d["call_id"] in reported]
        split = bench.b3_split(dials, [r[:3] for r in rows], limit)
        cb, dl = split["end"], split["create"]
        minute = (at - bids[0][1]).total_seconds() / 60
        print(f"{minute:>6.1f} {cb:>20.1f} ms {dl:>21.1f} ms"
              f" {statistics.mean(late) if late else float('nan'):>12.1f} ms", flush=True)


def plot(path_csv, path_png):
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--root-user-action=ignore",
                        "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(path_csv) as f:
        rows = list(csv.DictReader(f))
    t = [float(r["minute"]) for r in rows]
    panels = [
        ("RSS (MiB)", [k for k in rows[0] if k.startswith("rss_") and k not in ("rss_sim", "rss_kafka")]),
        ("RSS of the simulator and the broker (MiB)", [k for k in rows[0] if k in ("rss_sim", "rss_kafka")]),
        ("CPU per call (ms)", [k for k in rows[0] if k.startswith("cpu_")]),
        ("WAL per call (KiB, full-page images)", [k for k in rows[0] if k.startswith("wal_")]),
        ("table + index size (MiB)", [k for k in rows[0] if k.endswith("_mib")]),
        ("dead tuples (%)", [k for k in rows[0] if k.endswith("_dead_pct")]),
        ("scheduler probes: pages a call; recipients: dead tuples (k), autovacuums",
         [k for k in rows[0] if k.startswith("probe_") or k.startswith("recipients_dead_k")
          or k == "recipients_autovacuums"]),
        ("Kafka consumer lag (messages)", [k for k in rows[0] if k.startswith("lag_")]),
        ("refill gap p99 (ms), calls/s, harness ms a sample", ["refill_p99_ms", "calls_per_s", "sample_ms"]),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3 * len(panels)), sharex=True)
    for ax, (title, keys) in zip(axes, panels):
        for k in keys:
            ax.plot(t, [float(r[k]) for r in rows], label=k)
        ax.set_title(title)
        ax.axvspan(0, 5, color="0.9")
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    axes[-1].set_xlabel("minute (shaded: warm-up, not judged)")
    fig.tight_layout()
    fig.savefig(path_png, dpi=80)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", type=int, default=800,
                    help="calls a second (half of B2's at d9d1850; 100 before)")
    ap.add_argument("--every", type=float, default=10, help="seconds between samples")
    ap.add_argument("--csv", default=os.path.join(HERE, "soak.csv"))
    ap.add_argument("--png", default=os.path.join(HERE, "soak.png"))
    ap.add_argument("--reset-agent", action="store_true",
                    help="clear the reference agent's records at each sample (it keeps every"
                         " stream's start for tests), to tell its growth from ours")
    ap.add_argument("--summarize", action="store_true",
                    help="only summarize and plot --csv, an earlier run's")
    args = ap.parse_args()
    if args.summarize:
        summarize(args.csv, args.png)
        return

    bench.load_env()
    # Each answered call to a SIP endpoint unless said otherwise (above).
    os.environ.setdefault("BENCH_AGENT", "sip")
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient
    brokers = os.environ["BC_KAFKA_BROKERS"]
    admin = AdminClient({"bootstrap.servers": brokers})
    limit = 2 * args.rate
    # The simulator keeps the calls of one batch in KEEP (20; the ones legs()
    # splits) and forgets the others once they are over: keeping all of
    # them grew it to 10 GB in the hour at 800 calls/s, on the machine it
    # measures (bench/RESULTS.md, thirty-second session). Its tables are
    # made big enough for the whole run at the start, so that it never
    # stops the world to grow them (it did at 2^18 calls, minute 45).
    sc = bench.Scenario("soak", {"BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "0",
                                 "BC_SIM_TALK_SECONDS": "1-3", "BC_SIM_MIX": "completed=1",
                                 "BC_SIM_KEEP_ONE_IN": str(KEEP),
                                 "BC_SIM_EXPECT_CALLS": str(int(args.rate * 60 * args.minutes * 1.25))})
    groups = {f"lag_{g}": (f"{sc.s.prefix}.worker.{g}.us", f"{sc.s.prefix}.{t}.us")
              for g, t in (("jobs", "jobs"), ("events", "carrier-events"))}
    try:
        t = sc.tenant(concurrency=limit)
        fixed = {n: sc.s.procs[n].p.pid for n in PROCS}
        fixed["kafka"] = bench.stack_pids(sc)["kafka"]
        cpu0, wal0 = cpu_now(sc, fixed), wal_now(sc)
        stmts = bench.statements_start(sc)
        probes0 = probes_now(sc) if stmts else None
        made = 0
        t0 = time.time()
        last = t0
        with open(args.csv, "w", newline="") as f:
            out = None
            while time.time() - t0 < args.minutes * 60:
                # By tenant, through recipients_tenant_status: the same cost
                # at minute 60 as at 5 (unscoped, it read every recipient).
                queued = sc.s.sql("SELECT count(*) FROM recipients WHERE tenant_id = %s"
                                  "   AND status = 'queued'", t["tenant_id"])[0][0]
                # As many batches as keep a minute of work queued: one a
                # sample (5,000 every 10 s) held the run to 500 calls/s
                # whatever --rate asked (bench/RESULTS.md, thirty-first
                # session).
                while queued < 60 * args.rate:
                    sc.create(t, bench.numbers(f"{made % 1000:03d}", 5000), limit=limit,
                              max_call_duration_minutes=1)
                    made += 1
                    queued += 5000
                time.sleep(args.every)
                now = time.time()
                s0 = time.monotonic()
                rows = recent_calls(sc, t["tenant_id"], last)
                ended = sum(1 for _, e in rows if e is not None and last * 1000 <= e < now * 1000)
                rec = {"minute": round((now - t0) / 60, 2),
                       "calls_per_s": ended / (now - last),
                       "live": sc.s.sql("SELECT count(*) FROM calls WHERE ended_at IS NULL")[0][0],
                       "refill_p99_ms": refill_p99(rows, last, now)}
                for name, pid in fixed.items():
                    rec[f"rss_{name}"] = rss_mib(pid)
                cpu1, wal1 = cpu_now(sc, fixed), wal_now(sc)
                rec.update(cpu_per_call(cpu0, cpu1, ended))
                rec["cpu_ref_ms"] = bench.ref_ms()
                rec["wal_kib_per_call"] = (wal1[0] - wal0[0]) / 1024.0 / ended if ended else 0.0
                rec["wal_fpi_per_call"] = (wal1[1] - wal0[1]) / ended if ended else 0.0
                cpu0, wal0 = cpu1, wal1
                rec.update(table_stats(sc))
                rec.update(vacuum_stats(sc))
                if stmts:
                    probes1 = probes_now(sc)
                    rec.update(probe_pages(probes0, probes1))
                    probes0 = probes1
                for k, (group, topic) in groups.items():
                    rec[k] = lag(admin, Consumer, brokers, group, topic)
                if args.reset_agent:
                    sc.s.agent_reset()
                # The harness's own cost per sample, which must stay flat too.
                rec["sample_ms"] = (time.monotonic() - s0) * 1000.0
                if out is None:
                    out = csv.DictWriter(f, fieldnames=list(rec))
                    out.writeheader()
                out.writerow(rec)
                f.flush()
                print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in rec.items() if not k.endswith("_dead_pct")), flush=True)
                last = now
        legs(sc, limit)
    finally:
        sc.close()
    summarize(args.csv, args.png)


def summarize(path_csv, path_png):
    """Each series' mean over minutes 5-10 against the last five, and the
    plot: from the CSV alone (--summarize redoes them for a kept one)."""
    with open(path_csv) as f:
        rows = list(csv.DictReader(f))
    end = float(rows[-1]["minute"])
    early = [r for r in rows if 5 <= float(r["minute"]) < 10] or rows[: max(1, len(rows) // 4)]
    late = [r for r in rows if float(r["minute"]) > end - 5] or rows[-max(1, len(rows) // 4):]
    print(f"\n{'series':<28} {'min 5-10':>10} {'last 5 min':>11} {'ratio':>6}")
    for k in rows[0]:
        if k == "minute":
            continue
        a = sum(float(r[k]) for r in early) / len(early)
        b = sum(float(r[k]) for r in late) / len(late)
        print(f"{k:<28} {a:>10.1f} {b:>11.1f} {b / a if a else float('nan'):>6.2f}")
    plot(path_csv, path_png)
    print(f"\nwrote {path_csv} and {path_png}")


if __name__ == "__main__":
    main()
