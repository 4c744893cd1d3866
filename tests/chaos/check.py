"""The invariant checker: reads PostgreSQL, the carrier simulator's ledger
and the batchcall.call-results topic, prints a table of the six guarantees'
evidence, and exits non-zero on any violation.

    python3 tests/chaos/check.py --dsn ... --sim http://... --brokers ... \
        --prefix batchcall --tenant org_... [--tenant ...]
"""
import argparse
import json
import os
import sys
import time
from collections import Counter

import psycopg2
import requests
from confluent_kafka import Consumer, TopicPartition


def v2_published():
    """Whether the stack publishes v2 call ends (BC_CALL_RESULT_V2, default
    true, as the processes read it from the same environment)."""
    return os.environ.get("BC_CALL_RESULT_V2", "true").strip().lower() not in (
        "0", "false", "no", "off")


def is_end(ev, v2):
    """A call's one end event of the version read: v2, or with v2 off the v3
    call.ended that then goes out alone."""
    if v2:
        return ev.get("schema") == "batchcall.call-result/v2"
    return ev.get("schema") == "batchcall.call-result/v3" and ev.get("event") == "call.ended"


def read_results(brokers, prefix, batch_ids, timeout=30):
    topic = f"{prefix}.call-results"
    v2 = v2_published()
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"check-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    ends = {}
    for tp in parts:
        lo, hi = c.get_watermark_offsets(tp, timeout=10)
        ends[tp.partition] = hi
    c.assign(parts)
    events, done = [], set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(done) < len(parts):
        m = c.poll(0.5)
        if m is None or m.error():
            done |= {p for p, hi in ends.items() if hi == 0}
            continue
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
        ev = json.loads(m.value())
        # One version only: every ended attempt has one v2 event (its v3
        # twin and any v1 one would count as duplicates), or with v2 off
        # one v3 call.ended.
        if ev.get("batch_id") in batch_ids and is_end(ev, v2):
            ev["_ts"] = m.timestamp()[1] / 1000.0
            events.append(ev)
    c.close()
    return events


def blame(dups, faults, window=10.0):
    """Names, for each duplicated event, the fault that most recently came
    before its second copy (within window seconds), from faults, a list of
    (wall-clock seconds, fault name). Returns a Counter of fault names."""
    out = Counter()
    for stamps in dups:
        second = sorted(stamps)[1]
        before = [(t, name) for t, name in faults if t <= second and second - t <= window]
        out[max(before)[1] if before else "none"] += 1
    return out


def check(dsn, sim, brokers, prefix, tenants, accepted=None, faults=None):
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT id, target_concurrency_limit, tenant_id FROM batches WHERE tenant_id = ANY(%s)",
                (tenants,))
    batches = {b: (lim, t) for b, lim, t in cur.fetchall()}
    cur.execute("SELECT status, count(*) FROM recipients WHERE tenant_id = ANY(%s) GROUP BY 1", (tenants,))
    by_status = dict(cur.fetchall())
    total = sum(by_status.values())
    terminal = sum(n for s, n in by_status.items() if s in ("completed", "failed", "cancelled"))
    cur.execute("SELECT id, concurrency FROM tenants WHERE id = ANY(%s)", (tenants,))
    tenant_limit = dict(cur.fetchall())
    cur.execute("SELECT c.id, c.recipient_id, c.attempt FROM calls c WHERE c.tenant_id = ANY(%s)"
                " AND c.status NOT IN ('claimed', 'canceled')", (tenants,))
    calls = cur.fetchall()
    conn.close()

    led = requests.get(sim + "/ledger", timeout=30).json()
    dialed = Counter()
    for b in batches:
        for d in requests.get(sim + "/ledger/dials", params={"batch_id": b}, timeout=60).json()["dials"]:
            dialed[d["call_id"]] += 1
    dup_dials = sum(n - 1 for n in dialed.values() if n > 1) + len(
        [x for x in led["duplicate_call_ids"] if x in {c[0] for c in calls}])
    over_batch = [b for b in batches if led["batches"].get(b, {}).get("peak_live", 0) > batches[b][0]]
    over_tenant = [t for t in tenants if led["tenants"].get(t, {}).get("peak_live", 0) > tenant_limit[t]]
    dialed_ids = set(dialed)
    events = read_results(brokers, prefix, set(batches))
    ev_per_call = Counter(e["call_id"] for e in events)
    finished = {c[0] for c in calls}
    missing_events = [c for c in dialed_ids if c in finished and ev_per_call[c] == 0]
    dup_events = [c for c, n in ev_per_call.items() if n > 1]
    stamps = {}
    for e in events:
        stamps.setdefault(e["call_id"], []).append(e["_ts"])
    lost = total - terminal
    missing_batches = 0 if accepted is None else len(set(accepted) - set(batches))

    rows = [
        ("batches acknowledged (2xx)", accepted and len(accepted) or len(batches), ""),
        ("acknowledged batches missing", missing_batches, "must be 0"),
        ("recipients accepted", total, ""),
        ("recipients terminal", terminal, f"{by_status}"),
        ("recipients lost (not terminal)", lost, "must be 0"),
        ("dials placed (simulator ledger)", sum(dialed.values()), ""),
        ("duplicate dials of one attempt", dup_dials, "must be 0"),
        ("batches over their concurrency limit", len(over_batch), "must be 0"),
        ("tenants over their concurrency limit", len(over_tenant), "must be 0"),
        ("call-result events read", len(events),
         "v2" if v2_published() else "v3 call.ended (BC_CALL_RESULT_V2 off)"),
        ("dialed calls with no call-result event", len(missing_events), "must be 0"),
        ("call-result events duplicated", len(dup_events), "must be 0 (at-least-once: reported)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'invariant':{width}}  {'value':>10}  note")
    for name, v, note in rows:
        print(f"{name:{width}}  {v!s:>10}  {note}")
    violations = lost + dup_dials + len(over_batch) + len(over_tenant) + len(missing_events) + missing_batches
    if dup_events and faults is not None:
        # A relay sends a dead worker's rows at once: the second copies'
        # moments, to 0.5 s, count the crashes that left rows behind.
        gaps = sorted(max(stamps[c]) - min(stamps[c]) for c in dup_events)
        sends = len({round(sorted(stamps[c])[1] * 2) for c in dup_events})
        print(f"duplicated events by the fault before their second copy: "
              f"{json.dumps(dict(blame([stamps[c] for c in dup_events], faults)))}; "
              f"second copies sent at {sends} moment(s); gap between copies "
              f"{gaps[0]:.1f}-{gaps[-1]:.1f} s")
    print(f"\nviolations: {violations}")
    return violations


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--prefix", default="batchcall")
    ap.add_argument("--tenant", action="append", required=True)
    a = ap.parse_args()
    return 1 if check(a.dsn, a.sim, a.brokers, a.prefix, a.tenant) else 0


if __name__ == "__main__":
    sys.exit(main())
