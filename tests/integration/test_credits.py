"""Credits that are spent (docs/api.md, "Credits"): a hold before each
dial, released when the call ends and the answered call's cost settled;
a batch that runs out pauses itself and resumes when credits are added;
spend is the sum of settled costs; every move is a ledger row. The carrier
simulator's ledger is the witness of what was dialed."""
import json
import threading
from collections import Counter

import requests

from conftest import batchcall_headers, bearer, cartesia_batch, cartesia_headers, wait_until
from test_dispatch import all_terminal, dials, metric
from test_sim_strict import signature
from test_webhooks import deliverers, receiver, register, verify  # noqa: F401 (fixtures)

PRICE = 10   # cents a minute: the demo tenant's plan ("go")


def balance(stack, tenant):
    return stack.sql("SELECT t.credits_cents - u.used_cents FROM tenants t"
                     " JOIN credit_usage u ON u.tenant_id = t.id WHERE t.id = %s", tenant)[0][0]


def ledger(stack, tenant):
    return stack.sql("SELECT kind, call_id, cents, balance_after, minutes, price_per_min_cents"
                     " FROM credit_ledger WHERE tenant_id = %s ORDER BY id", tenant)


def create(stack, t, numbers, limit, minutes=1):
    body = {"name": "credits", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": limit, "max_call_duration_minutes": minutes,
            "recipients": [{"to_number": n} for n in numbers]}
    return requests.post(stack.api + "/agents/calls/batches", json=body,
                         headers=cartesia_headers(t["api_key"]), timeout=60)


