"""B1: creating a 5,000-recipient batch, beside its physical baseline.

Measures, against the running local stack (deploy/local/stack.sh up):
  - POST /agents/calls/batches with 5,000 recipients: p50 / p99 latency,
    one client;
  - recipients/s with 4 concurrent clients;
  - the baseline, in the same run: a raw COPY of the same 5,000 rows into
    recipients itself (its indexes), with ids of the create's shape, and
    its rows/s.
Batches are scheduled a day ahead so no call is dialed while measuring.
Prints a table; never fails on timing."""
import http.client
import io
import json
import os
import statistics
import sys
import threading
import time
import datetime
import urllib.parse

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


def statements_reset(cur):
    """pg_stat_statements from zero, if the cluster loads it (deploy/local/pg.sh
    asks it to). False if it does not."""
    try:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cur.execute("SELECT pg_stat_statements_reset()")
        return True
    except psycopg2.Error as e:
        print(f"(no per-statement table: {str(e).strip().splitlines()[0]})")
        return False


def statements_table(cur, creates, top=12):
    """Where PostgreSQL's time went, per create of the single-client series."""
    cur.execute("SELECT s.calls, s.total_exec_time + s.total_plan_time,"
                "       regexp_replace(left(s.query, 300), '\\s+', ' ', 'g')"
                "  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname = current_database() ORDER BY 2 DESC LIMIT %s", (top,))
    rows = cur.fetchall()
    print(f"statements by time, per create ({creates} creates):")
    print(f"  {'ms/create':>9} {'calls':>6}  statement")
    for calls, ms, q in rows:
        print(f"  {ms / creates:9.2f} {calls:6d}  {q[:120]}")


class Client:
    """POSTs to the API over one keep-alive connection of the standard
    library's http.client. A requests.Session spends about 0.46 ms of its
    own on each call (GET /healthz on this machine: 562 us against 104),
    which B1 counted against the API while its baseline's COPY goes
    through psycopg2's C. B1_CLIENT=requests measures as before."""

    def __init__(self, api, headers):
        self.api, self.headers = api, headers
        if os.environ.get("B1_CLIENT") == "requests":
            self.s = requests.Session()
        else:
            self.s = None
            u = urllib.parse.urlsplit(api)
            self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def post(self, path, body):
        if self.s:
            r = self.s.post(self.api + path, data=body, headers=self.headers, timeout=60)
            return r.status_code, r.text
        self.c.request("POST", path, body=body, headers=self.headers)
        r = self.c.getresponse()
        return r.status, r.read().decode()


def remove_batches(cur, ids):
    """Deletes batches ids with their leases and recipients."""
    cur.execute("DELETE FROM leases WHERE batch_id = ANY(%s)", (ids,))
    cur.execute("DELETE FROM recipients WHERE batch_id = ANY(%s)", (ids,))
    cur.execute("DELETE FROM batches WHERE id = ANY(%s)", (ids,))


def settle(cur, tenant):
    """Starts the run from a settled table. The rows of B1 batches an
    earlier run or experiment left behind go (a run stopped before its
    cleanup; 1.7 million of them on the sixth of December), and the dead
    rows every cleanup leaves are vacuumed now, not by an autovacuum while
    this run measures: one running through the creates slowed the create
    and its COPY baseline alike by half (RESULTS.md, twenty-sixth session).
    Prints what the creates insert into."""
    cur.execute("SELECT array_agg(b.id) FROM batches b JOIN tenants t ON t.id = b.tenant_id"
                " WHERE b.name = 'b1' AND (t.id = %s OR t.name LIKE 'bench-b1%%')", (tenant,))
    old = cur.fetchone()[0] or []
    if old:
        remove_batches(cur, old)
    cur.execute("VACUUM (ANALYZE) recipients")
    cur.execute("SELECT reltuples::bigint, pg_total_relation_size(oid) FROM pg_class"
                " WHERE relname = 'recipients'")
    rows, size = cur.fetchone()
    print(f"recipients before the run: {rows:,} rows, {size / 2**20:,.0f} MiB"
          f" (left over from earlier B1 runs and removed: {len(old)} batches)")


