"""Credits that are spent (docs/api.md, "Credits"): a hold before each
dial, released when the call ends and the answered call's cost settled;
a batch that runs out pauses itself and resumes when credits are added;
spend is the sum of settled costs; every move is a ledger row. The carrier
simulator's ledger is the witness of what was dialed."""
import json
import threading
from collections import Counter

import requests

from conftest import (batchcall_headers, bearer, calls_update_fails_once, cartesia_batch,
                      cartesia_headers, wait_until)
from test_carrier_faults import Region, extra  # noqa: F401 (extra: a fixture)
from test_dispatch import all_terminal, assert_one_dial_per_recipient, dials, metric
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


def assert_ledger_explains_every_call(stack, tenant, price=PRICE):
    """Per call: each hold of its maximum duration at the tenant's price
    followed by one release of it, and a settlement of its billed minutes
    only if it was answered. A dial the carrier paced gives its hold back
    and is held again before it is sent again (one pair per send); a dial
    the reconciler gave back, or a claim undone, is gone from calls and
    leaves its pairs alone. Returns the holds of calls still live."""
    calls = {c[0]: c[1:] for c in stack.sql(
        "SELECT id, status, duration_s, hold_cents, cost_cents, billed_min, ended_at IS NULL"
        "  FROM calls WHERE tenant_id = %s", tenant)}
    by_call = {}
    for kind, call, cents, _after, minutes, p in ledger(stack, tenant):
        if call:
            by_call.setdefault(call, []).append((kind, cents, minutes, p))
    ended_held = {c for c, (*_, hold, _c, _b, live) in calls.items()
                  if hold is not None and not live}
    assert ended_held <= set(by_call), ended_held - set(by_call)
    live = {}
    for cid, got in by_call.items():
        status, dur, hold, cost, billed, is_live = calls.get(cid, (None,) * 5 + (False,))
        if is_live and hold is not None:
            assert got[-1][:2] == ("hold", -hold), (cid, got)
            live[cid], got = hold, got[:-1]
        elif status == "completed" and hold is not None:
            minutes = -(-dur // 60)
            assert billed == minutes and cost == min(hold, minutes * price), (cid, billed, cost)
            assert got[-1] == ("settle", -cost, minutes, price), (cid, got)
            got = got[:-1]
        elif hold is not None:
            assert cost == 0 and billed is None, (cid, status, cost, billed)
        kinds = [k for k, *_ in got]
        assert kinds or cid in live, (cid, status, got)
        assert kinds == ["hold", "release"] * (len(kinds) // 2), (cid, status, got)
        for (_, held, mins, hp), (_, back, _, rp) in zip(got[::2], got[1::2]):
            assert back == -held == mins * price and hp == rp == price, (cid, got)
            assert hold is None or back == hold, (cid, hold, got)
    return live   # holds of calls still live


def assert_no_money_lost_or_made(stack, tenant, start):
    """Every call has ended: nothing is held, and the balance is the start
    less the settled costs, which is also the start plus every ledger move
    but top-ups."""
    assert not stack.sql("SELECT id FROM calls WHERE tenant_id = %s AND ended_at IS NULL",
                         tenant)
    settled = stack.sql("SELECT coalesce(sum(cost_cents), 0) FROM calls WHERE tenant_id = %s",
                        tenant)[0][0]
    moved = stack.sql("SELECT coalesce(sum(cents), 0) FROM credit_ledger WHERE tenant_id = %s"
                      " AND kind <> 'topup'", tenant)[0][0]
    assert balance(stack, tenant) == start - settled == start + moved
    assert settled == -sum(c for k, _, c, *_ in ledger(stack, tenant) if k == "settle")
    return settled


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


# The paths a hold leaves by other than a call's final callback: a dial the
# carrier paced, one it refused, one whose outcome only the reconciler could
# learn. Each runs in a region of its own (test_carrier_faults.Region: its
# own simulator, scheduler and worker, faults queued on that simulator).

def region_batch(stack, t, numbers, limit, minutes):
    body = {"name": "credit-edges", "agent_id": t["agent_id"],
            "from_number_id": t["from_number_id"], "target_concurrency_limit": limit,
            "max_call_duration_minutes": minutes, "region": "APAC",
            "recipients": [{"to_number": n} for n in numbers]}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=60)
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    all_terminal(stack, bid, 60)
    wait_until(lambda: not stack.sql("SELECT 1 FROM calls WHERE batch_id = %s"
                                     " AND ended_at IS NULL", bid), 20, "every call to end")
    return bid


def holds_per_call(stack, tenant):
    rows = stack.sql("SELECT call_id, count(*) FROM credit_ledger WHERE tenant_id = %s"
                     " AND kind = 'hold' GROUP BY 1", tenant)
    return dict(rows)


def test_a_paced_dial_gives_its_hold_back_before_it_is_held_again(stack, extra):
    """429: the worker keeps the lease and sends the dial again; the hold
    goes back with the call to 'claimed' and is taken again at the gate, so
    each send holds once and releases once, and only answered calls cost."""
    region = Region(stack, extra)
    region.faults(create_429=5)
    start = 100 * PRICE
    t = stack.tenant(concurrency=10, credits=start)
    numbers = [f"+1437{i:07d}" for i in range(6)]
    bid = region_batch(stack, t, numbers, limit=3, minutes=2)
    assert region.played()["create_429"] == 5
    paced = metric(region.worker.port, "worker_dials_paced_total")
    assert paced >= 5
    # The carrier's witness: one call per person, no attempt spent on pacing.
    assert_one_dial_per_recipient(stack, bid, numbers, 3, sim=region.sim)
    assert stack.sql("SELECT count(*), max(attempt) FROM calls WHERE batch_id = %s",
                     bid) == [(6, 1)]
    # A hold per send: the sends that reached the carrier and those paced.
    holds = holds_per_call(stack, t["tenant_id"])
    assert sum(holds.values()) == len(dials(stack, bid, region.sim)) + paced
    assert max(holds.values()) >= 2
    assert assert_ledger_explains_every_call(stack, t["tenant_id"]) == {}
    settled = assert_no_money_lost_or_made(stack, t["tenant_id"], start)
    assert settled == 6 * PRICE   # six answered calls of under a minute


def test_a_dial_the_carrier_refuses_gives_its_hold_back_and_costs_nothing(stack, extra):
    """A 4xx on create (Twilio's 21211): the call ends failed, never placed,
    its hold released in the statement that ends it."""
    region = Region(stack, extra)
    region.faults(create_4xx=2)
    start = 100 * PRICE
    t = stack.tenant(concurrency=10, credits=start)
    numbers = [f"+1438{i:07d}" for i in range(4)]
    bid = region_batch(stack, t, numbers, limit=2, minutes=3)
    assert region.played()["create_4xx"] == 2
    refused = stack.sql("SELECT id, status, carrier_call_id, hold_cents, cost_cents"
                        "  FROM calls WHERE batch_id = %s AND end_reason = 'dial_failed'", bid)
    assert len(refused) == 2, refused
    assert all(st == "failed" and sid is None and hold == 3 * PRICE and cost == 0
               for _, st, sid, hold, cost in refused), refused
    # The carrier placed only the others, once each.
    others = stack.sql("SELECT id FROM calls WHERE batch_id = %s"
                       "   AND end_reason IS DISTINCT FROM 'dial_failed'", bid)
    assert sorted(d["call_id"] for d in dials(stack, bid, region.sim)) == sorted(
        c for (c,) in others)
    rec = dict(stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s"
                         " GROUP BY 1", bid))
    assert rec == {"failed": 2, "completed": 2}, rec
    assert assert_ledger_explains_every_call(stack, t["tenant_id"]) == {}
    settled = assert_no_money_lost_or_made(stack, t["tenant_id"], start)
    assert settled == 2 * PRICE