def assert_ledger_explains_every_call(stack, tenant):
    """Per call: one hold of its maximum duration, one release of it, and a
    settlement of its billed minutes only if it was answered."""
    calls = stack.sql("SELECT id, status, duration_s, hold_cents, cost_cents, billed_min"
                      " FROM calls WHERE tenant_id = %s AND hold_cents IS NOT NULL"
                      "   AND ended_at IS NOT NULL", tenant)
    rows = ledger(stack, tenant)
    by_call = {}
    for kind, call, cents, _after, minutes, price in rows:
        if call:
            by_call.setdefault(call, []).append((kind, cents, minutes, price))
    for cid, status, dur, hold, cost, billed in calls:
        got = by_call.pop(cid)
        kinds = [k for k, *_ in got]
        assert kinds == (["hold", "release", "settle"] if status == "completed"
                         else ["hold", "release"]), (cid, status, got)
        assert got[0][1] == -hold and got[1][1] == hold
        assert got[0][2] * PRICE == hold and got[0][3] == PRICE
        if status == "completed":
            minutes = -(-dur // 60)
            assert billed == minutes and cost == min(hold, minutes * PRICE)
            assert got[2][1] == -cost and got[2][2] == minutes
        else:
            assert cost == 0 and billed is None
    return by_call   # holds of calls still live


def paused_reads(stack, t, bid):
    """(status, pause_reason) of batch bid as each surface reads it."""
    key = bearer(t["api_key"])
    c = cartesia_batch(stack, t, bid)
    y = requests.get(f"{stack.api}/v1/calls/{bid}", headers=key, timeout=10).json()
    b = requests.get(f"{stack.api}/batch-call/{bid}", headers=batchcall_headers(t),
                     timeout=10).json()["data"]
    r = requests.get(f"{stack.api}/get-batch-call/{bid}", headers=key, timeout=10).json()
    return {name: (x["status"], x.get("pause_reason"))
            for name, x in (("cartesia", c), ("rymi", y), ("batch-call", b), ("retell", r))}


def assert_each_pause_delivered_once(stack, hook, rcv, bid):
    """Every batch.paused the batch's pauses queued (one per pause: a batch
    resumed by holds given back may pause again) reached the receiver
    exactly once, signed, saying why. Returns how many."""
    rows = [e for e, in stack.sql("SELECT event_id FROM webhook_deliveries"
                                  " WHERE webhook_id = %s AND event_type = 'batch.paused'",
                                  hook["id"])]
    got = [x for x in rcv.got() if x["headers"]["X-Batchcall-Event-Type"] == "batch.paused"]
    assert Counter(x["event_id"] for x in got) == Counter(rows), (rows, got)
    for x in got:
        verify(hook["secret"], x["headers"], x["body"])
        ev = json.loads(x["body"])
        assert ev["type"] == "batch.paused" and ev["id"] == x["event_id"]
        assert ev["data"]["batch_id"] == bid and ev["data"]["reason"] == "insufficient_credits"
    return len(rows)


def test_a_batch_that_runs_out_pauses_itself_and_resumes_when_credits_are_added(
        stack, receiver, deliverers):  # noqa: F811
    t = stack.tenant(concurrency=5, credits=10 * PRICE)   # ~10 one-minute calls
    tenant = t["tenant_id"]
    rcv = receiver()
    hook = register(stack, t, rcv.url, events=("batch.paused",))
    sender = deliverers.start()
    worker = stack.procs["worker"].port
    pauses = metric(worker, "worker_batches_paused_for_credits_total")
    numbers = [f"+1447{i:07d}" for i in range(50)]

    # The balance, sampled in one snapshot with the live calls' holds.
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(stack.sql(
                "SELECT t.credits_cents - u.used_cents,"
                "       (SELECT coalesce(sum(hold_cents), 0) FROM calls c WHERE c.tenant_id = t.id"
                "         AND c.hold_cents IS NOT NULL AND c.ended_at IS NULL)"
                "  FROM tenants t JOIN credit_usage u ON u.tenant_id = t.id WHERE t.id = %s",
                tenant)[0])
            stop.wait(0.05)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        r = create(stack, t, numbers, limit=5)
        assert r.status_code == 201, r.text
        bid = r.json()["id"]

        # Paused with no call live is not yet the end: calls that ended
        # unanswered gave their holds back, and if the balance covers a call
        # again the scheduler resumes the batch (its credits_resume). The
        # fixed point is paused, nothing live, and less than a call left.
        # Read in one snapshot; once true it stays true until a top-up.
        def paused():
            return stack.sql(
                "SELECT b.state = 'paused'"
                "   AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.batch_id = b.id"
                "                   AND c.ended_at IS NULL)"
                "   AND t.credits_cents - u.used_cents < %s"
                "  FROM batches b JOIN tenants t ON t.id = b.tenant_id"
                "  JOIN credit_usage u ON u.tenant_id = t.id WHERE b.id = %s", PRICE, bid)[0][0]
        wait_until(paused, 60, "the batch to pause itself for credits", interval=0.2)
        b = cartesia_batch(stack, t, bid)
    finally:
        stop.set()
        th.join()
    assert b["pause_reason"] == "insufficient_credits" and b["paused_at"]
    # Every surface reads it paused, saying why.
    assert paused_reads(stack, t, bid) == dict.fromkeys(
        ("cartesia", "rymi", "batch-call", "retell"), ("paused", "insufficient_credits"))
    assert samples and all(bal >= -live for bal, live in samples), min(samples)
    assert all(bal >= 0 for bal, _ in samples)
    # Undialed recipients wait queued: none failed for want of credit.
    rec = dict(stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s GROUP BY 1",
                         bid))
    assert rec.get("queued", 0) > 0, rec
    assert not stack.sql("SELECT 1 FROM recipients WHERE batch_id = %s"
                         " AND end_reason = 'insufficient_credits'", bid)
    dialed = dials(stack, bid)
    assert len(dialed) == 50 - rec["queued"]
    assert balance(stack, tenant) < PRICE
    # Spend is the sum of settled costs, and the ledger explains each call.
    assert assert_ledger_explains_every_call(stack, tenant) == {}
    settled = stack.sql("SELECT coalesce(sum(cost_cents), 0) FROM calls WHERE tenant_id = %s",
                        tenant)[0][0]
    spend = requests.get(stack.api + "/v1/analytics/spend", headers=bearer(t["api_key"]),
                         timeout=10).json()
    assert spend["total_cents"] == settled == 10 * PRICE - balance(stack, tenant)
    assert settled == -sum(c for k, _, c, *_ in ledger(stack, tenant) if k == "settle")
    # Every ledger row's balance follows from the one before it (from the
    # first hold: stack.tenant() set the credit by SQL, not by a top-up).
    rows = ledger(stack, tenant)
    rows = rows[[k for k, *_ in rows].index("hold"):]
    assert rows[0][3] == 10 * PRICE + rows[0][2]
    for (_, _, _, before, *_), (_, _, cents, after, *_) in zip(rows, rows[1:]):
        assert after == before + cents
    # Told once per pause, to the tenant's webhook, and delivered.
    hooks = stack.sql("SELECT payload::jsonb FROM webhook_deliveries WHERE tenant_id = %s"
                      " AND event_type = 'batch.paused'", tenant)
    assert hooks and hooks[0][0]["data"]["batch_id"] == bid
    assert hooks[0][0]["data"]["reason"] == "insufficient_credits"
    wait_until(lambda: len({x["event_id"] for x in rcv.got()}) >= len(hooks), 30,
               "the batch.paused webhooks to be delivered")

    # Credits added: the scheduler resumes it, and all 50 finish.
    out = stack.cli("credits-add", "--tenant", tenant, "--cents", str(60 * PRICE))
    assert out["credits_cents"] == balance(stack, tenant)
    assert ledger(stack, tenant)[-1][0] == "topup"
    all_terminal(stack, bid, 90)
    b = cartesia_batch(stack, t, bid)
    assert b["status"] == "completed" and "pause_reason" not in b
    per_number = {}
    for d in dials(stack, bid):
        per_number[d["to"]] = per_number.get(d["to"], 0) + 1
    assert set(per_number) == set(numbers)
    assert assert_ledger_explains_every_call(stack, tenant) == {}
    assert balance(stack, tenant) == 70 * PRICE - stack.sql(
        "SELECT sum(cost_cents) FROM calls WHERE tenant_id = %s", tenant)[0][0]
    # Each pause counted once by the worker, and its webhook delivered once:
    # nothing more is due (the deliverer has sent every try due by now).
    deliverers.caught_up(sender)
    n = assert_each_pause_delivered_once(stack, hook, rcv, bid)
    assert n >= 1
    assert metric(worker, "worker_batches_paused_for_credits_total") - pauses == n
    assert len([e for e in stack.procs["worker"].events("batch.paused")
                if e["batch_id"] == bid]) == n


