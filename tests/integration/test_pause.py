"""Pause and resume, of a batch and of a whole tenant, on the real stack:
no dial reaches the carrier simulator more than 500 ms after a pause
returned, live calls finish, counters stay true, and resume finishes the
batch where it stopped with one dial per recipient (docs/features.md)."""
import time

import pytest
import requests

from conftest import (batchcall_headers, bearer, cartesia_batch, cartesia_headers, system_settled,
                      wait_until)
from test_dispatch import all_terminal, assert_one_dial_per_recipient, create, dials

GRACE = 0.5   # the promise: no new dial later than this after a pause returned


def act(stack, t, path):
    r = requests.post(stack.api + path, headers=cartesia_headers(t["api_key"]), timeout=30)
    return r, time.monotonic()


def late_dials(stack, bid, returned):
    return [d for d in dials(stack, bid) if d["at_ms"] / 1000.0 > returned + GRACE]


def settled(stack, bid):
    """Nothing of the batch live any more: no lease held, no call open."""
    return stack.sql("SELECT (SELECT count(*) FROM leases WHERE batch_id = %s AND call_id IS NOT NULL)"
                     " + (SELECT count(*) FROM recipients WHERE batch_id = %s"
                     "    AND status IN ('dispatched', 'started'))", bid, bid)[0][0] == 0


def pause_until_settled(stack, t, bid):
    """Pauses tenant t's batch bid (Cartesia's route) and waits for the call
    it had live to finish."""
    r = requests.post(f"{stack.api}/agents/calls/batches/{bid}/pause",
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: settled(stack, bid), 30, "the live call to finish")


