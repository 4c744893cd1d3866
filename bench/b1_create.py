"""B1: creating a 5,000-recipient batch, beside its physical baseline.

Measures, against the running local stack (deploy/local/stack.sh up):
  - POST /agents/calls/batches with 5,000 recipients: p50 / p99 latency,
    one client;
  - recipients/s with 4 concurrent clients;
  - the baseline, in the same run: a raw COPY of the same 5,000 rows into
    a table shaped like recipients (with its indexes), and its rows/s.
Batches are scheduled a day ahead so no call is dialed while measuring.
Prints a table; never fails on timing."""
import io
import json
import os
import statistics
import sys
import threading
import time
import datetime

import psycopg2
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
N = 5000


def env():
    vals = {}
    with open(os.path.join(ROOT, ".local", "env")) as f:
        for line in f:
            k, v = line.replace("export ", "").strip().split("=", 1)
            vals[k] = v
    return vals


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    runs = int(os.environ.get("B1_RUNS", "30"))
    api = os.environ.get("BC_API", "http://127.0.0.1:8080")
    dsn = env()["BC_PG_DSN"]
    import subprocess
    demo = json.loads(subprocess.run(
        [os.path.join(ROOT, "build", "batchcall"), "demo", "--name", "bench-b1",
         "--concurrency", "20"], env=dict(os.environ, BC_PG_DSN=dsn), check=True,
        capture_output=True, text=True).stdout)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    # Unlimited request rate for the measuring tenant: we measure the work.
    cur.execute("UPDATE tenants SET rate_per_min = 0, credits_cents = greatest(credits_cents, 1000000)"
                " WHERE id = %s", (demo["tenant_id"],))
    when = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps({"name": "b1", "agent_id": demo["agent_id"],
                       "from_number_id": demo["from_number_id"], "scheduled_at": when,
                       "target_concurrency_limit": 1,
                       "recipients": [{"to_number": f"+1415{i:07d}", "metadata": {"row": i}}
                                      for i in range(N)]})
    headers = {"X-API-Key": demo["api_key"], "Cartesia-Version": "2026-03-01",
               "Content-Type": "application/json"}
    created = []

    def post(session):
        t0 = time.perf_counter()
        r = session.post(api + "/agents/calls/batches", data=body, headers=headers, timeout=60)
        dt = time.perf_counter() - t0
        assert r.status_code == 201, r.text
        created.append(r.json()["id"])
        return dt

    # Baseline: COPY of the same rows into a copy of the recipients table.
    # A real (WAL-logged) table, as recipients is: a temporary one would skip
    # the WAL and make the baseline unfairly fast.
    cur.execute("DROP TABLE IF EXISTS b1_copy")
    cur.execute("CREATE TABLE b1_copy (LIKE recipients INCLUDING DEFAULTS INCLUDING INDEXES)")
    rows = "".join(f"abcr_{i:022d}\tb1\torg\t{i}\t+1415{i:07d}\t\\N\t{{\"row\": {i}}}\t\\N\t\\N\n"
                   for i in range(N))
    copy_times = []
    for _ in range(runs):
        cur.execute("TRUNCATE b1_copy")
        t0 = time.perf_counter()
        cur.copy_expert("COPY b1_copy (id, batch_id, tenant_id, seq, to_number, from_number,"
                        " metadata, variables, max_retries) FROM STDIN", io.StringIO(rows))
        copy_times.append(time.perf_counter() - t0)

    s = requests.Session()
    post(s)  # warm up connections and plans
    lat = [post(s) for _ in range(runs)]

    per_client = max(1, runs // 4)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=lambda: [post(requests.Session()) for _ in range(per_client)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    conc_rate = 4 * per_client * N / wall

    copy_p50 = statistics.median(copy_times)
    copy_rate = N / copy_p50
    p50, p99 = statistics.median(lat), pct(lat, 99)
    print(f"B1 create 5,000-recipient batch ({runs} runs, commit {os.environ.get('BC_COMMIT', '?')})")
    print(f"{'measure':44} {'batchcall':>12} {'baseline':>12} {'ratio':>7}  target")
    print(f"{'p50 latency, ms (baseline: COPY p50)':44} {p50*1e3:12.1f} {copy_p50*1e3:12.1f} "
          f"{copy_p50/p50:7.2f}  p50 <= 50 ms")
    print(f"{'p99 latency, ms':44} {p99*1e3:12.1f} {'':>12} {'':>7}")
    print(f"{'recipients/s, 4 clients (baseline: COPY 1)':44} {conc_rate:12.0f} {copy_rate:12.0f} "
          f"{conc_rate/copy_rate:7.2f}  >= 100,000/s, ratio >= 0.5")
    cur.execute("DROP TABLE b1_copy")
    # Leave nothing to dial.
    for bid in created:
        s.post(f"{api}/agents/calls/batches/{bid}/cancel", headers=headers, timeout=30)


if __name__ == "__main__":
    sys.exit(main())
