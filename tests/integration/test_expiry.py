"""Expiry on the real stack: a recipient not dialed by its batch's latest_at
(or ttl) ends as 'expired' with that reason, is counted and listed on every
surface, and is never dialed; nothing is dropped. The scheduler sweeps on
PostgreSQL's movable clock, so the tests move it rather than wait."""
import time
from collections import Counter

import pytest
import requests

from conftest import batchcall_headers, bearer, cartesia_headers, system_settled, wait_until
from test_dispatch import create, dials
from test_pause import pause_until_settled


@pytest.fixture
def clock(stack):
    def ahead(seconds):
        stack.sql("INSERT INTO clock_offset (one, offset_s) VALUES (true, %s)"
                  " ON CONFLICT (one) DO UPDATE SET offset_s = excluded.offset_s", seconds)
    yield ahead
    stack.sql("DELETE FROM clock_offset")


def statuses(stack, bid):
    return Counter(dict(stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s"
                                  " GROUP BY 1", bid)))


def test_recipients_not_dialed_by_latest_at_expire_counted_and_listed_everywhere(stack, clock):
    t = stack.tenant(concurrency=4)
    numbers = [f"+1451{i:07d}" for i in range(40)]
    # Whoever is dialed answers: the batch's status below is "completed"
    # only if one dialed call completed, which the simulator's random mix
    # (80 % completed) left to chance for the three or so dialed here.
    for n in numbers:
        requests.post(stack.sim + "/outcomes", params={"to": n, "outcomes": "completed"},
                      timeout=10).raise_for_status()
    bid = create(stack, t, numbers, limit=1, ttl=3600)
    wait_until(lambda: len(dials(stack, bid)) >= 3, 30, "the batch to be dialing")
    # Hold the rest back, then let the hour pass.
    pause_until_settled(stack, t, bid)
    dialed = {d["to"] for d in dials(stack, bid)}
    latest = stack.sql("SELECT rfc3339(latest_at), extract(epoch FROM latest_at - created_at)"
                       " FROM batches WHERE id = %s", bid)[0]
    assert 3599 <= float(latest[1]) <= 3601   # ttl counts from creation
    clock(7200)
    wait_until(lambda: statuses(stack, bid)["queued"] == 0, 15, "the undialed recipients to expire")
    st = statuses(stack, bid)
    n_exp = len(numbers) - len(dialed)
    assert st["expired"] == n_exp and st["completed"] + st["failed"] == len(dialed), st
    rows = stack.sql("SELECT r.to_number, r.end_reason, r.error_message, r.attempts,"
                     " (SELECT count(*) FROM calls c WHERE c.recipient_id = r.id)"
                     " FROM recipients r WHERE r.batch_id = %s AND r.status = 'expired'", bid)
    assert {x[0] for x in rows} == set(numbers) - dialed
    for num, reason, msg, attempts, calls in rows:
        assert reason == "expired" and msg == f"not dialed before latest_at {latest[0]}"
        assert attempts == 0 and calls == 0
    # Resuming dials nobody: nothing is left.
    requests.post(f"{stack.api}/agents/calls/batches/{bid}/resume",
                  headers=cartesia_headers(t["api_key"]), timeout=10)
    system_settled(stack)
    assert {d["to"] for d in dials(stack, bid)} == dialed

    # Counted and listed on every surface.
    c = requests.get(f"{stack.api}/agents/calls/batches/{bid}", headers=cartesia_headers(t["api_key"]),
                     timeout=10).json()
    assert c["total_calls_expired"] == n_exp and c["latest_at"] == latest[0]
    assert c["total_calls_finished"] == len(numbers) and c["status"] == "completed"
    exp = [x for x in c["recipients"] if x["status"] == "expired"]
    assert len(exp) == n_exp and all(x["end_reason"] == "expired" and "latest_at" in x["error_message"]
                                     for x in exp)
    y = requests.get(f"{stack.api}/v1/calls/{bid}", headers=bearer(t["api_key"]), timeout=10).json()
    assert y["expired"] == n_exp and y["status"] == "completed", (y["status"], st)
    assert Counter(p["status"] for p in y["participants"])["expired"] == n_exp
    s = requests.get(f"{stack.api}/v1/calls/queue/stats", headers=bearer(t["api_key"]), timeout=10).json()
    assert s["expired"] == n_exp
    bc = requests.get(f"{stack.api}/batch-call/{bid}", headers=batchcall_headers(t), timeout=10).json()
    assert bc["data"]["expired"] == n_exp and bc["data"]["latest_timestamp"] > 0
    tasks = requests.get(f"{stack.api}/batch-call/{bid}/tasks", headers=batchcall_headers(t),
                         timeout=10).json()["data"]["tasks"]
    assert Counter(x["status"] for x in tasks)["expired"] == n_exp
    rt = requests.get(f"{stack.api}/get-batch-call/{bid}", headers=bearer(t["api_key"]), timeout=10).json()
    assert rt["expired"] == n_exp
    pr = requests.get(f"{stack.api}/progress/batches/{bid}", headers=bearer(t["api_key"]), timeout=10).json()
    assert pr["counts"]["expired"] == n_exp and pr["outcomes"]["expired"] == n_exp and pr["done"]


