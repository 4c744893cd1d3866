"""Each process's /metrics during a small real batch: the metrics issue 8
names exist under conventional names, parse as Prometheus text, keep their
label sets bounded, and move the way the batch moved (checked against
PostgreSQL). The Grafana dashboard and the alert rules in deploy/ may only
name metrics that these processes export.

The batch runs in the apac region on a simulator, scheduler and worker of
this module's own, so the numbers are this batch's alone."""
import json
import os
import re
import time

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, wait_until
from test_dispatch import Extra, all_terminal, create

with open(os.path.join(ROOT, "api", "openapi.json")) as _f:
    OPENAPI_PATHS = json.load(_f)["paths"]

LIMIT = 4
# 0486 and 0404 are forced to busy and no-answer by the simulator.
NUMBERS = [f"+1435555{i:04d}" for i in range(14)] + ["+14355550486", "+14365550486",
                                                     "+14355550404"]
OUTCOMES = {"completed", "busy", "no-answer", "failed", "canceled", "other"}


def scrape(url):
    """{(name, labels frozenset): value} and {name: type} of one /metrics."""
    r = requests.get(url + "/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    values, types = {}, {}
    for fam in text_string_to_metric_families(r.text):   # raises on malformed text
        types[fam.name] = fam.type
        for s in fam.samples:
            values[(s.name, frozenset(s.labels.items()))] = s.value
    return values, types


def val(values, name, **labels):
    return values.get((name, frozenset(labels.items())), 0.0)


def total(values, name):
    return sum(v for (n, _), v in values.items() if n == name)


@pytest.fixture(scope="module")
def run(stack, tmp_path_factory):
    extra = Extra(stack, tmp_path_factory.mktemp("metrics"))
    try:
        # live_calls and live_calls_limit are region-wide: earlier tests of
        # this session may have left apac batches with work (a region whose
        # scheduler they stopped). Quiet the region so the gauges read this
        # batch alone, before this test's scheduler starts: nothing it does
        # (admit, reconcile) may race the quieting.
        stack.sql("UPDATE recipients SET status = 'cancelled'"
                  " WHERE status IN ('queued', 'dispatched', 'started')"
                  "   AND batch_id IN (SELECT id FROM batches WHERE region = 'apac')")
        stack.sql("UPDATE leases SET call_id = NULL, holder = NULL, expires_at = NULL"
                  " WHERE batch_id IN (SELECT id FROM batches WHERE region = 'apac')")
        stack.sql("UPDATE batches SET state = 'cancelled', cancelled_at = now()"
                  " WHERE region = 'apac' AND state <> 'cancelled'")
        sim = extra.start("sim-metrics", "batchcall-carrier-sim", {
            "BC_SIM_MS_PER_SECOND": "100", "BC_SIM_RING_SECONDS": "1-2",
            "BC_SIM_TALK_SECONDS": "15-25", "BC_SIM_MIX": "completed=1", "BC_SIM_THREADS": "4"})
        env = {"BC_REGION": "apac", "BC_CARRIER_URL": f"http://127.0.0.1:{sim.port}"}
        sched = extra.start("sched-metrics", "batchcall-scheduler",
                            dict(env, BC_SCHEDULER_TICK_MS="50", BC_WEBHOOKS="1"))
        # Two jobs in hand at most: while the batch is at its limit the rest
        # of its window (2 x LIMIT jobs) waits in Kafka, so the lag shows.
        worker = extra.start("w-metrics", "batchcall-worker",
                             dict(env, BC_WORKER_MAX_IN_HAND="2", BC_RETRY_BASE_MS="200"))
        urls = {"api": stack.api, "worker": f"http://127.0.0.1:{worker.port}",
                "scheduler": f"http://127.0.0.1:{sched.port}"}
        before = {k: scrape(u)[0] for k, u in urls.items()}
        t = stack.tenant(concurrency=10)
        bid = create(stack, t, NUMBERS, limit=LIMIT, region="APAC")
        seen = {"lag": 0.0, "limit": 0.0, "live_max": 0.0}
        deadline = time.time() + 90
        while time.time() < deadline:
            w, s = scrape(urls["worker"])[0], scrape(urls["scheduler"])[0]
            seen["lag"] = max(seen["lag"], val(w, "kafka_consumer_lag", topic="jobs"))
            seen["live_max"] = max(seen["live_max"], val(s, "live_calls"))
            seen["limit"] = max(seen["limit"], val(s, "live_calls_limit"))
            rows = stack.sql("SELECT count(*) FILTER (WHERE status IN ('queued', 'dispatched',"
                             " 'started')) FROM recipients WHERE batch_id = %s", bid)
            if rows[0][0] == 0:
                break
            time.sleep(0.1)
        all_terminal(stack, bid, 30)
        # The leader's gauges follow within a relay pass (1 s).
        wait_until(lambda: val(scrape(urls["scheduler"])[0], "live_calls") == 0 and
                   val(scrape(urls["scheduler"])[0], "live_calls_limit") == 0, 10,
                   "live_calls and live_calls_limit back to 0")
        # Unknown methods share one label value ("other").
        requests.request("BREW", stack.api + "/healthz", timeout=5)
        after = {k: scrape(u) for k, u in urls.items()}
        yield {"bid": bid, "before": before, "after": {k: v[0] for k, v in after.items()},
               "types": {k: v[1] for k, v in after.items()}, "seen": seen}
    finally:
        extra.stop()


def test_calls_started_and_finished_by_outcome_match_postgresql(stack, run):
    b, a = run["before"]["worker"], run["after"]["worker"]
    calls = dict(stack.sql("SELECT status, count(*) FROM calls WHERE batch_id = %s GROUP BY 1",
                           run["bid"]))
    n = sum(calls.values())
    assert n >= len(NUMBERS) and calls.get("busy", 0) >= 2 and calls.get("no-answer", 0) >= 1
    assert total(a, "worker_calls_started_total") - total(b, "worker_calls_started_total") == n
    for outcome in OUTCOMES:
        delta = (val(a, "worker_calls_finished_total", outcome=outcome) -
                 val(b, "worker_calls_finished_total", outcome=outcome))
        assert delta == calls.get(outcome, 0), (outcome, delta, calls)
    # The dispatch latency histogram saw each dial once, in order.
    count = val(a, "worker_dispatch_seconds_count") - val(b, "worker_dispatch_seconds_count")
    assert count == n
    assert 0 < val(a, "worker_dispatch_seconds_sum") < 10 * n
    buckets = sorted((float(dict(lb)["le"]), v) for (name, lb), v in a.items()
                     if name == "worker_dispatch_seconds_bucket")
    assert buckets[-1][0] == float("inf") and buckets[-1][1] == val(a, "worker_dispatch_seconds_count")
    assert all(x[1] <= y[1] for x, y in zip(buckets, buckets[1:]))


def test_every_carrier_event_taken_has_its_age_observed(run):
    b, a = run["before"]["worker"], run["after"]["worker"]
    events = total(a, "worker_carrier_events_total") - total(b, "worker_carrier_events_total")
    name = "worker_carrier_event_age_seconds"
    count = {k: val(a, name + "_count", kind=k) - val(b, name + "_count", kind=k)
             for k in ("end", "other")}
    # Each event once, in the series of its kind: the calls' ends, and
    # their news before (ringing, answered).
    assert events > 0 and count["end"] + count["other"] == events, (events, count)
    assert count["end"] > 0 and count["other"] > 0, count
    for k in ("end", "other"):
        # Published by the API moments before, on this machine's clock:
        # every age of the run fell under the 30 s bucket, none below 0.
        age = val(a, name + "_sum", kind=k) - val(b, name + "_sum", kind=k)
        assert 0 <= age < 30 * count[k], (k, age)
        assert (val(a, name + "_bucket", kind=k, le="30") -
                val(b, name + "_bucket", kind=k, le="30")) == count[k]
        buckets = sorted((float(dict(lb)["le"]), v) for (n, lb), v in a.items()
                         if n == name + "_bucket" and dict(lb)["kind"] == k)
        assert buckets[-1] == (float("inf"), val(a, name + "_count", kind=k))
        assert all(x[1] <= y[1] for x, y in zip(buckets, buckets[1:]))


def test_lease_waits_consumer_lag_and_live_calls_moved(run):
    b, a, seen = run["before"]["worker"], run["after"]["worker"], run["seen"]
    # More jobs than slots: claims found no free slot and waited.
    assert total(a, "worker_lease_waits_total") > total(b, "worker_lease_waits_total")
    assert seen["lag"] > 0, "kafka_consumer_lag{topic=jobs} never rose above 0"
    assert ("kafka_consumer_lag", frozenset({("topic", "carrier-events")})) in a
    assert 0 < seen["live_max"] <= LIMIT
    assert seen["limit"] == LIMIT
    s = run["after"]["scheduler"]
    assert val(s, "live_calls") == 0 and val(s, "live_calls_limit") == 0
    assert ("outbox_depth", frozenset()) in s


def test_http_requests_by_route_and_status(stack, run):
    b, a = run["before"]["api"], run["after"]["api"]
    key = dict(method="POST", route="/agents/calls/batches", code="201")
    assert val(a, "http_requests_total", **key) - val(b, "http_requests_total", **key) == 1
    assert val(a, "http_requests_total", method="other", route="/healthz", code="200") >= 1

    def callbacks(values):
        return sum(v for (n, lb), v in values.items() if n == "http_requests_total"
                   and dict(lb)["route"] == "/carrier/twilio/status")
    # Every call of the batch ended by a carrier callback, under one route.
    n = stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s", run["bid"])[0][0]
    assert callbacks(a) - callbacks(b) >= n
    routes = {dict(lb)["route"] for (n, lb), _ in a.items() if n == "http_requests_total"}
    for r in routes:
        assert not re.search(r"[0-9a-f]{8}-|/(bat|cal|rec|b|c)_[0-9A-Za-z]{6,}", r), \
            f"an id in a route label: {r}"


def test_names_units_and_label_cardinality_are_conventional(run):
    for proc, types in run["types"].items():
        values = run["after"][proc]
        for name, typ in types.items():
            # The parser strips _total from counter family names.
            if typ == "counter":
                assert (name + "_total", frozenset()) in values or any(
                    n == name + "_total" for n, _ in values), (proc, name)
            if typ == "histogram":
                assert name.endswith("_seconds"), (proc, name, "histograms here measure time")
            assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
            assert not re.search(r"_(ms|milliseconds|secs)$", name), (name, "use base units")
        labelsets = {}
        for (n, lb), _ in values.items():
            for k, v in lb:
                if k != "le":
                    labelsets.setdefault((n, k), set()).add(v)
        for (n, k), vs in labelsets.items():
            # A route label has one value per route template the process
            # serves (no ids: test above), so its bound is the route table's
            # size: the OpenAPI document's paths plus the carrier callbacks,
            # /progress, /dashboard and the process endpoints.
            bound = len(OPENAPI_PATHS) + 16 if k == "route" else 40
            assert len(vs) <= bound, (proc, n, k, bound, sorted(vs)[:10])
            if k == "outcome" and n.startswith("worker_"):
                assert vs <= OUTCOMES, vs
            if k == "method":
                assert vs <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def exported_names(run):
    names = set()
    for values in run["after"].values():
        names |= {n for n, _ in values}
    return names


PROMQL_WORDS = {"sum", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg",
                "count", "by", "without", "le", "on", "ignoring", "group_left", "group_right",
                "and", "or", "unless", "clamp_min", "clamp_max", "abs", "time", "vector",
                "scalar", "topk", "bottomk", "offset", "bool", "delta", "deriv", "absent",
                "max_over_time", "min_over_time", "avg_over_time", "sum_over_time", "label_replace",
                "round", "ceil", "floor", "sort", "sort_desc", "changes", "resets"}


def metric_names_in(expr):
    """Identifiers in a PromQL expression that stand for metrics: not
    functions or keywords, not label names inside {...} or by (...)."""
    expr = re.sub(r"\{[^}]*\}", "{}", expr)                 # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)                # ranges
    expr = re.sub(r'"[^"]*"', '""', expr)                   # strings
    expr = re.sub(r"\$\w+", "", expr)                        # Grafana variables
    found = set()
    for tok in re.finditer(r"[a-zA-Z_][a-zA-Z0-9_]*", expr):
        word = tok.group(0)
        after = expr[tok.end():].lstrip()
        if word in PROMQL_WORDS or after.startswith("("):
            continue
        if re.fullmatch(r"\d*e\d*|inf|nan|Inf|NaN", word):
            continue
        found.add(word)
    return found


def test_grafana_dashboard_names_only_exported_metrics(run):
    with open(os.path.join(ROOT, "deploy", "grafana", "batchcall.json")) as f:
        dash = json.load(f)
    exprs = []

    def walk(o):
        if isinstance(o, dict):
            if isinstance(o.get("expr"), str):
                exprs.append(o["expr"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(dash)
    assert len(exprs) >= 10, "the dashboard has fewer panels than issue 8 names metrics"
    names, used = exported_names(run), set()
    for e in exprs:
        found = metric_names_in(e)
        assert found, f"no metric in {e!r}"
        assert found <= names, (e, sorted(found - names))
        used |= found
    # Every metric issue 8 names is on the dashboard.
    for want in ["worker_calls_started_total", "worker_calls_finished_total", "live_calls",
                 "live_calls_limit", "worker_lease_waits_total", "worker_dispatch_seconds_bucket",
                 "kafka_consumer_lag", "outbox_depth", "http_requests_total"]:
        assert want in used, want


def test_alert_rules_name_only_exported_metrics(run):
    with open(os.path.join(ROOT, "deploy", "prometheus", "batchcall-rules.yaml")) as f:
        doc = yaml.safe_load(f)
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert len(rules) >= 5
    names = exported_names(run)
    # Series Prometheus itself adds to every target.
    names |= {"up"}
    for r in rules:
        assert r.get("alert") and r.get("expr"), r
        assert r["labels"]["severity"] in ("page", "ticket"), r
        assert r["annotations"].get("summary") and r["annotations"].get("runbook"), r
        found = metric_names_in(r["expr"])
        assert found and found <= names, (r["alert"], sorted(found - names))
