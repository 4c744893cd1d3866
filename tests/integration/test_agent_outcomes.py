"""What comes back from a call, on the real stack: the agent's end-of-call
report (posted by the reference agent on `stop`, with its call's token)
shows on Rymi's summary and transcript routes, in Cartesia's Get Call, in
a call-result v3 call.report event that fits docs/schemas/call-result.v3.json
and in a signed call.report webhook; a recorded call's recording (the
simulator's signed RecordingStatusCallback) is stored once and announced as
call.recording; a bad token gets 401 and a bad body 400."""
import json
import os

import jsonschema
import pytest
import requests

from conftest import ROOT, bearer, cartesia_headers, wait_until
from test_analytics import read_topic
from test_sim_strict import signature
from test_webhooks import deliverers, receiver, register, verify  # noqa: F401 (fixtures)

with open(os.path.join(ROOT, "docs", "schemas", "call-result.v3.json")) as f:
    V3 = jsonschema.Draft202012Validator(json.load(f))

REPORT = {"transcript": [{"role": "agent", "text": "Hello Ada, this is the clinic."},
                         {"role": "user", "text": "Yes, Tuesday works.", "at": 3.5}],
          "summary": "Ada confirmed Tuesday at 10.",
          "disposition": "appointment_confirmed",
          "data": {"slot": "tuesday-10", "confirmed": True}}