def test_a_refused_dial_whose_end_was_not_recorded_still_gives_its_hold_back(stack, extra):
    """The statement that ends a refused dial fails once (a trigger here; in
    life a dropped connection, a lock timeout). The carrier has no call for
    the quiet-call sweep to find, so the worker lets the lease of an end it
    could not record lapse, and the reconciler, which asks the carrier,
    gives the attempt back: the hold released once, the same attempt
    dialed again (left to the sweep, the call stayed 'dialing', its hold
    held, for as long as its worker lived)."""
    region = Region(stack, extra)
    region.faults(create_4xx=1)
    start = 100 * PRICE
    t = stack.tenant(concurrency=10, credits=start)
    tenant = t["tenant_id"]
    with calls_update_fails_once(stack, "end_fails_once",
                                 "NEW.tenant_id = %s AND NEW.end_reason = 'dial_failed'"
                                 " AND OLD.ended_at IS NULL", tenant):
        bid = region_batch(stack, t, ["+14380000100"], limit=1, minutes=3)
    assert region.played()["create_4xx"] == 1
    events = [json.loads(x).get("event") for x in region.worker.log_lines()]
    assert "call.end_failed" in events
    assert metric(region.sched.port, "reconcile_attempts_requeued_total") == 1
    # The refused call is gone, its hold given back; its attempt was dialed
    # again and answered.
    calls = stack.sql("SELECT id, status, attempt FROM calls WHERE batch_id = %s", bid)
    assert [(st, a) for _, st, a in calls] == [("completed", 1)], calls
    holds = holds_per_call(stack, tenant)
    assert len(holds) == 2 and set(holds.values()) == {1}, holds
    assert stack.sql("SELECT status FROM recipients WHERE batch_id = %s", bid) == [("completed",)]
    assert len(dials(stack, bid, region.sim)) == 1
    assert assert_ledger_explains_every_call(stack, tenant) == {}
    assert assert_no_money_lost_or_made(stack, tenant, start) == PRICE


