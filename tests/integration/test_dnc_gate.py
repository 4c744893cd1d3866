"""The compliance gate on the real stack (issue 15): a number on the tenant's
do-not-call list is never dialed, whichever surface made the batch and
whenever it was listed. The simulator's ledger is the witness of what was
dialed; the call-results topic and a webhook receiver of what was told."""
import json
import os
import subprocess
import time

import requests

from conftest import batchcall_headers, bearer, cartesia_headers, scrape, wait_until
from test_agent_leg import script_answered
from test_analytics import read_topic
from test_dispatch import all_terminal, create, dials
from test_pause import pause_until_settled
from test_webhooks import deliverers, receiver, register  # noqa: F401 (fixtures)

DNC_MSG = "not dialed: the number is on the tenant's do-not-call list"


def listed(stack, t, *numbers):
    r = requests.post(stack.api + "/v1/dnc/batch", headers=bearer(t["api_key"]),
                      json={"numbers": list(numbers), "reason": "asked"}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def unlisted(stack, t, number):
    r = requests.delete(stack.api + "/v1/dnc/" + number, headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code == 200, r.text


def ever_dialed(stack, number):
    """Every dial the simulator took to number, any batch."""
    r = requests.get(stack.sim + "/ledger/dials", timeout=30).json()["dials"]
    return [d for d in r if d["to"] == number]


def blocked_counts(stack):
    """The counters of recipients the policy stopped: (api at create, worker
    at dial time), each {reason: count} over its series."""
    out = []
    for url, name in ((stack.api, "api_recipients_blocked_total"),
                      (f"http://127.0.0.1:{stack.procs['worker'].port}",
                       "worker_recipients_blocked_total")):
        out.append({k[len(name) + len('{reason="'):-2]: v for k, v in scrape(url).items()
                    if k.startswith(name + "{")})
    return tuple(out)


def moved(before, after):
    """What each of blocked_counts' counters moved by, reasons that did not
    move left out."""
    return tuple({k: v - b.get(k, 0) for k, v in a.items() if v != b.get(k, 0)}
                 for b, a in zip(before, after))


def recipient_rows(stack, bid):
    return {n: (st, reason, msg, calls) for n, st, reason, msg, calls in stack.sql(
        "SELECT r.to_number, r.status, r.end_reason, r.error_message,"
        "       (SELECT count(*) FROM calls c WHERE c.recipient_id = r.id)"
        "  FROM recipients r WHERE r.batch_id = %s", bid)}


def test_a_listed_number_is_never_dialed_on_any_surface_nor_from_the_cli(stack, tmp_path):
    t = stack.tenant(concurrency=10)
    bad = "+14157770001"
    listed(stack, t, bad)
    good = [f"+1415778{i:04d}" for i in range(8)]
    # Answered, all of them: with the simulator's random mix a good number
    # could fail too, and the counts below are of the listed one alone.
    script_answered(stack, good)
    made = {}
    counted = blocked_counts(stack)

    # Cartesia: accepted, the listed recipient ended undialed with the reason.
    made["cartesia"] = create(stack, t, [good[0], bad, good[1]], limit=2)

    # batch-call: the same.
    r = requests.post(stack.api + "/batch-call", headers=batchcall_headers(t), timeout=30, json={
        "from_number": t["from_number"], "agent_id": t["agent_id"], "name": "dnc",
        "tasks": [{"to_number": bad}, {"to_number": good[2]}], "send_now": True})
    assert r.status_code == 201, r.text
    made["batch-call"] = r.json()["data"]["batch_call_id"]

    # Retell: the same.
    r = requests.post(stack.api + "/create-batch-call", headers=bearer(t["api_key"]), timeout=30,
                      json={"from_number": t["from_number"], "agent_id": t["agent_id"],
                            "tasks": [{"to_number": good[3]}, {"to_number": bad}]})
    assert r.status_code == 201, r.text
    made["retell"] = r.json()["batch_call_id"]

    # The CLI's CSV import (it creates through the API, so the core's gate).
    csv = tmp_path / "people.csv"
    csv.write_text(f"phone_number,first_name\n{good[4]},Ann\n{bad},Bob\n")
    env = dict(os.environ, BC_API_URL=stack.api, BC_API_KEY=t["api_key"])
    out = subprocess.run([stack.bin("batchcall"), "batches", "create", "--file", str(csv), "--json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    made["cli"] = json.loads(out.stdout)["id"]

    # Rymi: its document says 409 with the listed numbers, nothing queued.
    before = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]
    r = requests.post(stack.api + "/v1/calls/batch", headers=bearer(t["api_key"]), timeout=30,
                      json={"agent_id": t["agent_id"], "to": [good[5], bad]})
    assert r.status_code == 409, r.text
    assert r.json() == {"error": "One or more recipients are on the DNC list", "code": "dnc_listed",
                        "detail": "rejected_before_queueing", "numbers": [bad]}
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s",
                     t["tenant_id"])[0][0] == before

    for bid in made.values():
        all_terminal(stack, bid, 60)
    assert ever_dialed(stack, bad) == []
    # Counted once per batch that kept it (not Rymi's, refused whole), at
    # the create: the worker never saw them.
    assert moved(counted, blocked_counts(stack)) == ({"dnc_blocked": 4}, {})
    for surface, bid in made.items():
        rows = recipient_rows(stack, bid)
        assert rows[bad] == ("failed", "dnc_blocked", DNC_MSG, 0), (surface, rows[bad])
        assert {d["to"] for d in dials(stack, bid)} == set(rows) - {bad}, surface

    # Each surface shows the reason in its own words.
    h = cartesia_headers(t["api_key"])
    c = requests.get(f"{stack.api}/agents/calls/batches/{made['cartesia']}", headers=h, timeout=10).json()
    assert c["total_calls_blocked"] == 1
    x = [x for x in c["recipients"] if x["to_number"] == bad][0]
    assert x["status"] == "failed" and x["end_reason"] == "dnc_blocked"
    assert x["error_message"] == DNC_MSG and "agent_call_id" not in x
    b = requests.get(f"{stack.api}/batch-call/{made['batch-call']}", headers=batchcall_headers(t),
                     timeout=10).json()["data"]
    assert b["blocked"] == {"dnc_blocked": 1}
    tasks = requests.get(f"{stack.api}/batch-call/{made['batch-call']}/tasks",
                         headers=batchcall_headers(t), timeout=10).json()["data"]["tasks"]
    task = [x for x in tasks if x["to_number"] == bad][0]
    assert task["status"] == "failed" and task["end_reason"] == "dnc_blocked"
    g = requests.get(f"{stack.api}/get-batch-call/{made['retell']}", headers=bearer(t["api_key"]),
                     timeout=10).json()
    assert g["blocked"] == {"dnc_blocked": 1} and g["failed"] == 1
    y = requests.get(f"{stack.api}/v1/calls/{made['cli']}", headers=bearer(t["api_key"]),
                     timeout=10).json()
    assert y["blocked"] == {"dnc_listed": 1}
    p = [p for p in y["participants"] if p["identity"] == bad][0]
    assert p["status"] == "failed" and p["end_reason"] == "dnc_listed"


def test_a_number_listed_after_its_batch_was_accepted_is_never_dialed_the_rest_are(
        stack, receiver, deliverers):  # noqa: F811
    t = stack.tenant(concurrency=4)
    rcv = receiver()
    register(stack, t, rcv.url, events=("call.completed", "call.failed"))
    deliverers.start()
    numbers = [f"+1415779{i:04d}" for i in range(10)]
    late = [numbers[6], numbers[8]]
    counted = blocked_counts(stack)
    bid = create(stack, t, numbers, limit=1)
    # Hold it before those two come up, list them, and let it go on.
    pause_until_settled(stack, t, bid)
    assert not {d["to"] for d in dials(stack, bid)} & set(late), "the batch went too fast"
    listed(stack, t, *late)
    r = requests.post(f"{stack.api}/agents/calls/batches/{bid}/resume",
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 200, r.text
    all_terminal(stack, bid, 60)

    assert {d["to"] for d in dials(stack, bid)} == set(numbers) - set(late)
    rows = recipient_rows(stack, bid)
    for n in late:
        # Stopped at dial time: its attempt exists, never reached the carrier.
        assert rows[n] == ("failed", "dnc_blocked", DNC_MSG, 1), rows[n]
    calls = stack.sql("SELECT id, status, end_reason, carrier_call_id FROM calls"
                      " WHERE batch_id = %s AND to_number = ANY(%s)", bid, late)
    assert {(s, e, c) for _, s, e, c in calls} == {("failed", "dnc_blocked", None)}

    # Counted, told on the call-results topic (v2 and v3) and by webhook.
    ids = {c[0] for c in calls}
    ev = [json.loads(v) for k, v in read_topic(stack) if k == bid]
    mine = [e for e in ev if e.get("call_id") in ids]
    assert {(e["schema"], e["end_reason"], e["carrier_status"], e["final"]) for e in mine} == {
        ("batchcall.call-result/v2", "dnc_blocked", "failed", True),
        ("batchcall.call-result/v3", "dnc_blocked", "failed", True)}, mine
    assert len(mine) == 4
    wait_until(lambda: {f"evt_{i}" for i in ids} <= {x["event_id"] for x in rcv.got()},
               30, "the webhooks of the stopped calls")
    for x in rcv.got():
        body = json.loads(x["body"])
        if body["data"]["call_id"] in ids:
            assert body["type"] == "call.failed" and body["data"]["end_reason"] == "dnc_blocked"
    worker = stack.procs["worker"]
    assert len([e for e in worker.events("dial.blocked") if e["batch_id"] == bid]) == 2
    # Counted by the worker that stopped them, not at the create.
    assert moved(counted, blocked_counts(stack)) == ({}, {"dnc_blocked": 2})


def test_a_number_removed_from_the_list_is_dialed_if_not_yet_dialed(stack):
    t = stack.tenant(concurrency=4)
    numbers = [f"+1415780{i:04d}" for i in range(6)]
    counted = blocked_counts(stack)
    bid = create(stack, t, numbers, limit=1)
    pause_until_settled(stack, t, bid)
    assert numbers[5] not in {d["to"] for d in dials(stack, bid)}, "the batch went too fast"
    listed(stack, t, numbers[4], numbers[5])
    unlisted(stack, t, numbers[5])
    requests.post(f"{stack.api}/agents/calls/batches/{bid}/resume",
                  headers=cartesia_headers(t["api_key"]), timeout=10).raise_for_status()
    all_terminal(stack, bid, 60)
    got = {d["to"] for d in dials(stack, bid)}
    assert numbers[5] in got and numbers[4] not in got
    assert got == set(numbers) - {numbers[4]}
    # The one still listed is counted once; the removed one is not.
    assert moved(counted, blocked_counts(stack)) == ({}, {"dnc_blocked": 1})


def test_bulk_import_takes_a_hundred_thousand_numbers_in_one_request_and_from_the_cli(
        stack, tmp_path):
    t = stack.tenant(concurrency=2)
    nums = [f"+1650{i:07d}" for i in range(100000)]
    t0 = time.monotonic()
    got = listed(stack, t, *nums)
    took = time.monotonic() - t0
    assert got == {"added": 100000, "received": 100000}
    assert took < 30, took
    # Again: nothing new.
    assert listed(stack, t, *nums[:10]) == {"added": 0, "received": 10}

    more = tmp_path / "dnc.csv"
    more.write_text("number,note\n" + "".join(f"+1651{i:07d},x\n" for i in range(150000))
                    + nums[0] + ",again\n")
    out = stack.cli("dnc-import", "--tenant", t["tenant_id"], "--file", str(more),
                    "--reason", "imported")
    assert out == {"tenant_id": t["tenant_id"], "numbers": 150001, "added": 150000,
                   "already_listed": 1}
    assert stack.sql("SELECT count(*), count(*) FILTER (WHERE reason = 'imported') FROM dnc"
                     " WHERE tenant_id = %s", t["tenant_id"])[0] == (250000, 150000)
    # A bad row lists nothing.
    bad = tmp_path / "bad.csv"
    bad.write_text("number\n+16520000001\nnot a number\n")
    r = subprocess.run([stack.bin("batchcall"), "dnc-import", "--tenant", t["tenant_id"],
                        "--file", str(bad)], env=stack.env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "nothing was listed" in r.stderr, r.stderr
    assert stack.sql("SELECT count(*) FROM dnc WHERE number = '+16520000001'")[0][0] == 0
    # The import is audited in its own transaction, the failed one not at all.
    assert stack.sql("SELECT actor, detail FROM audit_log WHERE tenant_id = %s"
                     " AND action = 'dnc.import'", t["tenant_id"]) == [
        ("admin", {"numbers": 150001, "added": 150000, "reason": "imported"})]
    # The dial-time lookup is an index probe of the primary key.
    plan = "\n".join(x[0] for x in stack.sql(
        "EXPLAIN SELECT 1 FROM dnc WHERE dnc.tenant_id = %s AND dnc.number = %s",
        t["tenant_id"], nums[5]))
    assert "dnc_pkey" in plan, plan
