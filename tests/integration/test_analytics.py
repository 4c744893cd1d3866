"""The call-result topic as analytics consumers see it: every event on the
real topic validates against the schema of its version (docs/schemas/
call-result.v<N>.json), and the two
example consumers (C with librdkafka, Python with confluent-kafka), reading
the topic from the beginning, agree with PostgreSQL on each batch's answer
rate and mean duration."""
import json
import os
import subprocess
import sys
import time

import jsonschema
import pytest
import requests
from confluent_kafka import KafkaError

from conftest import BUILD, ROOT, cartesia_headers, consume_from_start, wait_until

SCHEMAS = {f"batchcall.call-result/v{n}": os.path.join(ROOT, "docs", "schemas",
                                                     f"call-result.v{n}.json") for n in (1, 2, 3)}


def run_batch(stack, t, numbers, limit):
    body = {"name": "analytics", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": limit, "recipients": [{"to_number": n} for n in numbers]}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def read_topic(stack):
    """Every message now on <prefix>.call-results, from the beginning."""
    c = consume_from_start(stack, "call-results", "test-analytics", {"enable.partition.eof": True})
    parts = c.assignment()
    out, ended = [], set()
    deadline = time.monotonic() + 60
    while len(ended) < len(parts) and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                ended.add(m.partition())
            continue
        out.append((m.key().decode(), m.value()))
    c.close()
    assert len(ended) == len(parts), "the topic was not read to its end"
    return out


def from_postgres(stack, bid):
    calls, answered, mean = stack.sql(
        "SELECT count(*), count(*) FILTER (WHERE status = 'completed'),"
        "       avg(duration_s) FILTER (WHERE status = 'completed')"
        "  FROM calls WHERE batch_id = %s AND ended_at IS NOT NULL", bid)[0]
    return {"calls": calls, "answered": answered, "answer_rate": answered / calls,
            "mean_duration_s": float(mean) if mean is not None else None}


def consumer_output(cmd, stack):
    env = dict(os.environ, BC_KAFKA_BROKERS=stack.brokers, BC_TOPIC_PREFIX=stack.prefix)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return {r["batch_id"]: r for r in rows}


def test_both_consumers_agree_with_postgres_and_every_event_fits_the_schema(stack):
    t = stack.tenant(concurrency=20)
    # Numbers the simulator forces to fail (...0486 busy, ...0404 no answer,
    # ...0500 failed) on top of its random mix: answer rates well below 1.
    forced = [f"+1{a}5550{s}" for a in (212, 312, 415) for s in ("486", "404", "500")]
    a = run_batch(stack, t, forced + [f"+1646555{i:04d}" for i in range(30)], limit=8)
    b = run_batch(stack, t, forced[:4] + [f"+1718555{i:04d}" for i in range(8)], limit=4)
    for bid in (a, b):
        wait_until(lambda: stack.sql(
            "SELECT count(*) FROM recipients WHERE batch_id = %s"
            "   AND status NOT IN ('completed', 'failed', 'cancelled')", bid)[0][0] == 0,
            120, "every recipient to finish", interval=0.3)
    want = {bid: from_postgres(stack, bid) for bid in (a, b)}
    assert want[a]["calls"] == 39 and want[b]["calls"] == 12
    assert 0 < want[a]["answer_rate"] < 1 and 0 < want[b]["answer_rate"] < 1
    call_ids = {c for (c,) in stack.sql("SELECT id FROM calls WHERE batch_id IN (%s, %s)", a, b)}

    # The outbox publishes after commit: wait until Kafka has every call.
    def all_there():
        msgs = read_topic(stack)
        have = {json.loads(v)["call_id"] for _, v in msgs}
        # ... and its v3 call.ended beside the v2 event.
        v3 = {e["call_id"] for e in map(json.loads, (v for _, v in msgs))
              if e["schema"].endswith("/v3") and e["event"] == "call.ended"}
        return msgs if call_ids <= have and call_ids <= v3 else None
    msgs = wait_until(all_there, 30, "every call's event on the topic", interval=0.5)

    validators = {}
    for version, path in SCHEMAS.items():
        with open(path) as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[version] = jsonschema.Draft202012Validator(schema)
    for key, value in msgs:
        ev = json.loads(value)
        assert ev.get("schema") in validators, ev
        errors = [e.message for e in validators[ev["schema"]].iter_errors(ev)]
        assert not errors, (errors, ev)
        assert key == ev["batch_id"]
    print(f"{len(msgs)} events on the topic fit the schema of their version")
    # Each schema can fail: an unknown field, a wrong type, a missing field;
    # and v1 refuses what only v2 has.
    ev = json.loads(msgs[0][1])
    for validator in validators.values():
        for broken in ({**ev, "extra": 1}, {**ev, "duration_s": "12"},
                       {k: v for k, v in ev.items() if k != "call_id"}):
            assert not validator.is_valid(broken)
    if ev["schema"].endswith("/v2"):
        assert not validators["batchcall.call-result/v1"].is_valid(
            {**ev, "schema": "batchcall.call-result/v1"})

    c_out = consumer_output([os.path.join(BUILD, "batchcall-analytics-consumer")], stack)
    py_out = consumer_output([sys.executable, os.path.join(ROOT, "examples", "analytics",
                                                           "consumer.py")], stack)
    for bid, w in want.items():
        for name, got in (("C", c_out), ("Python", py_out)):
            g = got[bid]
            print(name, g)
            assert (g["calls"], g["answered"]) == (w["calls"], w["answered"]), (name, g, w)
            assert g["answer_rate"] == pytest.approx(w["answer_rate"], abs=1e-12), name
            assert g["mean_duration_s"] == pytest.approx(w["mean_duration_s"], abs=1e-9), name
    # Both read the whole topic, every batch of the session, and agree on all.
    assert set(c_out) == set(py_out) and {a, b} <= set(c_out)
    for bid in c_out:
        assert c_out[bid]["calls"] == py_out[bid]["calls"]
        assert c_out[bid]["answered"] == py_out[bid]["answered"]
        assert c_out[bid]["answer_rate"] == pytest.approx(py_out[bid]["answer_rate"], abs=1e-12)
        assert (c_out[bid]["mean_duration_s"] is None) == (py_out[bid]["mean_duration_s"] is None)
        if c_out[bid]["mean_duration_s"] is not None:
            assert c_out[bid]["mean_duration_s"] == pytest.approx(py_out[bid]["mean_duration_s"])