def carrier_call(sim, sid):
    r = requests.get(f"{sim}/2010-04-01/Accounts/ACsimulator/Calls/{sid}.json",
                     auth=("ACsimulator", "sim-auth-token"), timeout=10)
    r.raise_for_status()
    return r.json()


def test_dials_the_reconciler_gives_back_or_ends_release_their_holds(stack, extra):
    """The carrier's answer to a create never comes (5xx, or too late) and
    no callback reaches us: the reconciler asks the carrier. A call it never
    had is given back (its row goes, its hold is released, the attempt is
    queued again); one it had is adopted and ended with the carrier's own
    status and duration, and billed on them."""
    region = Region(stack, extra, sim_env={"BC_SIM_HANG_MS": "2500"},
                    sched_env={"BC_QUIET_CALL_S": "2"},
                    worker_env={"BC_CARRIER_TIMEOUT_MS": "1000",
                                "BC_PUBLIC_URL": "http://127.0.0.1:9"})
    region.faults(create_5xx=2, create_hang=1)
    start = 100 * PRICE
    t = stack.tenant(concurrency=10, credits=start)
    tenant = t["tenant_id"]
    numbers = [f"+1439{i:07d}" for i in range(3)]
    bid = region_batch(stack, t, numbers, limit=3, minutes=2)
    played = region.played()
    assert played["create_5xx"] == 2 and played["create_hang"] == 1
    assert metric(region.sched.port, "reconcile_attempts_requeued_total") == 2
    assert metric(region.sched.port, "reconcile_calls_adopted_total") == 1
    # The two given back: gone from calls, each a hold and its release.
    calls = {c for (c,) in stack.sql("SELECT id FROM calls WHERE batch_id = %s", bid)}
    gone = {c: n for c, n in holds_per_call(stack, tenant).items() if c not in calls}
    assert len(gone) == 2 and set(gone.values()) == {1}, gone
    # The rest ended by the carrier's word alone (no callback came), billed
    # on the duration the carrier reports, once each.
    ended = stack.sql("SELECT carrier_call_id, status, duration_s, billed_min, cost_cents"
                      "  FROM calls WHERE batch_id = %s", bid)
    assert len(ended) == 3
    for sid, status, dur, billed, cost in ended:
        c = carrier_call(region.sim, sid)
        assert (status, dur) == (c["status"], int(c["duration"])) == ("completed", dur)
        assert billed == -(-dur // 60) and cost == billed * PRICE
    assert_one_dial_per_recipient(stack, bid, numbers, 3, sim=region.sim)
    assert assert_ledger_explains_every_call(stack, tenant) == {}
    assert assert_no_money_lost_or_made(stack, tenant, start) == sum(c for *_, c in ended)


def set_plan(stack, t, plan, price=None):
    """The tenant's plan (and its own price, for custom), its other limits
    as stack.tenant(concurrency=5) left them."""
    args = ["--price-per-min", str(price)] if price is not None else []
    stack.cli("tenant-limits", "--tenant", t["tenant_id"], "--plan", plan,
              "--concurrency", "5", "--rate-per-min", "0", "--burst", "0", *args)


def test_a_plan_other_than_go_holds_and_bills_at_its_own_price(stack):
    """plus (plan_prices) and custom (its own --price-per-min): a create is
    afforded, a call held and an answered call settled at the tenant's
    price, not the default plan's."""
    plus = stack.sql("SELECT price_per_min_cents FROM plan_prices WHERE plan = 'plus'")[0][0]
    assert plus != PRICE
    tenants = []
    for plan, price, n in (("plus", plus, 1), ("custom", 7, 3)):
        # plus: just enough for one 2-minute call at its price, not at go's.
        start = 2 * plus if plan == "plus" else 100 * price
        t = stack.tenant(concurrency=5, credits=start)
        set_plan(stack, t, plan, price if plan == "custom" else None)
        assert stack.sql("SELECT price_per_min_cents FROM tenants WHERE id = %s",
                         t["tenant_id"])[0][0] == price
        numbers = [f"+1449{len(tenants)}55{i:04d}" for i in range(n)]
        for num, outcome in zip(numbers, ("completed", "busy", "completed")):
            requests.post(stack.sim + "/outcomes", params={"to": num, "outcomes": outcome},
                          timeout=10).raise_for_status()
        r = create(stack, t, numbers, limit=n, minutes=2)
        assert r.status_code == 201, r.text
        tenants.append((t, price, start, r.json()["id"]))
    assert 2 * plus < 2 * PRICE   # go's price would have refused plus's create
    for t, price, start, bid in tenants:
        all_terminal(stack, bid, 60)
        wait_until(lambda: not stack.sql("SELECT 1 FROM calls WHERE batch_id = %s"
                                         " AND ended_at IS NULL", bid), 20, "every call to end")
        rows = stack.sql("SELECT status, hold_cents, price_per_min_cents, billed_min, cost_cents"
                         "  FROM calls WHERE batch_id = %s", bid)
        for status, hold, p, billed, cost in rows:
            assert hold == 2 * price and p == price
            assert cost == (billed * price if status == "completed" else 0)
        assert assert_ledger_explains_every_call(stack, t["tenant_id"], price) == {}
        settled = assert_no_money_lost_or_made(stack, t["tenant_id"], start)
        assert settled == sum(c for *_, c in rows) > 0
        spend = requests.get(stack.api + "/v1/analytics/spend", headers=bearer(t["api_key"]),
                             timeout=10).json()
        assert spend["total_cents"] == settled


def test_a_call_live_when_its_plan_changes_is_billed_at_the_price_it_was_held_at(
        stack, extra):
    """The hold fixes the call's price: a plan changed while the call is
    live prices the calls held after it, not that one. The barrier: the
    carrier has ended the call but its final callback is lost, so it stays
    live here until the reconciler asks (BC_QUIET_CALL_S after its
    create); the plan changes in between, as the timestamps show."""
    region = Region(stack, extra, sched_env={"BC_QUIET_CALL_S": "3"})
    region.faults(callback_drop=1)
    plus = stack.sql("SELECT price_per_min_cents FROM plan_prices WHERE plan = 'plus'")[0][0]
    start = 100 * PRICE
    t = stack.tenant(concurrency=5, credits=start)
    tenant = t["tenant_id"]
    set_plan(stack, t, "plus")
    body = {"name": "price-change", "agent_id": t["agent_id"],
            "from_number_id": t["from_number_id"], "target_concurrency_limit": 1,
            "max_call_duration_minutes": 2, "region": "APAC",
            "recipients": [{"to_number": "+14400000001"}]}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=60)
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    wait_until(lambda: [d for d in dials(stack, bid, region.sim) if d["ended_ms"]], 20,
               "the carrier to end the call")
    assert region.played()["callback_drop"] == 1
    set_plan(stack, t, "custom", 7)
    changed = stack.sql("SELECT now()")[0][0]
    wait_until(lambda: not stack.sql("SELECT 1 FROM calls WHERE batch_id = %s"
                                     " AND ended_at IS NULL", bid), 20,
               "the reconciler to end the call")
    ((status, hold, price, billed, cost, ended),) = stack.sql(
        "SELECT status, hold_cents, price_per_min_cents, billed_min, cost_cents, ended_at"
        "  FROM calls WHERE batch_id = %s", bid)
    assert ended > changed, "the call ended before the plan changed: no barrier"
    assert status == "completed" and hold == 2 * plus and price == plus
    assert billed == 1 and cost == plus
    assert assert_ledger_explains_every_call(stack, tenant, plus) == {}
    assert assert_no_money_lost_or_made(stack, tenant, start) == plus


