"""Answering machines and ending live calls, on the real stack with a
region of its own (apac: its simulator on a slower clock, so a person talks
for a second or two, its scheduler and worker): detection runs in the
background (AsyncAmd), each batch's voicemail policy is applied once, a
message is played only to a machine, and ending a call hangs it up at the
carrier, its slot freed only by the carrier's final callback."""
import pytest
import requests

from conftest import bearer, cartesia_headers, wait_until
from test_dispatch import Extra, all_terminal, create, dials
import twilio_spec


class Region:
    """A region of its own: talk 20-30 simulated seconds at 60 ms each."""

    def __init__(self, stack, extra):
        self.sim_proc = extra.start("sim-vm", "batchcall-carrier-sim", {
            "BC_SIM_MS_PER_SECOND": "60", "BC_SIM_RING_SECONDS": "1", "BC_SIM_TALK_SECONDS": "20-30",
            "BC_SIM_MIX": "completed=1", "BC_SIM_AMD_SECONDS": "2"})
        self.sim = f"http://127.0.0.1:{self.sim_proc.port}"
        env = {"BC_REGION": "apac", "BC_CARRIER_URL": self.sim}
        self.sched = extra.start("sched-vm", "batchcall-scheduler", dict(env, BC_SCHEDULER_TICK_MS="50"))
        self.worker = extra.start("w-vm", "batchcall-worker", dict(env, BC_RETRY_BASE_MS="200"))

    def script(self, number, outcome):
        requests.post(self.sim + "/outcomes", params={"to": number, "outcomes": outcome},
                      timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def region(stack, tmp_path_factory):
    e = Extra(stack, tmp_path_factory.mktemp("vm"))
    yield Region(stack, e)
    e.stop()


def run(stack, region, t, people, voicemail):
    """people: {number: "completed" | "voicemail"}; returns the batch id."""
    for n, o in people.items():
        region.script(n, o)
    extra = {"region": "APAC"}
    if voicemail is not None:
        extra["voicemail"] = voicemail
    bid = create(stack, t, list(people), limit=len(people), **extra)
    all_terminal(stack, bid, 60)
    return bid


def calls_of(stack, bid):
    rows = stack.sql("SELECT to_number, answered_by, voicemail_action, end_reason, amd_at IS NOT NULL"
                     "  FROM calls WHERE batch_id = %s", bid)
    return {r[0]: r[1:] for r in rows}


def test_every_create_asks_for_detection_in_the_background(stack, region):
    t = stack.tenant(concurrency=4)
    bid = run(stack, region, t, {"+16135550001": "completed"}, None)
    (d,) = dials(stack, bid, sim=region.sim)
    p = d["params"]
    assert twilio_spec.check_create(p) == [], p
    assert p["MachineDetection"] == "DetectMessageEnd" and p["AsyncAmd"] == "true"
    assert p["AsyncAmdStatusCallback"].startswith(stack.api + "/carrier/twilio/amd?region=apac&")
    # A person answered: the verdict is recorded, no policy ran.
    assert calls_of(stack, bid)["+16135550001"] == ("human", None, "agent_hangup", True)


def test_hangup_policy_ends_a_machine_call_without_a_message(stack, region):
    t = stack.tenant(concurrency=4)
    bid = run(stack, region, t, {"+16135550011": "voicemail", "+16135550012": "completed"},
              {"action": "hangup"})
    c = calls_of(stack, bid)
    assert c["+16135550011"] == ("machine_end_beep", "hangup", "voicemail", True)
    assert c["+16135550012"][:2] == ("human", None)
    ds = {d["to"]: d for d in dials(stack, bid, sim=region.sim)}
    assert ds["+16135550011"]["agent"]["played"] == [] and ds["+16135550012"]["agent"]["played"] == []
    # Hung up at the verdict, long before its 20 s (1.2 s real) of talk.
    dur = stack.sql("SELECT duration_s FROM calls WHERE batch_id = %s AND to_number = %s",
                    bid, "+16135550011")[0][0]
    assert dur is not None and dur < 20, dur


def test_message_policy_plays_once_to_a_machine_never_to_a_person(stack, region):
    t = stack.tenant(concurrency=4)
    text = "Hi, this is Acme <returning> your call & more."
    bid = run(stack, region, t, {"+16135550021": "voicemail", "+16135550022": "completed"},
              {"action": "message", "text": text})
    c = calls_of(stack, bid)
    assert c["+16135550021"] == ("machine_end_beep", "message", "voicemail", True)
    assert c["+16135550022"][:2] == ("human", None)
    ds = {d["to"]: d for d in dials(stack, bid, sim=region.sim)}
    assert ds["+16135550021"]["agent"]["played"] == ["say:" + text]
    assert ds["+16135550022"]["agent"]["played"] == []
    # The update the worker sent is a valid Twilio call update.
    refused = requests.get(region.sim + "/ledger/refused", timeout=10).json()["refused"]
    assert refused == [], refused


def test_audio_message_and_agent_policy(stack, region):
    t = stack.tenant(concurrency=4)
    bid = run(stack, region, t, {"+16135550031": "voicemail"},
              {"action": "message", "audio_url": "https://cdn.example.com/vm.mp3"})
    (d,) = dials(stack, bid, sim=region.sim)
    assert d["agent"]["played"] == ["play:https://cdn.example.com/vm.mp3"]
    bid = run(stack, region, t, {"+16135550032": "voicemail"}, {"action": "agent"})
    assert calls_of(stack, bid)["+16135550032"] == ("machine_end_beep", "agent", "voicemail", True)
    (d,) = dials(stack, bid, sim=region.sim)
    # The agent kept the call: nothing played, the stream ran its course.
    assert d["agent"]["played"] == [] and d["agent"]["kind"] == "stream"


def test_bad_voicemail_policies_are_refused_on_every_surface(stack):
    t = stack.tenant(concurrency=4)
    bad = [{"action": "shout"}, {"action": "message"}, {"action": "message", "text": "a",
                                                         "audio_url": "https://x.example/a.mp3"},
           {"action": "message", "audio_url": "http://x.example/a.mp3"},
           {"action": "hangup", "text": "x"}, "hangup", {"action": "agent", "extra": 1}]
    for vm in bad:
        r = requests.post(stack.api + "/agents/calls/batches", headers=cartesia_headers(t["api_key"]),
                          json={"name": "x", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                                "voicemail": vm, "recipients": [{"to_number": "+16135550099"}]}, timeout=10)
        assert r.status_code == 400 and "voicemail" in r.json()["error"], (vm, r.text)
        r = requests.post(stack.api + "/v1/calls/batch", headers=bearer(t["api_key"]),
                          json={"agent_id": t["agent_id"], "to": ["+16135550099"], "voicemail": vm},
                          timeout=10)
        assert r.status_code == 400, (vm, r.text)
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"]) == [(0,)]


def test_ending_a_live_call_hangs_up_at_the_carrier_and_frees_the_slot_after(stack, region):
    t = stack.tenant(concurrency=4)
    numbers = ["+16135550041", "+16135550042"]
    for n in numbers:
        region.script(n, "completed")
    # Rymi's batches take their agent's region: this one dials in apac.
    stack.sql("UPDATE agents SET region = 'apac' WHERE id = %s", t["agent_id"])
    r = requests.post(stack.api + "/v1/calls/batch", headers=bearer(t["api_key"]),
                      json={"agent_id": t["agent_id"], "to": numbers}, timeout=10)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]

    def live():
        rows = stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s AND status = 'in-progress'", sid)
        return rows[0][0] == 2
    wait_until(live, 20, "both calls to be answered")
    r = requests.post(f"{stack.api}/v1/calls/{sid}/end", headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code == 200, r.text
    # The slots are freed by the statement that records the carrier's final
    # status (call_end_many), so each call ended after its hang-up was asked
    # and its lease went with that end, never with the cancel.
    wait_until(lambda: stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s AND status = 'completed'",
                                 sid)[0][0] == 2, 20, "the carrier's final callbacks")
    assert stack.sql("SELECT count(*) FROM leases WHERE batch_id = %s AND call_id IS NOT NULL", sid) == [(0,)]
    rows = stack.sql("SELECT hangup_requested_at IS NOT NULL, duration_s, ended_at >= hangup_requested_at,"
                     "       history->-1->>'status'"
                     "  FROM calls WHERE batch_id = %s", sid)
    assert all(r[0] and r[2] and r[1] < 20 and r[3] == "completed" for r in rows), rows
    ledger = requests.get(region.sim + "/ledger", timeout=10).json()
    assert ledger["agent"]["updates"] >= 2
    # The agent saw each stream stop.
    def stopped():
        ss = [s for s in stack.agent_starts() if s["custom_parameters"].get("bc_batch_id") == sid]
        return len(ss) == 2 and all(s.get("stop") for s in ss)
    wait_until(stopped, 10, "both streams to stop")
