"""Recipients the tenant's policy held back until their batch expired (issue
15; docs/api.md, "Tenant policy"). Legal hours defer a recipient and running
out of credits pauses its batch; when the batch's latest_at passes with a
recipient still held so, the scheduler's expiry ends it with the reason,
outside_legal_hours or insufficient_credits, as the dial-time DNC gate ends
a listed number: failed, an attempt that never reached the carrier, its
call-result events and a call.failed webhook, counted, and shown by every
surface. The simulator's ledger is the witness of what was dialed; the clock
is PostgreSQL's movable one (clock_offset)."""
import datetime
import json

import requests

from conftest import batchcall_headers, bearer, cartesia_batch, system_settled, wait_until
from test_agent_leg import script_answered
from test_analytics import read_topic
from test_dispatch import all_terminal, create, dials
from test_dnc_gate import ever_dialed
from test_legal_hours import policy_on
from test_local_hours import clock  # noqa: F401 (a fixture)
from test_webhooks import deliverers, receiver, register  # noqa: F401 (fixtures)

UTC = datetime.timezone.utc
PRICE = 10   # cents a minute: the demo tenant's plan ("go")
HOURS_MSG = "not dialed: outside the tenant's legal calling hours until the batch expired"
CREDITS_MSG = "not dialed: the batch was paused for insufficient credits until it expired"


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def blocked_metric(stack, reason):
    text = requests.get(f"http://127.0.0.1:{stack.procs['scheduler'].port}/metrics",
                        timeout=5).text
    key = f'scheduler_recipients_blocked_total{{reason="{reason}"}} '
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(key))


def assert_stopped(stack, t, bid, numbers, reason, msg, rcv, rymi_word):
    """numbers of batch bid ended undialed with reason: rows, events,
    webhooks and every surface's read."""
    rows = stack.sql("SELECT r.to_number, r.status, r.end_reason, r.error_message, r.attempts,"
                     "       c.id, c.status, c.end_reason, c.carrier_call_id, c.attempt"
                     "  FROM recipients r JOIN calls c ON c.id = r.last_call_id"
                     " WHERE r.batch_id = %s AND r.to_number = ANY(%s)", bid, numbers)
    assert len(rows) == len(numbers), rows
    ids = set()
    for _, st, why, m, attempts, cid, cst, cwhy, sid, attempt in rows:
        assert (st, why, m, cst, cwhy, sid) == ("failed", reason, msg, "failed", reason, None)
        assert attempt == attempts
        ids.add(cid)
    for n in numbers:
        assert ever_dialed(stack, n) == [], n

    # Told on the call-results topic (v2 and v3) and by webhook. The
    # scheduler sends its outbox rows as it writes them and deletes them
    # once Kafka has them.
    wait_until(lambda: stack.sql("SELECT count(*) FROM outbox WHERE key = %s", bid)[0][0] == 0,
               30, "the call-results to reach Kafka")
    ev = [json.loads(v) for k, v in read_topic(stack) if k == bid]
    mine = [e for e in ev if e.get("call_id") in ids]
    assert {(e["schema"], e["end_reason"], e["carrier_status"], e["final"],
             e["recipient_status"]) for e in mine} == {
        ("batchcall.call-result/v2", reason, "failed", True, "failed"),
        ("batchcall.call-result/v3", reason, "failed", True, "failed")}, mine
    assert len(mine) == 2 * len(ids)
    wait_until(lambda: {f"evt_{i}" for i in ids} <= {x["event_id"] for x in rcv.got()},
               30, "the webhooks of the stopped recipients")
    for x in rcv.got():
        body = json.loads(x["body"])
        if body["data"]["call_id"] in ids:
            assert body["type"] == "call.failed" and body["data"]["end_reason"] == reason
            assert body["data"]["final"] is True

    # Every surface, in its words.
    c = cartesia_batch(stack, t, bid)
    assert c["total_calls_blocked"] == len(numbers)
    for x in c["recipients"]:
        if x["to_number"] in numbers:
            assert x["status"] == "failed" and x["end_reason"] == reason
            assert x["error_message"] == msg
    y = requests.get(f"{stack.api}/v1/calls/{bid}", headers=bearer(t["api_key"]), timeout=10).json()
    assert y["blocked"] == {rymi_word: len(numbers)}
    for p in y["participants"]:
        if p["identity"] in numbers:
            assert p["status"] == "failed" and p["end_reason"] == rymi_word
    g = requests.get(f"{stack.api}/batch-call/{bid}", headers=batchcall_headers(t),
                     timeout=10).json()["data"]
    assert g["blocked"] == {reason: len(numbers)}
    tasks = requests.get(f"{stack.api}/batch-call/{bid}/tasks", headers=batchcall_headers(t),
                         timeout=10).json()["data"]["tasks"]
    for task in tasks:
        if task["to_number"] in numbers:
            assert task["status"] == "failed" and task["end_reason"] == reason
    rt = requests.get(f"{stack.api}/get-batch-call/{bid}", headers=bearer(t["api_key"]),
                      timeout=10).json()
    assert rt["blocked"] == {reason: len(numbers)}