def test_a_claim_passes_the_dial_gate_and_takes_its_hold_in_its_own_statement(stack):
    """The claim (worker/sql/claim.sql) applies the tenant's policy and takes
    the credit hold in the statement that takes the slot: each dialed call
    was 'claimed' and 'dialing' at that one transaction's time, and so was
    its ledger hold; a number listed after the batch was accepted stays
    'claimed' there, holds nothing, and ends dnc_blocked. With the gate as
    a second statement (dial_start) the three times differed."""
    from test_dnc_gate import listed
    from test_pause import pause_until_settled
    t = stack.tenant(concurrency=2, credits=100000)
    numbers = [f"+1449779{i:04d}" for i in range(8)]
    late = numbers[5]
    r = create(stack, t, numbers, limit=1)
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    pause_until_settled(stack, t, bid)
    assert late not in {d["to"] for d in dials(stack, bid)}, "the batch went too fast"
    listed(stack, t, late)
    r = requests.post(f"{stack.api}/agents/calls/batches/{bid}/resume",
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 200, r.text
    all_terminal(stack, bid, 60)
    wait_until(lambda: not stack.sql("SELECT 1 FROM calls WHERE batch_id = %s"
                                     " AND ended_at IS NULL", bid), 20, "every call to end")

    rows = stack.sql(
        "SELECT c.to_number, c.status, c.end_reason, c.hold_cents, c.created_at,"
        "       c.history->0->>'status', c.history->0->>'at', c.history->1->>'status',"
        "       c.history->1->>'at', rfc3339_ms(c.created_at),"
        "       (SELECT array_agg(l.at) FROM credit_ledger l"
        "         WHERE l.call_id = c.id AND l.kind = 'hold')"
        "  FROM calls c WHERE c.batch_id = %s", bid)
    assert {r[0] for r in rows} == set(numbers), rows
    for to, status, reason, hold, created, s0, at0, s1, at1, created_ms, holds in rows:
        if to == late:
            assert (status, reason, hold, holds) == ("failed", "dnc_blocked", None, None)
            assert (s0, s1) == ("claimed", "failed")
            continue
        assert hold and hold > 0, (to, hold)
        assert (s0, s1) == ("claimed", "dialing"), (to, s0, s1)
        # One transaction: the claim's time, its history's and its hold's.
        assert at0 == at1 == created_ms, (to, at0, at1, created_ms)
        assert holds == [created], (to, holds, created)
    assert_one_dial_per_recipient(stack, bid, set(numbers) - {late}, limit=1)
