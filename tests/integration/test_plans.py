"""The worker keeps one generic plan per statement (plan_cache_mode =
force_generic_plan, worker/bc_worker.c), made at its first execution. On a
new install that is while the tables are new: never analyzed, so the
planner sees each as 10 pages, about 110 rows, however much it grows until
autovacuum first analyzes it. A plan that hashes or scans such a table
then walks all of it every turn as it grows: the accepted dials did, three
times over (a list estimated at 100 rows, the default random_page_cost,
and an OR beside the lease's EXISTS), 84-136 us an attempt in B2 against
about 30 (bench/RESULTS.md, thirty-first session).

So each of the worker's statements, planned as the worker plans it in a
migrated database with nothing in it, must reach calls, recipients and
batches (the tables that grow with a region's history) by key, never by a
scan of the table. `batchcall-worker --explain-plans` prints the plans
its own connection makes."""
import json
import subprocess

import psycopg2

from conftest import Stack

# The tables that grow with every batch and call a region ever had. The
# rest (leases: a row per slot of the running batches; agents, tenants,
# workers: configuration) stay small.
GROWING = ("calls", "recipients", "batches")


def worker_plans(s):
    out = subprocess.run([s.bin("batchcall-worker"), "--explain-plans"], env=s.env,
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def scans_of_growing_tables(plan):
    """The lines of an EXPLAIN that read a whole growing table."""
    return [line.strip() for line in plan for table in GROWING
            if f"Seq Scan on {table} " in line or line.rstrip().endswith(f"Seq Scan on {table}")]


def test_the_workers_generic_plans_reach_growing_tables_by_key(tmp_path):
    s = Stack(tmp_path)
    try:
        s.create_bare_db()
        plans = worker_plans(s)
        # The statements of a call's path are among them, each with a plan.
        for name in ("claim_many", "dial_start_many", "dial_accepted_many",
                     "call_progress_many", "call_end_many", "release", "credits_pause"):
            assert name in plans, f"{name} not among {sorted(plans)}"
            assert plans[name], name
        bad = {name: scans_of_growing_tables(plan) for name, plan in plans.items()}
        bad = {name: lines for name, lines in bad.items() if lines}
        assert not bad, json.dumps(bad, indent=1)
    finally:
        s.drop_db()


def test_the_check_sees_a_scan_of_calls(tmp_path):
    """The check above fails on the plan it was written for: the accepted
    dials' statement as it stood at 0898bb8, prepared and explained the
    way the worker does, on the same kind of database."""
    s = Stack(tmp_path)
    try:
        s.create_bare_db()
        old = ("WITH d AS (SELECT d.* FROM list_rows($1::jsonb) x,"
               "             jsonb_to_record(x) AS d(c text, sid text, t bigint))"
               " UPDATE calls SET carrier_call_id = coalesce(calls.carrier_call_id, d.sid)"
               "   FROM d WHERE calls.id = d.c AND calls.lease_token = d.t"
               "    AND (EXISTS (SELECT 1 FROM leases l WHERE l.batch_id = calls.batch_id"
               "                 AND l.slot = calls.lease_slot AND l.token = d.t)"
               "         OR (calls.ended_at IS NOT NULL AND calls.carrier_call_id = d.sid))"
               " RETURNING calls.id")
        conn = psycopg2.connect(s.dsn)
        try:
            cur = conn.cursor()
            cur.execute("SET plan_cache_mode = force_generic_plan")
            cur.execute("SET random_page_cost = 1.1")
            cur.execute("PREPARE old_accepted(jsonb) AS " + old)
            cur.execute("EXPLAIN EXECUTE old_accepted(NULL)")
            plan = [r[0] for r in cur.fetchall()]
        finally:
            conn.close()
        assert any("Seq Scan on calls" in x for x in scans_of_growing_tables(plan)), plan
    finally:
        s.drop_db()