def main():
    runs = int(os.environ.get("B1_RUNS", "100"))
    api = os.environ.get("BC_API", "http://127.0.0.1:8080")
    dsn = env()["BC_PG_DSN"]
    import subprocess
    demo = json.loads(subprocess.run(
        [os.path.join(ROOT, "build", "batchcall"), "demo", "--name", "bench-b1",
         "--concurrency", "20", "--agent-endpoint", "wss://127.0.0.1:8443/agent"], env=dict(os.environ, BC_PG_DSN=dsn), check=True,
        capture_output=True, text=True).stdout)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    # Unlimited request rate for the measuring tenant: we measure the work.
    cur.execute("UPDATE tenants SET rate_per_min = 0, credits_cents = greatest(credits_cents, 1000000)"
                " WHERE id = %s", (demo["tenant_id"],))
    settle(cur, demo["tenant_id"])
    when = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps({"name": "b1", "agent_id": demo["agent_id"],
                       "from_number_id": demo["from_number_id"], "scheduled_at": when,
                       "target_concurrency_limit": 1,
                       "recipients": [{"to_number": f"+1415{i:07d}", "metadata": {"row": i}}
                                      for i in range(N)]}).encode()
    headers = {"X-API-Key": demo["api_key"], "Cartesia-Version": "2026-03-01",
               "Content-Type": "application/json"}
    created, baseline_ids = [], []

    def post(client):
        t0 = time.perf_counter()
        status, text = client.post("/agents/calls/batches", body)
        dt = time.perf_counter() - t0
        assert status == 201, text
        created.append(json.loads(text)["id"])
        return dt

    # Baseline: a bare COPY of the same rows into recipients itself (the same
    # table, indexes and size as the create's), committed as the create's
    # is; a batch id of its own per round, its rows deleted at the end.
    # Its ids have the create's shape (prefix, then the time in base62): an
    # id that sorts after every real one would always land on the rightmost
    # pages of the indexes on id and batch_id, and push each create's rows
    # onto the pages just left of it, where a B-tree splits pages in half
    # instead of filling them. Within a batch they ascend with seq.
    base = [0]
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def b62(n, width):
        out = ""
        for _ in range(width):
            n, d = divmod(n, 62)
            out = digits[d] + out
        return out

    def copy_once():
        base[0] += 1
        stamp = b62(int(time.time() * 1000), 7) + b62(os.getpid(), 4) + "b1" + b62(base[0], 3)
        b = "acb_" + stamp + "bench0"
        baseline_ids.append(b)
        rows = "".join(f"abcr_{stamp}{b62(i, 6)}\t{b}\t{demo['tenant_id']}\t{i}\t+1415{i:07d}\t\\N"
                       f"\t{{\"row\": {i}}}\t\\N\t\\N\n" for i in range(N))
        t0 = time.perf_counter()
        cur.copy_expert("COPY recipients (id, batch_id, tenant_id, seq, to_number, from_number,"
                        " metadata, variables, max_retries) FROM STDIN", io.StringIO(rows))
        return time.perf_counter() - t0

    client = Client(api, headers)
    post(client)  # warm up connections and plans
    copy_once()
    stmts = statements_reset(cur)
    # Interleaved, one of each per round: the machine's noise (a shared VM)
    # falls on both alike, so their ratio holds even when the times move.
    copy_times, lat = [], []
    for _ in range(runs):
        copy_times.append(copy_once())
        lat.append(post(client))
    if stmts:
        statements_table(cur, runs)

    per_client = max(1, runs // 4)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=lambda: [post(Client(api, headers)) for _ in range(per_client)])
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
          f"{copy_p50/p50:7.2f}  p50 <= 50 ms, ratio >= 0.8")
    print(f"{'p99 latency, ms':44} {p99*1e3:12.1f} {'':>12} {'':>7}")
    print(f"{'recipients/s, 4 clients (baseline: COPY 1)':44} {conc_rate:12.0f} {copy_rate:12.0f} "
          f"{conc_rate/copy_rate:7.2f}  >= 100,000/s, ratio >= 0.5")
    cur.execute("DELETE FROM recipients WHERE batch_id = ANY(%s)", (baseline_ids,))
    # Leave nothing to dial.
    s = requests.Session()
    for bid in created:
        s.post(f"{api}/agents/calls/batches/{bid}/cancel", headers=headers, timeout=30)
    # Nor anything to measure the next run against: the rows of the batches
    # made here go too, as the baseline's do. Kept, they piled up in the
    # stack's database, run after run (25.6 million recipients, 12 GB, by
    # the sixteenth session), and each B1 measured a table its own history
    # had grown (bench/RESULTS.md, sixteenth session).
    remove_batches(cur, created)


if __name__ == "__main__":
    sys.exit(main())