def test_a_retry_not_dialed_by_latest_at_expires_after_one_dial(stack, clock):
    """Busy recipients wait an hour for their retry; latest_at comes first."""
    t = stack.tenant(concurrency=4)
    busy = [f"+145200{i}0486" for i in range(3)]   # the simulator answers busy
    latest_ms = int((time.time() + 1800) * 1000)
    r = requests.post(stack.api + "/batch-call", headers=batchcall_headers(t), timeout=10,
                      json={"from_number": t["from_number"], "agent_id": t["agent_id"], "send_now": True,
                            "latest_timestamp": latest_ms, "max_retries": 2,
                            "retry_intervals_s": [3600],
                            "tasks": [{"to_number": n} for n in busy]})
    assert r.status_code == 201, r.text
    assert abs(r.json()["data"]["latest_timestamp"] - latest_ms) < 1000
    bid = r.json()["data"]["batch_call_id"]
    wait_until(lambda: stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s AND attempts = 1"
                                 " AND status = 'queued' AND next_attempt_at IS NOT NULL", bid)[0][0] == 3,
               30, "every recipient to wait for its retry")
    clock(2400)   # past latest_at, short of the retries' hour
    wait_until(lambda: statuses(stack, bid)["expired"] == 3, 15, "the waiting retries to expire")
    rows = stack.sql("SELECT end_reason, error_message FROM recipients WHERE batch_id = %s", bid)
    assert all(reason == "expired" and msg.startswith("retry not dialed before latest_at")
               for reason, msg in rows), rows
    clock(7200)   # the retries' time: nothing is dialed any more
    system_settled(stack)
    assert Counter(d["to"] for d in dials(stack, bid)) == Counter({n: 1 for n in busy})


@pytest.mark.parametrize("surface,body,word", [
    ("cartesia", {"latest_at": "2020-01-01T00:00:00Z"}, "latest_at"),
    ("cartesia", {"latest_at": "tomorrow"}, "latest_at"),
    ("cartesia", {"ttl": 0}, "ttl"),
    ("cartesia", {"ttl": 60, "latest_at": "2099-01-01T00:00:00Z"}, "latest_at or ttl"),
    ("cartesia", {"scheduled_at": "+3600", "ttl": 10}, None),
    # Typed without null in the OpenAPI document: a null is not left out.
    ("cartesia", {"ttl": 10, "latest_at": None}, "latest_at must not be null"),
    ("cartesia", {"scheduled_at": "+3600", "latest_at": "+1800"}, "latest_at"),
    ("rymi", {"ttl": "1h"}, "ttl"),
    ("batch-call", {"latest_timestamp": 1}, "latest_at"),
    ("batch-call", {"latest_timestamp": "soon"}, "latest_timestamp"),
    ("retell", {"latest_timestamp": 5000, "ttl": 60}, "at most one"),
])
def test_expiry_fields_are_validated_on_every_surface(stack, surface, body, word):
    t = stack.tenant(concurrency=4)

    def at(v):   # "+N": N seconds from now, RFC 3339
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + int(v[1:]))) \
            if isinstance(v, str) and v.startswith("+") else v
    body = {k: at(v) for k, v in body.items()}
    if surface == "cartesia":
        r = requests.post(stack.api + "/agents/calls/batches", headers=cartesia_headers(t["api_key"]),
                          timeout=10, json=dict(body, name="x", agent_id=t["agent_id"],
                                                from_number_id=t["from_number_id"],
                                                recipients=[{"to_number": "+14530000001"}]))
        msg = lambda: r.json()["error"]
    elif surface == "rymi":
        r = requests.post(stack.api + "/v1/calls/batch", headers=bearer(t["api_key"]), timeout=10,
                          json=dict(body, agent_id=t["agent_id"], to=["+14530000002"]))
        msg = lambda: r.json()["error"]
    elif surface == "batch-call":
        r = requests.post(stack.api + "/batch-call", headers=batchcall_headers(t), timeout=10,
                          json=dict(body, from_number=t["from_number"], agent_id=t["agent_id"],
                                    tasks=[{"to_number": "+14530000003"}]))
        msg = lambda: r.json()["message"]
    else:
        r = requests.post(stack.api + "/create-batch-call", headers=bearer(t["api_key"]), timeout=10,
                          json=dict(body, from_number=t["from_number"], tasks=[{"to_number": "+14530000004"}]))
        msg = lambda: r.json()["message"]
    if word is None:   # a ttl counts from the scheduled start
        assert r.status_code == 201, r.text
        got = stack.sql("SELECT extract(epoch FROM latest_at - scheduled_at) FROM batches"
                        " WHERE id = %s", r.json()["id"])[0][0]
        assert float(got) == 10
        return
    assert r.status_code == 400 and word in msg(), r.text
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0] == 0