def test_a_create_that_cannot_afford_one_call_gets_402_on_every_surface(stack):
    t = stack.tenant(concurrency=5, credits=4 * PRICE)
    tenant = t["tenant_id"]
    before = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", tenant)[0][0]
    to = "+14155550177"
    # Cartesia: a 5-minute call is 50 cents.
    r = create(stack, t, [to], limit=1, minutes=5)
    assert r.status_code == 402, r.text
    assert r.json()["code"] == "insufficient_credits"
    # Rymi (480 minutes): its documented body.
    r = requests.post(stack.api + "/v1/calls/batch", headers=bearer(t["api_key"]),
                      json={"agent_id": t["agent_id"], "to": [to]}, timeout=10)
    assert r.status_code == 402, r.text
    assert r.json() == {"error": "Insufficient credits to start this call",
                        "code": "insufficient_credits", "detail": "tenant_balance_exhausted"}
    # batch-call, in its envelope.
    r = requests.post(stack.api + "/batch-call", headers=batchcall_headers(t),
                      json={"name": "poor", "agent_id": t["agent_id"],
                            "from_number": t["from_number"], "send_now": True,
                            "tasks": [{"to_number": to}]}, timeout=10)
    assert r.status_code == 402, r.text
    assert r.json()["status"] == "error" and r.json()["error"]["code"] == "insufficient_credits"
    # Retell.
    r = requests.post(stack.api + "/create-batch-call", headers=bearer(t["api_key"]),
                      json={"from_number": t["from_number"], "agent_id": t["agent_id"],
                            "tasks": [{"to_number": to}]}, timeout=10)
    assert r.status_code == 402, r.text
    assert r.json() == {"status": "error", "message": "Insufficient credits to start calls."}
    # Nothing changed: no batch, no ledger move, the same balance.
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", tenant)[0][0] == before
    assert balance(stack, tenant) == 4 * PRICE
    assert [k for k, *_ in ledger(stack, tenant)] == ["topup"]


def test_an_unanswered_call_costs_nothing_and_a_redelivered_end_moves_no_money(stack):
    t = stack.tenant(concurrency=2, credits=100 * PRICE)
    tenant = t["tenant_id"]
    # The carrier's script for these numbers: busy, then answered.
    busy, answered = "+14475550101", "+14475550102"
    for n, outcome in ((busy, "busy"), (answered, "completed")):
        requests.post(stack.sim + "/outcomes", params={"to": n, "outcomes": outcome},
                      timeout=10).raise_for_status()
    r = create(stack, t, [busy, answered], limit=2, minutes=2)
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    all_terminal(stack, bid, 60)
    wait_until(lambda: not stack.sql("SELECT 1 FROM calls WHERE batch_id = %s"
                                     " AND ended_at IS NULL", bid), 20, "every call to end")
    by_to = {row[0]: row[1:] for row in stack.sql(
        "SELECT to_number, id, status, hold_cents, cost_cents FROM calls WHERE batch_id = %s", bid)}
    assert by_to[busy][1] == "busy" and by_to[busy][2] == 2 * PRICE and by_to[busy][3] == 0
    assert by_to[answered][1] == "completed" and 0 < by_to[answered][3] <= 2 * PRICE
    assert assert_ledger_explains_every_call(stack, tenant) == {}
    rows, bal = ledger(stack, tenant), balance(stack, tenant)
    assert bal == 100 * PRICE - by_to[answered][3]

    # The carrier's retry of the final callback: acknowledged, nothing moves.
    (d,) = [x for x in dials(stack, bid) if x["to"] == answered]
    cb = d["params"]["StatusCallback"]
    form = {"AccountSid": "ACsimulator", "CallSid": d["call_sid"], "CallStatus": "completed",
            "CallDuration": "300", "To": answered, "From": d["from"]}
    worker = stack.procs["worker"].port
    repeats = metric(worker, "worker_duplicate_events_total")
    for _ in range(2):
        r = requests.post(cb, data=form, headers={"X-Twilio-Signature": signature(cb, form)},
                          timeout=10)
        assert r.status_code in (200, 204), r.text
    # Both reached the worker and were dropped as already applied (counted
    # after the statement that would have moved money): nothing moved.
    wait_until(lambda: metric(worker, "worker_duplicate_events_total") >= repeats + 2, 15,
               "the worker to drop both repeats", interval=0.02)
    assert ledger(stack, tenant) == rows and balance(stack, tenant) == bal
    assert stack.sql("SELECT cost_cents, duration_s FROM calls WHERE id = %s",
                     by_to[answered][0])[0][0] == by_to[answered][3]
