"""The tenant policy's edges on the real stack (issue 15): legal hours for a
European number and for one whose prefix spans two zones, legal hours on
top of a batch's own hours, a stopped recipient that a retry policy would
otherwise retry, Rymi's single-call create, the bulk DNC request's cap and
batch-call's default concurrency. The simulator's ledger is the witness of
what was dialed; the clock is PostgreSQL's movable one (clock_offset)."""
import datetime

import requests

from conftest import batchcall_headers, bearer, cartesia_headers, wait_until
from test_dispatch import all_terminal, create, dials
from test_dnc_gate import DNC_MSG, ever_dialed, listed, recipient_rows
from test_legal_hours import deferred_until, policy_on
from test_local_hours import clock  # noqa: F401 (a fixture)
from test_pause import pause_until_settled

UTC = datetime.timezone.utc


def waiting(stack, bid):
    """{number: next_attempt_at} of the batch's recipients deferred to their
    window."""
    return dict(stack.sql("SELECT to_number, next_attempt_at FROM recipients"
                          " WHERE batch_id = %s AND window_wait", bid))


def dialed(stack, bid):
    return sorted(d["to"] for d in dials(stack, bid))


def test_london_and_nevada_wait_for_the_hours_open_in_all_their_zones(stack, clock):
    """04:00:05 UTC on a Thursday in November: 04:00 in London, 20:00 in Los
    Angeles and 21:00 in Boise. +44 20 (London) waits for 08:00 London;
    +1 775 (Nevada: Boise and Los Angeles) is closed in Boise, so it waits
    for 08:00 Pacific, the first time both are open, not 08:00 Mountain. A
    number open everywhere (+81 3: 13:00 in Tokyo) is dialed at once."""
    t = stack.tenant(concurrency=5)
    policy_on(stack, t)
    london, nevada, tokyo = "+442071230001", "+17755550401", "+81312340401"
    clock("2026-11-26 04:00:05+00")
    bid = create(stack, t, [london, nevada, tokyo], limit=3)
    all_deferred = wait_until(lambda: len(waiting(stack, bid)) == 2 and waiting(stack, bid),
                              15, "London and Nevada to be deferred")
    assert all_deferred == {london: datetime.datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
                            nevada: datetime.datetime(2026, 11, 26, 16, 0, tzinfo=UTC)}
    wait_until(lambda: dialed(stack, bid) == [tokyo], 15, "Tokyo to be dialed")

    clock("2026-11-26 15:00:01+00")   # 08:00 in Boise, 07:00 in Los Angeles: London only
    wait_until(lambda: dialed(stack, bid) == sorted([london, tokyo]), 15, "London to be dialed")
    assert nevada not in dialed(stack, bid)
    assert waiting(stack, bid) == {nevada: datetime.datetime(2026, 11, 26, 16, 0, tzinfo=UTC)}

    clock("2026-11-26 16:00:01+00")   # 08:00 Pacific: open in both
    all_terminal(stack, bid, 30)
    assert dialed(stack, bid) == sorted([london, nevada, tokyo])


def test_legal_hours_narrow_a_batch_s_own_hours(stack, clock):
    """A batch whose own hours are 20:00-23:00 New York, under the tenant's
    08:00-21:00: at 21:30 the batch's hours are open and the law's are not,
    so the recipient waits for the next time both are, 20:00 the next day,
    and is dialed then."""
    t = stack.tenant(concurrency=5)
    policy_on(stack, t)
    clock("2026-11-26 02:30:00+00")   # Wednesday 21:30 in New York
    bid = create(stack, t, ["+12125550501"], limit=1, timezone="America/New_York",
                 calling_hours={"start": "20:00", "end": "23:00"})
    at, _ = deferred_until(stack, bid)
    assert at == datetime.datetime(2026, 11, 27, 1, 0, tzinfo=UTC)   # Thursday 20:00
    assert dials(stack, bid) == []
    clock("2026-11-27 01:00:01+00")
    all_terminal(stack, bid, 30)
    assert len(dials(stack, bid)) == 1


def test_a_number_stopped_at_dial_time_is_not_retried_whatever_the_retry_policy(stack):
    """retry_on includes failed: a real failure would be tried again, but a
    recipient the DNC gate stopped ends at once, with one attempt, undialed."""
    t = stack.tenant(concurrency=4)
    numbers = [f"+1415781{i:04d}" for i in range(6)]
    late = numbers[5]
    bid = create(stack, t, numbers, limit=1, max_retries=3, retry_on=["busy", "failed"],
                 retry_intervals_s=[1])
    pause_until_settled(stack, t, bid)
    assert late not in {d["to"] for d in dials(stack, bid)}, "the batch went too fast"
    listed(stack, t, late)
    requests.post(f"{stack.api}/agents/calls/batches/{bid}/resume",
                  headers=cartesia_headers(t["api_key"]), timeout=10).raise_for_status()
    all_terminal(stack, bid, 90)
    assert recipient_rows(stack, bid)[late] == ("failed", "dnc_blocked", DNC_MSG, 1)
    assert ever_dialed(stack, late) == []


def test_rymi_single_call_with_a_listed_participant_is_refused_and_stores_nothing(stack):
    t = stack.tenant(concurrency=4)
    bad, good = "+14157820001", "+14157820002"
    listed(stack, t, bad)
    before = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]
    r = requests.post(stack.api + "/v1/calls", headers=bearer(t["api_key"]), timeout=30, json={
        "agent_id": t["agent_id"],
        "participants": [{"transport": "pstn", "identity": good, "from_number": t["from_number"]},
                         {"transport": "pstn", "identity": bad, "from_number": t["from_number"]}]})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "dnc_listed" and body["numbers"] == [bad], body
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s",
                     t["tenant_id"])[0][0] == before
    assert ever_dialed(stack, bad) == [] and ever_dialed(stack, good) == []


def test_a_bulk_dnc_request_over_its_cap_is_refused_whole(stack):
    """500,000 numbers a request (docs/api.md); one more is a 400 that lists
    nothing, not a partial import."""
    t = stack.tenant(concurrency=2)
    nums = [f"+1653{i:07d}" for i in range(500001)]
    r = requests.post(stack.api + "/v1/dnc/batch", headers=bearer(t["api_key"]),
                      json={"numbers": nums}, timeout=120)
    assert r.status_code == 400, r.text[:300]
    assert "numbers" in r.json()["error"], r.text[:300]
    assert stack.sql("SELECT count(*) FROM dnc WHERE tenant_id = %s", t["tenant_id"])[0][0] == 0


def test_batch_call_s_default_concurrency_is_half_the_tenant_s_limit(stack):
    t = stack.tenant(concurrency=10)
    r = requests.post(stack.api + "/batch-call", headers=batchcall_headers(t), timeout=30, json={
        "from_number": t["from_number"], "agent_id": t["agent_id"], "name": "default",
        "tasks": [{"to_number": "+14157830001"}], "send_now": True})
    assert r.status_code == 201, r.text
    bid = r.json()["data"]["batch_call_id"]
    assert stack.sql("SELECT target_concurrency_limit FROM batches WHERE id = %s", bid)[0][0] == 5
    all_terminal(stack, bid, 30)