def test_a_recipient_held_by_legal_hours_past_its_batchs_expiry_ends_outside_legal_hours(
        stack, clock, receiver, deliverers):  # noqa: F811
    """+81 3 is Tokyo: at 18:00 UTC it is 03:00 there, and the next legal
    opening is 08:00 Tokyo (23:00 UTC); the batch expires at 20:00 UTC. The
    New York number of the same batch (13:00 there) is dialed."""
    t = stack.tenant(concurrency=4)
    policy_on(stack, t)
    rcv = receiver()
    register(stack, t, rcv.url, events=("call.completed", "call.failed"))
    deliverers.start()
    # A coming 18:00 UTC: latest_at must be ahead of the real clock too.
    now = datetime.datetime.now(UTC)
    t0 = now.replace(hour=18, minute=0, second=0, microsecond=0)
    if t0 < now + datetime.timedelta(minutes=10):
        t0 += datetime.timedelta(days=1)
    tokyo, ny = "+81312340071", "+12125550171"
    script_answered(stack, [ny])
    clock(rfc3339(t0))
    before = blocked_metric(stack, "outside_legal_hours")
    bid = create(stack, t, [tokyo, ny], limit=1,
                 latest_at=rfc3339(t0 + datetime.timedelta(hours=2)))
    wait_until(lambda: stack.sql("SELECT 1 FROM recipients WHERE batch_id = %s AND window_wait"
                                 " AND legal_opens IS NOT NULL", bid), 15,
               "the Tokyo recipient to wait for legal hours")
    assert stack.sql("SELECT to_number, next_attempt_at, legal_opens FROM recipients"
                     " WHERE batch_id = %s AND window_wait", bid) == \
        [(tokyo, t0 + datetime.timedelta(hours=5), t0 + datetime.timedelta(hours=5))]
    wait_until(lambda: stack.sql("SELECT status FROM recipients WHERE batch_id = %s"
                                 " AND to_number = %s", bid, ny)[0][0] == "completed", 30,
               "the New York recipient to be called")

    clock(rfc3339(t0 + datetime.timedelta(hours=2, seconds=5)))   # past latest_at
    all_terminal(stack, bid, 15)
    assert_stopped(stack, t, bid, [tokyo], "outside_legal_hours", HOURS_MSG, rcv,
                   "outside_legal_hours")
    assert blocked_metric(stack, "outside_legal_hours") == before + 1
    logged = stack.procs["scheduler"].events("batch.expiry_stopped")
    assert [(e["reason"], e["recipients"]) for e in logged if e["batch_id"] == bid] == \
        [("outside_legal_hours", 1)]
    # Its legal opening comes, and nothing is dialed.
    clock(rfc3339(t0 + datetime.timedelta(hours=5, minutes=1)))
    system_settled(stack)
    assert {d["to"] for d in dials(stack, bid)} == {ny}