def answered_batch(stack, t, number):
    """A one-person Cartesia batch whose call is answered; its batch id and
    call id once the call has ended."""
    requests.post(stack.sim + "/outcomes", params={"to": number, "outcomes": "completed"},
                  timeout=10).raise_for_status()
    body = {"name": "outcomes", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": 1, "recipients": [{"to_number": number}]}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=30)
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    rows = wait_until(lambda: stack.sql("SELECT id FROM calls WHERE batch_id = %s"
                                        "   AND ended_at IS NOT NULL", bid), 60,
                      "the call to end", interval=0.2)
    return bid, rows[0][0]


def v3_events(stack, call_id, event):
    return [e for e in (json.loads(v) for _, v in read_topic(stack))
            if e.get("schema") == "batchcall.call-result/v3" and e["call_id"] == call_id
            and e["event"] == event]


def check_v3(ev):
    errors = [e.message for e in V3.iter_errors(ev)]
    assert not errors, (errors, ev)


def start_of(stack, call_id):
    """The `start` the reference agent got for call_id (its custom parameters
    carry the call's token)."""
    def find():
        for s in stack.agent_starts():
            if s["custom_parameters"].get("bc_call_id") == call_id:
                return s
    return wait_until(find, 20, "the agent's start of " + call_id, interval=0.2)


@pytest.fixture
def reporting_agent(stack):
    stack.agent_behavior(report=REPORT)
    yield
    stack.agent_behavior(report=None)


def test_agent_report_shows_on_rymi_cartesia_kafka_and_a_webhook(stack, receiver, deliverers,
                                                                  reporting_agent):
    t = stack.tenant(concurrency=2)
    rcv = receiver()
    hook = register(stack, t, rcv.url, events=("call.report",))
    deliverers.start()
    bid, cid = answered_batch(stack, t, "+14155557101")
    wait_until(lambda: stack.sql("SELECT reported_at FROM calls WHERE id = %s", cid)[0][0], 20,
               "the agent's report to be stored", interval=0.2)
    assert start_of(stack, cid).get("report_status") in (200, None)

    # Rymi: the session's summary and transcript, per participant.
    key = bearer(t["api_key"])
    s = requests.get(f"{stack.api}/v1/calls/{bid}/summary", headers=key, timeout=10)
    assert s.status_code == 200, s.text
    s = s.json()
    assert s["call_id"] == bid and s["summary"] == REPORT["summary"]
    assert s["disposition"] == "appointment_confirmed" and s["data"] == REPORT["data"]
    (leg,) = s["participants"]
    assert leg["leg_id"] == cid and leg["summary"] == REPORT["summary"] and leg["reported_at"]
    tr = requests.get(f"{stack.api}/v1/calls/{bid}/transcript", headers=key, timeout=10).json()
    assert tr["transcript"] == REPORT["transcript"]
    assert tr["participants"][0]["transcript"] == REPORT["transcript"]
    # Another tenant's key sees nothing of it.
    other = stack.tenant(concurrency=1)
    assert requests.get(f"{stack.api}/v1/calls/{bid}/summary", headers=bearer(other["api_key"]),
                        timeout=10).status_code == 404

    # Cartesia: Get Call by the recipient's agent_call_id.
    b = requests.get(f"{stack.api}/agents/calls/batches/{bid}",
                     headers=cartesia_headers(t["api_key"]), timeout=10).json()
    assert cid in json.dumps(b)   # as a recipient's agent_call_id
    g = requests.get(f"{stack.api}/agents/calls/{cid}", headers=cartesia_headers(t["api_key"]),
                     timeout=10)
    assert g.status_code == 200, g.text
    g = g.json()
    assert g["id"] == cid and g["status"] == "completed" and g["agent_id"] == t["agent_id"]
    assert g["summary"] == REPORT["summary"] and g["transcript"] == REPORT["transcript"]
    assert g["disposition"] == "appointment_confirmed" and g["end_time"]
    assert requests.get(f"{stack.api}/agents/calls/{cid}", headers=cartesia_headers(
        other["api_key"]), timeout=10).status_code == 404

    # Kafka: a call.report v3 event that fits its schema, and the call.ended.
    evs = wait_until(lambda: v3_events(stack, cid, "call.report"), 20, "the call.report event")
    ev = evs[-1]
    check_v3(ev)
    assert ev["report"] == REPORT and ev["disposition"] == "appointment_confirmed"
    assert ev["summary"] == REPORT["summary"] and ev["batch_id"] == bid
    assert ev["agent_id"] == t["agent_id"] and ev["region"] == "us"
    (ended,) = wait_until(lambda: v3_events(stack, cid, "call.ended"), 20, "the call.ended event")
    check_v3(ended)
    assert ended["carrier_status"] == "completed" and ended["carrier_call_id"].startswith("CA")
    assert ended["started_at"] and ended["answered_at"] and ended["ended_at"]
    assert ended["lease_released"] is True and ended["final"] is True

    # A webhook: call.report, signed, once.
    got = wait_until(lambda: [r for r in rcv.got()
                              if r["headers"].get("X-Batchcall-Event-Type") == "call.report"],
                     30, "the call.report webhook", interval=0.2)
    verify(hook["secret"], got[0]["headers"], got[0]["body"])
    body = json.loads(got[0]["body"])
    assert body["type"] == "call.report" and body["data"]["call_id"] == cid
    assert body["data"]["disposition"] == "appointment_confirmed"
    assert body["data"]["transcript"] == REPORT["transcript"]
    # Subscribed to call.report alone: no call.completed came.
    assert {r["headers"]["X-Batchcall-Event-Type"] for r in rcv.got()} == {"call.report"}


def test_report_route_checks_the_token_and_the_body(stack):
    t = stack.tenant(concurrency=2)
    bid, cid = answered_batch(stack, t, "+14155557102")
    _, other_cid = answered_batch(stack, t, "+14155557103")
    token = start_of(stack, cid)["custom_parameters"]["bc_token"]
    other_token = start_of(stack, other_cid)["custom_parameters"]["bc_token"]
    url = f"{stack.api}/v1/calls/{cid}/report"
    ok = {"summary": "short", "disposition": "no_interest"}

    for tok in (None, "nope", other_token, token[:-1] + ("0" if token[-1] != "0" else "1"),
                t["api_key"]):
        h = {"Authorization": "Bearer " + tok} if tok else {}
        r = requests.post(url, json=ok, headers=h, timeout=10)
        assert r.status_code == 401, (tok, r.text)
        assert r.json()["code"] == "invalid_token"
    assert stack.sql("SELECT report FROM calls WHERE id = %s", cid)[0][0] is None

    auth = {"Authorization": "Bearer " + token}
    for bad in ({}, {"summary": 3}, {"disposition": "Not OK"}, {"disposition": "x" * 65},
                {"disposition": ""}, {"data": [1]}, {"transcript": [{"role": "bot", "text": "x"}]},
                {"transcript": [{"role": "user"}]}, {"transcript": {"role": "user"}},
                {"transcript": [{"role": "user", "text": "x", "mood": "ok"}]},
                {"summary": "x", "extra": 1}, [1, 2]):
        r = requests.post(url, json=bad, headers=auth, timeout=10)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == "invalid_request" and r.json()["error"]
    r = requests.post(url, data=b"{not json", headers=auth, timeout=10)
    assert r.status_code == 400
    r = requests.post(url, json={"summary": "x" * (256 * 1024)}, headers=auth, timeout=10)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert stack.sql("SELECT report FROM calls WHERE id = %s", cid)[0][0] is None

    # Stored and answered; the same again changes nothing; another replaces it.
    r = requests.post(url, json=ok, headers=auth, timeout=10)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["call_id"] == cid and first["summary"] == "short"
    assert first["disposition"] == "no_interest" and first["transcript"] is None
    again = requests.post(url, json=ok, headers=auth, timeout=10).json()
    assert again == first
    new = requests.post(url, json={"transcript": "agent: hi\nuser: bye", "disposition": "hung_up"},
                        headers=auth, timeout=10).json()
    assert new["disposition"] == "hung_up" and new["summary"] is None
    assert new["transcript"] == "agent: hi\nuser: bye"
    evs = wait_until(lambda: (lambda e: e if len(e) >= 2 else None)(
        v3_events(stack, cid, "call.report")), 20, "two call.report events")
    assert len(evs) == 2, evs
    for ev in evs:
        check_v3(ev)
    assert [e["disposition"] for e in evs] == ["no_interest", "hung_up"]
    s = requests.get(f"{stack.api}/v1/calls/{bid}/summary", headers=bearer(t["api_key"]),
                     timeout=10).json()
    assert s["disposition"] == "hung_up" and s["summary"] is None
    # The context route takes the same token, and no other route does.
    assert requests.get(f"{stack.api}/v1/calls/{cid}/context", headers=auth,
                        timeout=10).status_code == 200
    assert requests.get(f"{stack.api}/v1/calls/{bid}/summary", headers=auth,
                        timeout=10).status_code == 401


def test_recorded_call_gets_its_recording_stored_once_and_announced(stack):
    t = stack.tenant(concurrency=2)
    stack.sql("UPDATE agents SET record = true WHERE id = %s", t["agent_id"])
    before = requests.get(stack.sim + "/ledger", timeout=10).json()["agent"]["recordings"]
    bid, cid = answered_batch(stack, t, "+14155557104")
    row = wait_until(lambda: stack.sql(
        "SELECT recording_sid, recording_url, recording_duration_s, duration_s FROM calls"
        " WHERE id = %s AND recording_url IS NOT NULL", cid), 20, "the recording", interval=0.2)
    sid, url, dur, call_dur = row[0]
    assert sid.startswith("RE") and url.startswith("https://api.twilio.com/2010-04-01/Accounts/")
    assert url.endswith("/Recordings/" + sid) and dur == call_dur
    assert requests.get(stack.sim + "/ledger", timeout=10).json()["agent"]["recordings"] > before

    (ev,) = wait_until(lambda: v3_events(stack, cid, "call.recording"), 20,
                       "the call.recording event")
    check_v3(ev)
    assert ev["recording_url"] == url and ev["recording_duration_s"] == dur
    assert ev["report"] is None and ev["lease_released"] is None
    rec = requests.get(f"{stack.api}/v1/calls/{bid}/recording", headers=bearer(t["api_key"]),
                       timeout=10).json()
    assert rec["recording_url"] == url and rec["recordings"][0]["leg_id"] == cid
    g = requests.get(f"{stack.api}/agents/calls/{cid}", headers=cartesia_headers(t["api_key"]),
                     timeout=10).json()
    assert g["recording_url"] == url

    # The carrier's retry of the same callback: 200, nothing new.
    cb = (f"{stack.api}/carrier/twilio/recording?region=us&tenant_id={t['tenant_id']}"
          f"&batch_id={bid}&call_id={cid}")
    form = {"AccountSid": "ACsimulator", "CallSid": "CAx", "RecordingSid": sid,
            "RecordingUrl": url, "RecordingStatus": "completed", "RecordingDuration": str(dur)}
    r = requests.post(cb, data=form, headers={"X-Twilio-Signature": signature(cb, form)},
                      timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    # Forged: refused. A call we do not have: 200, nothing stored.
    r = requests.post(cb, data=dict(form, RecordingUrl="https://evil.example/x"),
                      headers={"X-Twilio-Signature": signature(cb, form)}, timeout=10)
    assert r.status_code == 403
    ghost = cb.replace(cid, "ac_0000000000000000000000")
    r = requests.post(ghost, data=form, headers={"X-Twilio-Signature": signature(ghost, form)},
                      timeout=10)
    assert r.status_code == 200
    bad = dict(form, RecordingUrl="ftp://x")
    r = requests.post(cb, data=bad, headers={"X-Twilio-Signature": signature(cb, bad)}, timeout=10)
    assert r.status_code == 400
    assert stack.sql("SELECT recording_url FROM calls WHERE id = %s", cid)[0][0] == url
    assert len(v3_events(stack, cid, "call.recording")) == 1


def test_a_call_without_a_report_or_recording_reads_as_empty(stack):
    t = stack.tenant(concurrency=1)
    stack.sql("UPDATE agents SET record = false WHERE id = %s", t["agent_id"])
    bid, cid = answered_batch(stack, t, "+14155557105")
    key = bearer(t["api_key"])
    assert requests.get(f"{stack.api}/v1/calls/{bid}/summary", headers=key, timeout=10).json() == {
        "call_id": bid, "summary": None, "disposition": None, "data": None, "participants": []}
    assert requests.get(f"{stack.api}/v1/calls/{bid}/recording", headers=key,
                        timeout=10).json()["recordings"] == []
    for what in ("summary", "transcript", "recording"):
        r = requests.get(f"{stack.api}/v1/calls/acb_nope/{what}", headers=key, timeout=10)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert requests.get(f"{stack.api}/v1/calls/{bid}/{what}",
                            timeout=10).status_code == 401
    r = requests.get(f"{stack.api}/agents/calls/{cid}", headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code in (400, 401)