def status_counts(stack, bid):
    return dict(stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s GROUP BY 1", bid))


def test_a_paused_batch_places_no_dial_and_resumes_in_order_to_one_dial_each(stack):
    t = stack.tenant(concurrency=10)
    numbers = [f"+1441{i:07d}" for i in range(120)]
    limit = 3
    bid = create(stack, t, numbers, limit=limit)
    wait_until(lambda: len(dials(stack, bid)) >= 12, 30, "the batch to be dialing")
    r, returned = act(stack, t, f"/agents/calls/batches/{bid}/pause")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paused" and r.json()["paused_at"]
    # Live calls finish; nothing new is placed.
    wait_until(lambda: settled(stack, bid), 30, "the live calls to finish")
    # Whatever the scheduler would release and the worker would claim
    # after the pause has had its turn.
    system_settled(stack)
    assert settled(stack, bid)
    before = dials(stack, bid)
    print(f"last dial {max(d['at_ms'] for d in before) / 1000.0 - returned:+.3f} s after the pause returned")
    assert late_dials(stack, bid, returned) == []
    assert len(before) < len(numbers)
    # The counters say what the carrier saw.
    b = cartesia_batch(stack, t, bid)
    counts = status_counts(stack, bid)
    assert b["status"] == "paused"
    assert b["total_calls_dispatched"] == len(before) == b["total_calls_finished"]
    assert counts.get("queued", 0) == len(numbers) - len(before)
    assert not stack.sql("SELECT 1 FROM calls WHERE batch_id = %s AND status = 'claimed'", bid)
    # Still nothing after another while, and pausing again changes nothing.
    r2, _ = act(stack, t, f"/agents/calls/batches/{bid}/pause")
    assert r2.status_code == 200 and r2.json()["paused_at"] == r.json()["paused_at"]
    system_settled(stack)
    assert len(dials(stack, bid)) == len(before) and settled(stack, bid)

    r, resumed = act(stack, t, f"/agents/calls/batches/{bid}/resume")
    assert r.status_code == 200 and r.json()["status"] == "in_progress", r.text
    assert "paused_at" not in r.json()
    all_terminal(stack, bid, 90)
    # The dials since the resume: every one not already placed before it
    # (before was read once the pause had settled, and nothing was added
    # until the resume). Not "later than returned + GRACE": a pause that
    # settles and resumes within GRACE puts the first resumed dials there.
    seen = {d["call_sid"] for d in before}
    after = [d for d in dials(stack, bid) if d["call_sid"] not in seen]
    assert_one_dial_per_recipient(stack, bid, numbers, limit)
    assert {d["to"] for d in before} | {d["to"] for d in after} == set(numbers)
    # Where it stopped, in order: the first calls after resume are the next
    # recipients of the backlog (the window holds 2 x limit of them).
    rest = [n for n in numbers if n not in {d["to"] for d in before}]
    first = [d["to"] for d in sorted(after, key=lambda d: d["at_ms"])[:limit]]
    assert set(first) <= set(rest[:2 * limit]), (first, rest[:2 * limit])
    b = cartesia_batch(stack, t, bid)
    assert b["status"] == "completed" and b["total_calls_finished"] == len(numbers)


def test_pausing_a_tenant_holds_every_batch_and_new_ones_until_it_resumes(stack):
    t = stack.tenant(concurrency=10)
    a_nums = [f"+1442{i:07d}" for i in range(80)]
    b_nums = [f"+1443{i:07d}" for i in range(80)]
    a = create(stack, t, a_nums, limit=2)
    b = create(stack, t, b_nums, limit=2)
    wait_until(lambda: len(dials(stack, a)) >= 4 and len(dials(stack, b)) >= 4, 30,
               "both batches to be dialing")
    # b is also paused on its own: the tenant's resume must not resume it.
    assert act(stack, t, f"/agents/calls/batches/{b}/pause")[0].status_code == 200
    r, returned = act(stack, t, "/agents/calls/batches/pause")
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True and r.json()["paused_at"] and r.json()["batches"] == 1
    c_nums = [f"+1444{i:07d}" for i in range(5)]
    c = create(stack, t, c_nums, limit=2)   # created while the tenant is paused
    wait_until(lambda: settled(stack, a) and settled(stack, b), 30, "live calls to finish")
    system_settled(stack)
    for bid in (a, b, c):
        assert settled(stack, bid), bid
        assert late_dials(stack, bid, returned) == [], bid
        assert cartesia_batch(stack, t, bid)["status"] == "paused"
    assert dials(stack, c) == []
    assert stack.sql("SELECT state FROM batches WHERE id = %s", c)[0][0] == "pending"
    # Resuming a batch while its tenant is paused keeps it held.
    r = requests.post(f"{stack.api}/agents/calls/batches/{a}/resume",
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "paused", r.text
    system_settled(stack)
    assert late_dials(stack, a, returned) == [] and settled(stack, a)

    r, _ = act(stack, t, "/agents/calls/batches/resume")
    assert r.status_code == 200 and r.json() == {"paused": False, "paused_at": None, "batches": 1}, r.text
    all_terminal(stack, a, 90)
    all_terminal(stack, c, 30)
    assert_one_dial_per_recipient(stack, a, a_nums, 2)
    assert_one_dial_per_recipient(stack, c, c_nums, 2)
    n_b = len(dials(stack, b))
    assert n_b < len(b_nums) and cartesia_batch(stack, t, b)["status"] == "paused"
    act(stack, t, f"/agents/calls/batches/{b}/resume")
    all_terminal(stack, b, 90)
    assert_one_dial_per_recipient(stack, b, b_nums, 2)


def test_pause_and_resume_conflicts_and_unknown_batches(stack):
    t = stack.tenant(concurrency=4)
    bid = create(stack, t, ["+14450000001"], limit=1,
                 scheduled_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)))
    assert act(stack, t, f"/agents/calls/batches/{bid}/cancel")[0].status_code == 200
    for verb in ("pause", "resume"):
        r, _ = act(stack, t, f"/agents/calls/batches/{bid}/{verb}")
        assert r.status_code == 409 and r.json()["code"] == "conflict", r.text
        r, _ = act(stack, t, f"/agents/calls/batches/acb_nope/{verb}")
        assert r.status_code == 404, r.text
    other = stack.tenant(concurrency=2)
    r = requests.post(f"{stack.api}/agents/calls/batches/{bid}/pause",
                      headers=cartesia_headers(other["api_key"]), timeout=10)
    assert r.status_code == 404


def future_ms(s):
    return int((time.time() + s) * 1000)


SURFACES = {
    # surface: (create, pause path, resume path, tenant pause, tenant resume, status of)
    "rymi": ("/v1/calls/{id}/pause", "/v1/calls/{id}/resume", "/v1/calls/queue/pause",
             "/v1/calls/queue/resume", lambda j: j["status"]),
    "batch-call": ("/batch-call/{id}/pause", "/batch-call/{id}/resume", "/batch-call/pause",
                   "/batch-call/resume", lambda j: j["data"]["status"]),
    "retell": ("/pause-batch-call/{id}", "/resume-batch-call/{id}", "/pause-all-batch-calls",
               "/resume-all-batch-calls", lambda j: j["status"]),
}


