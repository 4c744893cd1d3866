"""Retry policies on the real stack: each outcome is retried exactly as its
policy promises (retry_on, max_retries, per-recipient overrides), waits
follow the intervals or the back-off, a voicemail (the carrier's answering
machine detection) is an outcome of its own, and a manual retry still dials
the failed ones again. Outcomes are fixed per number: the simulator's magic
suffixes (...0486 busy, ...0404 no answer, ...0500 failed, ...0555
voicemail) or a script of the next outcomes of one number (POST /outcomes)."""
import contextlib
import json
import os
import time
from collections import Counter
from datetime import datetime

import jsonschema
import pytest
import requests

from conftest import (BUILD, ROOT, Proc, batchcall_headers, bearer, cartesia_headers,
                      consume_from_start, free_port, wait_until)

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def t(stack):
    return stack.tenant(concurrency=20)


def cartesia(stack, t, recipients, **fields):
    body = {"name": "retries", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": 5, "recipients": recipients, **fields}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def script(stack, number, *outcomes):
    """The next calls to number end so, one outcome per call."""
    r = requests.post(stack.sim + "/outcomes", params={"to": number, "outcomes": ",".join(outcomes)},
                      timeout=10)
    assert r.status_code == 200, r.text


def finished(stack, bid, timeout=60):
    def done():
        rows = stack.sql("SELECT status FROM recipients WHERE batch_id = %s", bid)
        return rows and all(s in TERMINAL for (s,) in rows)
    wait_until(done, timeout, f"every recipient of {bid} to finish", interval=0.2)


def recipients(stack, bid):
    """{to_number: {"attempts", "status", "end_reason", "calls": [...]}}, calls in order."""
    out = {}
    for to, attempts, status, reason in stack.sql(
            "SELECT to_number, attempts, status, end_reason FROM recipients WHERE batch_id = %s", bid):
        out[to] = {"attempts": attempts, "status": status, "end_reason": reason, "calls": []}
    for to, attempt, status, reason, by, created, ended, cid in stack.sql(
            "SELECT to_number, attempt, status, end_reason, answered_by,"
            "       extract(epoch FROM created_at)::float8, extract(epoch FROM ended_at)::float8, id"
            "  FROM calls WHERE batch_id = %s ORDER BY attempt", bid):
        out[to]["calls"].append({"attempt": attempt, "status": status, "end_reason": reason,
                                 "answered_by": by, "created": created, "ended": ended, "id": cid})
    return out


def dials(stack, bid):
    """What really reached the carrier: dials per number."""
    d = requests.get(stack.sim + "/ledger/dials", params={"batch_id": bid}, timeout=30).json()
    return Counter(x["to"] for x in d["dials"])


def events(stack, call_ids, timeout=30, every=False):
    """The call-result events of these calls, read from the real topic:
    {call_id: event}, or with every {call_id: [events]} after a quiet second."""
    c = consume_from_start(stack, "call-results", f"test-retry-{time.time()}")
    got, deadline, quiet = {}, time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            if not set(call_ids) - set(got):
                if not every:
                    break
                quiet = quiet or time.monotonic() + 1
                if time.monotonic() > quiet:
                    break
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            ev = json.loads(m.value())
            if ev.get("call_id") in call_ids:
                got.setdefault(ev["call_id"], []).append(ev)
    finally:
        c.close()
    assert set(call_ids) <= set(got), "call-result events missing"
    return got if every else {k: v[-1] for k, v in got.items()}


def epoch(rfc3339_ms):
    return datetime.strptime(rfc3339_ms, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_each_outcome_is_retried_only_when_listed_and_exactly_max_retries_times(stack, t):
    ok = "+14470000001"
    script(stack, ok, "completed")
    numbers = {"busy": "+14470000486", "no_answer": "+14470000404", "failed": "+14470000500",
               "voicemail": "+14470000555", "completed": ok}
    b = cartesia(stack, t, [{"to_number": n} for n in numbers.values()],
                 max_retries=2, retry_on=["busy", "voicemail"], retry_intervals_s=[1])
    assert b["max_retries"] == 2 and b["retry_on"] == ["busy", "voicemail"]
    assert b["retry_intervals_s"] == [1]
    finished(stack, b["id"])
    got, d = recipients(stack, b["id"]), dials(stack, b["id"])
    want = {"busy": (3, "failed", "dial_busy"), "no_answer": (1, "failed", "dial_no_answer"),
            "failed": (1, "failed", "dial_failed"), "voicemail": (3, "failed", "voicemail"),
            "completed": (1, "completed", "agent_hangup")}
    for outcome, (attempts, status, reason) in want.items():
        r = got[numbers[outcome]]
        assert (r["attempts"], r["status"], r["end_reason"]) == (attempts, status, reason), (outcome, r)
        assert len(r["calls"]) == attempts and d[numbers[outcome]] == attempts, (outcome, d)
    # Every voicemail was told by the carrier's answering-machine detection.
    vm = got[numbers["voicemail"]]["calls"]
    assert {(c["status"], c["answered_by"]) for c in vm} == {("completed", "machine_end_beep")}
    assert got[ok]["calls"][0]["answered_by"] == "human"
    # The batch's detail shows it, in the Cartesia surface's words.
    detail = requests.get(f"{stack.api}/agents/calls/batches/{b['id']}",
                          headers=cartesia_headers(t["api_key"]), timeout=10).json()
    by_number = {r["to_number"]: r for r in detail["recipients"]}
    assert by_number[numbers["voicemail"]]["end_reason"] == "voicemail"
    assert by_number[numbers["voicemail"]]["attempts"] == 3


def test_an_unlisted_voicemail_is_a_completed_call_with_its_reason_shown(stack, t):
    vm = "+14470010555"
    r = requests.post(stack.api + "/v1/calls/batch", headers=bearer(t["api_key"]), timeout=30,
                      json={"agent_id": t["agent_id"], "recipients": [{"to": vm}],
                            "max_retries": 3})   # retry_on left at its default
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    assert r.json()["retry_on"] == ["busy", "no_answer", "failed"]
    finished(stack, sid)
    rec = recipients(stack, sid)[vm]
    assert (rec["attempts"], rec["status"], rec["end_reason"]) == (1, "completed", "voicemail")
    # Visible in the Rymi call listing ...
    call = requests.get(f"{stack.api}/v1/calls/{sid}", headers=bearer(t["api_key"]), timeout=10).json()
    assert call["participants"][0]["end_reason"] == "voicemail"
    # ... and in the call-result event (v2), with who answered.
    ev = events(stack, [rec["calls"][0]["id"]])[rec["calls"][0]["id"]]
    assert ev["schema"] == "batchcall.call-result/v2"
    assert (ev["carrier_status"], ev["end_reason"], ev["answered_by"]) == \
        ("completed", "voicemail", "machine_end_beep")
    assert ev["final"] is True and ev["retry_at"] is None and ev["recipient_status"] == "completed"


def test_a_recipients_own_policy_wins_over_its_batches(stack, t):
    n = {k: f"+144700200{i}0" for i, k in enumerate("abcd")}
    for k in "abd":
        script(stack, n[k], "busy", "busy", "busy", "busy")
    script(stack, n["c"], "no-answer", "no-answer", "no-answer")
    tasks = [{"to_number": n["a"]},                                          # the batch's: no retry
             {"to_number": n["b"], "max_retries": 2},                        # 2 retries of busy
             {"to_number": n["c"], "max_retries": 1, "retry_on": ["no_answer"]},
             {"to_number": n["d"], "max_retries": 2, "retry_on": ["no_answer"]}]   # busy: not its
    r = requests.post(stack.api + "/batch-call", headers=batchcall_headers(t), timeout=30,
                      json={"from_number": "+14157774444", "agent_id": t["agent_id"],
                            "send_now": True, "tasks": tasks, "max_retries": 0,
                            "retry_on": ["busy"], "retry_intervals_s": [1]})
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert (data["max_retries"], data["retry_on"], data["retry_intervals_s"]) == (0, ["busy"], [1])
    bid = data["batch_call_id"]
    finished(stack, bid)
    got, d = recipients(stack, bid), dials(stack, bid)
    assert {k: got[n[k]]["attempts"] for k in "abcd"} == {"a": 1, "b": 3, "c": 2, "d": 1}
    assert {k: d[n[k]] for k in "abcd"} == {"a": 1, "b": 3, "c": 2, "d": 1}
    assert all(got[n[k]]["status"] == "failed" for k in "abcd")
    # The task listing shows each task's own overrides (max_retries: its own, else the batch's).
    listed = requests.get(f"{stack.api}/batch-call/{bid}/tasks", headers=batchcall_headers(t),
                          timeout=10).json()["data"]["tasks"]
    by = {x["to_number"]: x for x in listed}
    assert by[n["c"]]["retry_on"] == ["no_answer"] and by[n["c"]]["max_retries"] == 1
    assert "retry_on" not in by[n["a"]] and by[n["a"]]["max_retries"] == 0


def test_waits_follow_the_intervals_and_the_back_off(stack, t):
    iv, bo = "+14470030486", "+14470130486"   # both always busy
    b = cartesia(stack, t, [
        {"to_number": iv, "max_retries": 3, "retry_intervals_s": [1, 2]},
        {"to_number": bo, "max_retries": 3, "retry_backoff": {"base_s": 1, "factor": 2, "max_s": 3}}])
    finished(stack, b["id"], timeout=60)
    got = recipients(stack, b["id"])
    want = {iv: [1, 2, 2], bo: [1, 2, 3]}   # the last interval repeats; the back-off is capped
    for number, waits in want.items():
        calls = got[number]["calls"]
        assert len(calls) == 4 and dials(stack, b["id"])[number] == 4
        evs = events(stack, [c["id"] for c in calls])
        for k, wait in enumerate(waits):
            ev = evs[calls[k]["id"]]
            assert ev["recipient_status"] == "queued" and ev["final"] is False
            # Due exactly the policy's wait after the end (retry_at has ms).
            due = epoch(ev["retry_at"])
            assert abs(due - (calls[k]["ended"] + wait)) < 0.002, (number, k, due, calls[k])
            # Never dialed before it was due, and not left waiting long after.
            assert due <= calls[k + 1]["created"] < due + 3, (number, k, calls[k + 1])
        last = evs[calls[3]["id"]]
        assert last["final"] is True and last["retry_at"] is None


def test_without_a_policy_the_workers_back_off_is_kept(stack, t):
    b = cartesia(stack, t, [{"to_number": "+14470040486"}], max_retries=2)
    assert b["retry_on"] == ["busy", "no_answer", "failed"] and "retry_intervals_s" not in b
    finished(stack, b["id"])
    calls = recipients(stack, b["id"])["+14470040486"]["calls"]
    assert len(calls) == 3
    evs = events(stack, [c["id"] for c in calls])
    base = 0.2   # BC_RETRY_BASE_MS of the session's worker: base * 2^(k-1), jittered 0.5-1.5x
    for k in (0, 1):
        wait = epoch(evs[calls[k]["id"]]["retry_at"]) - calls[k]["ended"]
        assert 0.5 * base * 2 ** k - 0.002 <= wait <= 1.5 * base * 2 ** k + 0.002, (k, wait)


def test_a_manual_retry_dials_the_failed_again_after_the_policy_ran_out(stack, t):
    busy, vm, ok = "+14470050001", "+14470050002", "+14470050003"
    script(stack, busy, "busy", "busy", "completed")
    script(stack, vm, "voicemail", "voicemail", "completed")
    script(stack, ok, "completed")
    b = cartesia(stack, t, [{"to_number": n} for n in (busy, vm, ok)], max_retries=1,
                 retry_on=["busy", "voicemail"], retry_intervals_s=[1])
    finished(stack, b["id"])
    got = recipients(stack, b["id"])
    assert [(got[n]["attempts"], got[n]["status"]) for n in (busy, vm, ok)] == \
        [(2, "failed"), (2, "failed"), (1, "completed")]
    r = requests.post(f"{stack.api}/agents/calls/batches/{b['id']}/retry",
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["retry_count"] == 1
    wait_until(lambda: stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s"
                                 "   AND status = 'completed'", b["id"])[0][0] == 3,
               60, "the retried recipients to complete", interval=0.2)
    got, d = recipients(stack, b["id"]), dials(stack, b["id"])
    assert [got[n]["attempts"] for n in (busy, vm, ok)] == [3, 3, 1]
    assert [d[n] for n in (busy, vm, ok)] == [3, 3, 1]


BAD = [
    ("cartesia", {"retry_on": ["busy", "sometimes"]}, "retry_on[1] must be one of"),
    ("cartesia", {"recipients": [{"to_number": "+14470060001", "retry_intervals_s": [0]}]},
     "recipients[0].retry_intervals_s[0] must be an integer between 1 and 86400"),
    ("cartesia", {"max_retries": 11}, "max_retries must be an integer between 0 and 10"),
    ("rymi", {"retry_backoff": {"base_s": 0}}, "retry_backoff.base_s must be"),
    ("rymi", {"recipients": [{"to": "+14470060001", "retry_intervals_s": [60],
                              "retry_backoff": {"base_s": 60}}]},
     "recipients[0].retry_intervals_s and retry_backoff cannot both be given"),
    ("batch-call", {"retry_backoff": {"base_s": 10, "factor": 20}},
     "retry_backoff.factor must be a number between 1 and 10"),
    ("batch-call", {"tasks": [{"to_number": "+14470060001", "retry_on": "busy"}]},
     "tasks[0].retry_on must be an array"),
]


@pytest.mark.parametrize("surface,fields,why", BAD)
def test_a_bad_policy_is_a_400_in_each_surfaces_error_shape(stack, t, surface, fields, why):
    before = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]
    if surface == "cartesia":
        body = {"name": "bad", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                "recipients": [{"to_number": "+14470060001"}], **fields}
        r = requests.post(stack.api + "/agents/calls/batches", json=body,
                          headers=cartesia_headers(t["api_key"]), timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
        msg = r.json()["error"]
    elif surface == "rymi":
        body = {"agent_id": t["agent_id"], "to": ["+14470060001"], **fields}
        if "recipients" in fields:
            del body["to"]
        r = requests.post(stack.api + "/v1/calls/batch", json=body, headers=bearer(t["api_key"]),
                          timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
        msg = r.json()["error"]
    else:
        body = {"from_number": "+14157774444", "agent_id": t["agent_id"], "send_now": True,
                "tasks": [{"to_number": "+14470060001"}], **fields}
        r = requests.post(stack.api + "/batch-call", json=body, headers=batchcall_headers(t),
                          timeout=10)
        assert r.status_code == 400, r.text
        e = r.json()
        assert e["status"] == "error" and e["data"] is None
        assert e["error"]["code"] == "invalid_request"
        msg = e["message"]
    assert why in msg, msg
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s",
                     t["tenant_id"])[0][0] == before


def test_sql_reads_policies_as_the_c_rules_say(stack):
    """The waits sql/0011 computes are bc_retry_delay_s()'s (tests/unit), and
    a recipient's policy overrides its batch's field by field."""
    iv = '{"retry_intervals_s": [60, 300, 900]}'
    bo = '{"retry_backoff": {"base_s": 10, "factor": 3.0, "max_s": 200}}'
    got = stack.sql("SELECT retry_delay_s(%s::jsonb, k), retry_delay_s(%s::jsonb, k)"
                    "  FROM generate_series(1, 5) k ORDER BY k", iv, bo)
    assert got == [(60, 10), (300, 30), (900, 90), (900, 200), (900, 200)]
    assert stack.sql("SELECT retry_delay_s('{\"retry_on\": [\"busy\"]}', 1),"
                     "       retry_delay_s(NULL, 1)") == [(None, None)]
    merged = stack.sql(
        "SELECT retry_policy_of(%s::jsonb, '{\"retry_on\": [\"busy\"]}'),"
        "       retry_policy_of(%s::jsonb, %s::jsonb), retry_policy_of(NULL, NULL),"
        "       retry_listed(NULL, 'voicemail'), retry_listed(NULL, 'no_answer'),"
        "       retry_listed('{\"retry_on\": []}', 'busy')", iv, bo, iv)[0]
    assert merged[0] == {"retry_on": ["busy"], "retry_intervals_s": [60, 300, 900]}
    assert merged[1] == {"retry_intervals_s": [60, 300, 900]}   # its schedule replaces the batch's
    assert merged[2] == {}
    assert merged[3:] == (False, True, False)


VM, BUSY = "+14470070555", "+14470070486"


@contextlib.contextmanager
def eu_processes(stack, tmp_path, env, tag):
    """A scheduler and a worker of their own, in region EU, with env."""
    procs = []
    try:
        for name, binary, port_env in ((f"sched-eu{tag}", "batchcall-scheduler", "BC_SCHEDULER_PORT"),
                                       (f"worker-eu{tag}", "batchcall-worker", "BC_WORKER_PORT")):
            port = free_port()
            p = Proc(name, [os.path.join(BUILD, binary)], dict(env, **{port_env: str(port)},
                                                                  BC_SCHEDULER_TICK_MS="50"),
                     str(tmp_path))
            p.port = port
            procs.append(p)
            stack.wait_ready(f"http://127.0.0.1:{port}")
        yield procs
    finally:
        for p in procs:
            p.stop()


def eu_voicemail_and_busy(stack, t):
    """An EU batch of a voicemail and a busy number retried once, finished:
    (batch, {call_id: (to_number, call)})."""
    b = cartesia(stack, t, [{"to_number": VM}, {"to_number": BUSY}], region="EU",
                 max_retries=1, retry_intervals_s=[1])
    finished(stack, b["id"])
    calls = {c["id"]: (to, c) for to, r in recipients(stack, b["id"]).items() for c in r["calls"]}
    assert len(calls) == 3   # the voicemail once, the busy number twice
    return b, calls


def assert_one_end_counted_per_call(stack, worker, bid, t0, n):
    """The worker's ends counter grew by one per call: n of bid's, and one
    for each call of other EU batches that ended since t0 (other tests'
    batches left waiting for a region, or with calls live, are dialed and
    ended by this worker too)."""
    text = requests.get(f"http://127.0.0.1:{worker.port}/metrics", timeout=5).text
    ended = sum(float(x.split()[-1]) for x in text.splitlines()
                if x.startswith("worker_calls_finished_total{"))
    others = stack.sql("SELECT count(*) FROM calls c JOIN batches b ON b.id = c.batch_id"
                       " WHERE b.region = 'eu' AND b.id <> %s AND c.ended_at >= %s", bid, t0)[0][0]
    assert ended == n + others, (ended, others)


def test_v1_events_go_out_beside_v2_when_asked(stack, t, tmp_path):
    """BC_CALL_RESULT_V1=1 (a worker of its own, in region EU): each end is
    one v2, one v1 and one v3 (call.ended) event, each valid in its schema,
    a voicemail in v1 words; the worker still counts one end per call."""
    t0 = stack.sql("SELECT now()")[0][0]
    with eu_processes(stack, tmp_path, dict(stack.env, BC_REGION="eu", BC_CALL_RESULT_V1="1"),
                      "") as procs:
        b, calls = eu_voicemail_and_busy(stack, t)
        evs = events(stack, list(calls), every=True)
        schemas = {}
        for n in (1, 2, 3):
            with open(os.path.join(ROOT, "docs", "schemas", f"call-result.v{n}.json")) as f:
                schemas[f"batchcall.call-result/v{n}"] = jsonschema.Draft202012Validator(json.load(f))
        for cid, (to, c) in calls.items():
            by = {e["schema"]: e for e in evs[cid]}
            assert len(evs[cid]) == 3 and set(by) == set(schemas), evs[cid]
            for version, e in by.items():
                assert not list(schemas[version].iter_errors(e)), e
            v1, v2 = by["batchcall.call-result/v1"], by["batchcall.call-result/v2"]
            v3 = by["batchcall.call-result/v3"]
            assert v1["end_reason"] == ("agent_hangup" if to == VM else v2["end_reason"])
            assert v2["end_reason"] == c["end_reason"] == v3["end_reason"]
            assert v3["event"] == "call.ended"
        assert_one_end_counted_per_call(stack, procs[1], b["id"], t0, 3)


def test_with_v2_off_each_end_is_one_v3_event_and_one_webhook(stack, t, tmp_path):
    """BC_CALL_RESULT_V2=0 (a worker and a scheduler of their own, in region
    EU, the scheduler also sending webhooks): each end is one event, its v3
    call.ended, valid in its schema; the worker still counts one end per
    call; the webhook sender makes one call.completed or call.failed per
    call from it, with the fields a v2 event gives, and one
    batch.completed."""
    env = dict(stack.env, BC_REGION="eu", BC_CALL_RESULT_V2="0", BC_WEBHOOKS="1",
               BC_WEBHOOK_POLL_MS="50")
    t0 = stack.sql("SELECT now()")[0][0]
    w = requests.post(stack.api + "/v1/webhooks", headers=bearer(t["api_key"]), timeout=10,
                      json={"url": f"http://127.0.0.1:{free_port()}/hooks",
                            "events": ["call.completed", "call.failed", "batch.completed"]})
    assert w.status_code == 201, w.text
    wid = w.json()["id"]
    with eu_processes(stack, tmp_path, env, "-v3") as procs:
        b, calls = eu_voicemail_and_busy(stack, t)
        evs = events(stack, list(calls), every=True)
        with open(os.path.join(ROOT, "docs", "schemas", "call-result.v3.json")) as f:
            v3 = jsonschema.Draft202012Validator(json.load(f))
        for cid, (to, c) in calls.items():
            assert [e["schema"] for e in evs[cid]] == ["batchcall.call-result/v3"], evs[cid]
            e = evs[cid][0]
            assert not list(v3.iter_errors(e)), e
            assert e["event"] == "call.ended" and e["end_reason"] == c["end_reason"]
        assert_one_end_counted_per_call(stack, procs[1], b["id"], t0, 3)

        def hooks():
            return stack.sql("SELECT event_id, event_type, payload::jsonb FROM webhook_deliveries"
                             " WHERE webhook_id = %s AND payload::jsonb->'data'->>'batch_id' = %s"
                             " ORDER BY id", wid, b["id"])
        wait_until(lambda: len(hooks()) >= 4, 30, "three call webhooks and one batch webhook")
        got = hooks()
        assert sorted(r[1] for r in got) == ["batch.completed", "call.completed",
                                             "call.failed", "call.failed"], got
        for event_id, kind, body in got:
            data = body["data"]
            if kind == "batch.completed":
                assert data["batch_id"] == b["id"] and data["total"] == 2
                continue
            to, c = calls[data["call_id"]]
            assert event_id == "evt_" + data["call_id"]
            assert set(data) == {"call_id", "batch_id", "recipient_id", "attempt", "status",
                                 "end_reason", "duration_s", "to_number", "from_number",
                                 "recipient_status", "final", "ended_at"}
            assert data["status"] == c["status"] and data["end_reason"] == c["end_reason"]
            assert data["to_number"] == to and data["attempt"] == c["attempt"]
            assert data["final"] is (c["attempt"] == 2 or to == VM)
            assert datetime.fromisoformat(data["ended_at"].replace("Z", "+00:00")).timestamp() \
                == int(c["ended"])
