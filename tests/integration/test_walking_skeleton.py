"""One batch from HTTP to dialed calls and back, on the real stack."""
import json
import time
from collections import Counter

import requests

from conftest import cartesia_headers, consume_from_start, wait_until

TERMINAL = {"completed", "failed", "cancelled"}


def create_batch(stack, demo, numbers, limit):
    body = {
        "name": "skeleton",
        "agent_id": demo["agent_id"],
        "from_number_id": demo["from_number_id"],
        "target_concurrency_limit": limit,
        "recipients": [{"to_number": n, "metadata": {"i": i}} for i, n in enumerate(numbers)],
    }
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(demo["api_key"]), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def read_results(stack, batch_id, want, timeout):
    """Reads batchcall.call-results from the start with a real consumer."""
    c = consume_from_start(stack, "call-results", "test-" + batch_id)
    events = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            # Once we have what we want, keep listening a little for extras.
            if quiet_until and time.monotonic() > quiet_until:
                break
            continue
        ev = json.loads(m.value())
        if ev["batch_id"] == batch_id:
            assert m.key().decode() == batch_id
            events.append(ev)
            if len(events) >= want and quiet_until is None:
                quiet_until = time.monotonic() + 3
    c.close()
    return events


def test_batch_of_200_is_dialed_once_each_within_its_concurrency(stack, demo):
    numbers = [f"+1415555{i:04d}" for i in range(200)]
    batch = create_batch(stack, demo, numbers, limit=10)
    assert batch["status"] == "pending"
    assert batch["total_calls_scheduled"] == 200
    assert batch["target_concurrency_limit"] == 10
    bid = batch["id"]

    def finished():
        r = requests.get(f"{stack.api}/agents/calls/batches/{bid}",
                         headers=cartesia_headers(demo["api_key"]), timeout=10)
        assert r.status_code == 200, r.text
        b = r.json()
        return b if all(x["status"] in TERMINAL for x in b["recipients"]) else None

    b = wait_until(finished, 180, "every recipient to be terminal", interval=0.5)
    assert b["status"] == "completed"
    assert b["total_calls_finished"] == 200
    assert len(b["recipients"]) == 200
    assert {x["to_number"] for x in b["recipients"]} == set(numbers)

    # The carrier saw exactly one dial per recipient, never more than 10 live.
    ledger = requests.get(stack.sim + "/ledger", timeout=10).json()
    lb = ledger["batches"][bid]
    assert lb["dials"] == 200
    print("ledger for batch:", lb, "tenant:", ledger["tenants"][demo["tenant_id"]])
    assert lb["peak_live"] <= 10
    assert ledger["tenants"][demo["tenant_id"]]["peak_live"] <= 20
    assert lb["peak_live"] >= 5, "the batch should use its concurrency"
    assert ledger["duplicate_call_ids"] == []
    dials = requests.get(stack.sim + "/ledger/dials", params={"batch_id": bid},
                         timeout=10).json()["dials"]
    assert Counter(d["to"] for d in dials) == Counter(numbers)
    calls = stack.sql("SELECT recipient_id, count(*) FROM calls WHERE batch_id = %s"
                      " GROUP BY recipient_id", bid)
    assert len(calls) == 200 and all(n == 1 for _, n in calls)
    assert {d["call_id"] for d in dials} == {r["agent_call_id"] for r in b["recipients"]}

    # Every lease is free again.
    assert stack.sql("SELECT count(*) FROM leases WHERE batch_id = %s AND call_id IS NOT NULL",
                     bid)[0][0] == 0

    # A real Kafka consumer reads exactly one call-result per recipient in
    # each published version: v2, and v3's call.ended (v1 is off here).
    every = read_results(stack, bid, 400, timeout=60)
    assert Counter(e["schema"] for e in every) == {"batchcall.call-result/v2": 200,
                                                   "batchcall.call-result/v3": 200}
    v3 = [e for e in every if e["schema"] == "batchcall.call-result/v3"]
    assert Counter(e["recipient_id"] for e in v3).most_common(1)[0][1] == 1
    assert {e["event"] for e in v3} == {"call.ended"}
    events = [e for e in every if e["schema"] == "batchcall.call-result/v2"]
    per_recipient = Counter(e["recipient_id"] for e in events)
    assert len(per_recipient) == 200
    assert set(per_recipient.values()) == {1}
    by_id = {r["id"]: r for r in b["recipients"]}
    for e in events:
        assert e["schema"] == "batchcall.call-result/v2"
        assert e["final"] is True
        assert e["recipient_status"] == by_id[e["recipient_id"]]["status"]
        assert e["call_id"] == by_id[e["recipient_id"]]["agent_call_id"]