def test_only_the_legal_window_makes_outside_legal_hours_the_batchs_own_hours_expire(stack, clock):
    """Both recipients wait past latest_at, in a batch whose own hours
    (09:00-10:00 New York) are closed at 18:00 UTC: the New York one only
    for those hours (legal ones are open, 13:00 there), so it expires as
    ever; the Tokyo one for the legal window too (03:00 there, opening at
    23:00 UTC, after latest_at), so it ends outside_legal_hours."""
    t = stack.tenant(concurrency=4)
    policy_on(stack, t)
    now = datetime.datetime.now(UTC)
    t0 = now.replace(hour=18, minute=0, second=0, microsecond=0)
    if t0 < now + datetime.timedelta(minutes=10):
        t0 += datetime.timedelta(days=1)
    tokyo, ny = "+81312340072", "+12125550172"
    clock(rfc3339(t0))
    bid = create(stack, t, [tokyo, ny], limit=2, timezone="America/New_York",
                 calling_hours={"start": "09:00", "end": "10:00"},
                 latest_at=rfc3339(t0 + datetime.timedelta(hours=2)))
    wait_until(lambda: stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s"
                                 " AND window_wait", bid)[0][0] == 2, 15, "both to be deferred")
    assert dict(stack.sql("SELECT to_number, legal_opens FROM recipients WHERE batch_id = %s",
                          bid)) == {tokyo: t0 + datetime.timedelta(hours=5), ny: None}
    clock(rfc3339(t0 + datetime.timedelta(hours=2, seconds=5)))
    wait_until(lambda: not stack.sql("SELECT 1 FROM recipients WHERE batch_id = %s"
                                     " AND status = 'queued'", bid), 15, "both to end")
    assert dict((n, (st, why)) for n, st, why in stack.sql(
        "SELECT to_number, status, end_reason FROM recipients WHERE batch_id = %s", bid)) == {
        tokyo: ("failed", "outside_legal_hours"), ny: ("expired", "expired")}
    assert dials(stack, bid) == []


def test_a_recipient_of_a_batch_paused_for_credits_that_expires_ends_insufficient_credits(
        stack, clock, receiver, deliverers):  # noqa: F811
    t = stack.tenant(concurrency=4, credits=2 * PRICE)   # two one-minute calls
    rcv = receiver()
    register(stack, t, rcv.url, events=("call.completed", "call.failed"))
    deliverers.start()
    numbers = [f"+1447800{i:04d}" for i in range(8)]
    script_answered(stack, numbers)
    before = blocked_metric(stack, "insufficient_credits")
    bid = create(stack, t, numbers, limit=1, max_call_duration_minutes=1, ttl=3600)

    def paused():   # paused, nothing live, less than a call left (test_credits)
        return stack.sql(
            "SELECT b.state = 'paused' AND b.pause_reason = 'insufficient_credits'"
            "   AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.batch_id = b.id"
            "                   AND c.ended_at IS NULL)"
            "   AND t.credits_cents - u.used_cents < %s"
            "  FROM batches b JOIN tenants t ON t.id = b.tenant_id"
            "  JOIN credit_usage u ON u.tenant_id = t.id WHERE b.id = %s", PRICE, bid)[0][0]
    wait_until(paused, 90, "the batch to pause itself for credits", interval=0.2)
    waiting = [n for n, in stack.sql("SELECT to_number FROM recipients WHERE batch_id = %s"
                                     " AND status = 'queued' AND attempts = 0", bid)]
    assert waiting and not {d["to"] for d in dials(stack, bid)} & set(waiting)

    clock(rfc3339(datetime.datetime.now(UTC) + datetime.timedelta(hours=2)))   # past latest_at
    all_terminal(stack, bid, 15)
    assert_stopped(stack, t, bid, waiting, "insufficient_credits", CREDITS_MSG, rcv,
                   "insufficient_credits")
    assert blocked_metric(stack, "insufficient_credits") == before + len(waiting)
    assert cartesia_batch(stack, t, bid)["pause_reason"] == "insufficient_credits"