def create_on(stack, t, surface):
    """A batch of one recipient that waits, on each surface."""
    if surface == "rymi":
        # Outside its calling hours for the next hour: it waits, released.
        hour = int(time.strftime("%H", time.gmtime(time.time() + 7200)))
        r = requests.post(stack.api + "/v1/calls/batch", headers=bearer(t["api_key"]), timeout=10,
                          json={"agent_id": t["agent_id"], "to": ["+14460000001"],
                                "calling_hours": {"start": f"{hour:02d}:00", "end": f"{hour:02d}:30"}})
        assert r.status_code == 202, r.text
        return r.json()["id"], "queued"
    if surface == "batch-call":
        r = requests.post(stack.api + "/batch-call", headers=batchcall_headers(t), timeout=10,
                          json={"from_number": t["from_number"], "agent_id": t["agent_id"],
                                "trigger_timestamp": future_ms(3600),
                                "tasks": [{"to_number": "+14460000002"}]})
        assert r.status_code == 201, r.text
        return r.json()["data"]["batch_call_id"], "scheduled"
    r = requests.post(stack.api + "/create-batch-call", headers=bearer(t["api_key"]), timeout=10,
                      json={"from_number": t["from_number"], "trigger_timestamp": future_ms(3600),
                            "tasks": [{"to_number": "+14460000003"}]})
    assert r.status_code == 201, r.text
    return r.json()["batch_call_id"], "scheduled"


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_every_surface_pauses_and_resumes_a_batch_and_the_tenant(stack, surface):
    t = stack.tenant(concurrency=4)
    pause, resume, pause_all, resume_all, status = SURFACES[surface]
    h = batchcall_headers(t) if surface == "batch-call" else bearer(t["api_key"])
    bid, waiting = create_on(stack, t, surface)

    def post(path):
        r = requests.post(stack.api + path.format(id=bid), headers=h, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    assert status(post(pause)) == "paused"
    assert stack.sql("SELECT paused_at IS NOT NULL FROM batches WHERE id = %s", bid)[0][0]
    assert status(post(resume)) == waiting
    j = post(pause_all)
    j = j["data"] if surface == "batch-call" else j
    assert j["paused"] is True and j["paused_at"]
    assert stack.sql("SELECT paused_at IS NOT NULL FROM tenants WHERE id = %s", t["tenant_id"])[0][0]
    if surface == "rymi":
        s = requests.get(stack.api + "/v1/calls/queue/stats", headers=h, timeout=10).json()
        assert s["paused"] is True and s["waiting"] == 1
    j = post(resume_all)
    j = j["data"] if surface == "batch-call" else j
    assert j["paused"] is False and j["paused_at"] is None
    assert not stack.sql("SELECT paused_at FROM tenants WHERE id = %s", t["tenant_id"])[0][0]


@pytest.mark.parametrize("verb", ["cancel", "pause"])
def test_a_dial_the_carrier_paced_is_not_sent_after_a_cancel_or_pause(stack, tmp_path, verb):
    """The carrier takes 2 calls a second and answers the rest 429; the
    worker (not pacing itself) keeps them to send again. A cancel or pause
    returns while such dials wait: none of them reaches the carrier after
    it, and nothing is left holding a slot."""
    from test_dispatch import Extra, ledger
    extra = Extra(stack, tmp_path)
    try:
        sim = extra.start("sim-429", "batchcall-carrier-sim", {
            "BC_SIM_CPS": "2", "BC_SIM_MS_PER_SECOND": "5", "BC_SIM_MIX": "completed=1"})
        url = f"http://127.0.0.1:{sim.port}"
        env = {"BC_REGION": "apac", "BC_CARRIER_URL": url}
        sched = extra.start("sched-429", "batchcall-scheduler", dict(env, BC_SCHEDULER_TICK_MS="50"))
        worker = extra.start("w-429", "batchcall-worker", env)
        t = stack.tenant(concurrency=10)
        numbers = [f"+1446{i:07d}" for i in range(30)]
        bid = create(stack, t, numbers, limit=10, region="APAC")
        wait_until(lambda: len(dials(stack, bid, url)) >= 2 and ledger(stack, url)["rejected_429"] >= 5,
                   30, "dials placed and others paced")
        r, returned = act(stack, t, f"/agents/calls/batches/{bid}/{verb}")
        assert r.status_code == 200, r.text
        wait_until(lambda: settled(stack, bid), 30, "nothing of the batch live any more")
        # Every paced dial held has been sent again or dropped, every job
        # released claimed or dropped.
        system_settled(stack, sched, worker, "apac")
        assert settled(stack, bid)
        placed = dials(stack, bid, url)
        late = [d for d in placed if d["at_ms"] / 1000.0 > returned + GRACE]
        print(f"{len(placed)} placed; last {max(d['at_ms'] for d in placed) / 1000.0 - returned:+.3f} s "
              f"after the {verb} returned")
        assert late == []
        assert not stack.sql("SELECT id, status FROM calls WHERE batch_id = %s"
                             " AND status IN ('claimed', 'dialing')", bid)
        counts = status_counts(stack, bid)
        if verb == "cancel":
            assert set(counts) <= {"cancelled", "completed"}, counts
            assert counts.get("completed", 0) == len(placed)
            return
        assert counts.get("completed", 0) == len(placed)
        assert counts.get("queued", 0) == len(numbers) - len(placed)
        r, _ = act(stack, t, f"/agents/calls/batches/{bid}/resume")
        assert r.status_code == 200, r.text
        all_terminal(stack, bid, 90)
        assert_one_dial_per_recipient(stack, bid, numbers, 10, sim=url)
    finally:
        extra.stop()
