"""The agent leg on the real stack: every answered call reaches the batch's
agent with its own recipient's variables (the reference agent in tests/agent
is the witness), every create the worker sends is a valid Twilio CreateCall
(checked against Twilio's published OpenAPI description), the context route
serves what did not fit inline, and no variable changes the TwiML."""
import hashlib
import hmac
import time

import requests

from conftest import batchcall_headers, bearer, cartesia_headers, wait_until
import twilio_spec

SECRET = "local-agent-token-secret"   # the default of BC_AGENT_TOKEN_SECRET


def script_answered(stack, numbers):
    """Every next call to these numbers is answered by a person."""
    for n in numbers:
        requests.post(stack.sim + "/outcomes", params={"to": n, "outcomes": "completed"},
                      timeout=10).raise_for_status()


def cartesia_batch(stack, t, recipients, agent_id=None, limit=2):
    r = requests.post(stack.api + "/agents/calls/batches", headers=cartesia_headers(t["api_key"]),
                      json={"name": "agent-leg", "agent_id": agent_id or t["agent_id"],
                            "from_number_id": t["from_number_id"],
                            "target_concurrency_limit": limit, "recipients": recipients},
                      timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_done(stack, t, bid, timeout=120):
    """Until every recipient of the batch is final and no call is live.
    (Cartesia's batch status says "completed" once every recipient is
    dispatched, while calls still run.)"""
    def done():
        return stack.sql(
            "SELECT bool_and(r.status IN ('completed', 'failed', 'cancelled'))"
            "   AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.batch_id = %s AND c.ended_at IS NULL)"
            "  FROM recipients r WHERE r.batch_id = %s", bid, bid)[0][0]
    wait_until(done, timeout, f"batch {bid} to finish", interval=0.2)
    return requests.get(f"{stack.api}/agents/calls/batches/{bid}",
                        headers=cartesia_headers(t["api_key"]), timeout=10).json()


def starts_of(stack, bid):
    return [s for s in stack.agent_starts()
            if s["custom_parameters"].get("bc_batch_id") == bid]


def dials_of(stack, bid):
    return requests.get(stack.sim + "/ledger/dials", params={"batch_id": bid},
                        timeout=30).json()["dials"]


def rymi_agent(stack, t, endpoint, name="leg"):
    r = requests.post(stack.api + "/v1/agents", headers=bearer(t["api_key"]),
                      json={"name": name, "endpoint": endpoint}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def test_an_agent_without_endpoint_gets_no_batch_on_any_surface(stack):
    t = stack.tenant(concurrency=4)
    r = requests.post(stack.api + "/v1/agents", headers=bearer(t["api_key"]),
                      json={"name": "silent"}, timeout=10)
    assert r.status_code == 201 and r.json()["endpoint"] is None, r.text
    silent = r.json()["id"]
    before = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]
    r = requests.post(stack.api + "/agents/calls/batches", headers=cartesia_headers(t["api_key"]),
                      json={"name": "x", "agent_id": silent, "from_number_id": t["from_number_id"],
                            "recipients": [{"to_number": "+14155550123"}]}, timeout=10)
    assert r.status_code == 400 and "endpoint" in r.json()["error"], r.text
    r = requests.post(stack.api + "/v1/calls/batch", headers=bearer(t["api_key"]),
                      json={"agent_id": silent, "to": ["+14155550123"]}, timeout=10)
    assert r.status_code == 400 and "endpoint" in r.json()["error"], r.text
    r = requests.post(stack.api + "/batch-call", headers=batchcall_headers(t),
                      json={"name": "x", "agent_id": silent, "from_number": t["from_number"],
                            "send_now": True, "tasks": [{"to_number": "+14155550123"}]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "agent_without_endpoint", r.text
    r = requests.post(stack.api + "/create-batch-call", headers=bearer(t["api_key"]),
                      json={"from_number": t["from_number"], "agent_id": silent,
                            "tasks": [{"to_number": "+14155550123"}]}, timeout=10)
    assert r.status_code == 422 and "endpoint" in r.json()["message"], r.text
    after = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]
    assert after == before


def test_rymi_agents_carry_a_checked_endpoint(stack):
    t = stack.tenant(concurrency=2)
    for bad in ("ws://agent.example/s", "wss://u:p@agent.example/s", "sip:agent.example",
                "sip:a@b?X-Evil=1", "ftp://agent.example/", "wss://agent example/"):
        r = requests.post(stack.api + "/v1/agents", headers=bearer(t["api_key"]),
                          json={"name": "bad", "endpoint": bad}, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", (bad, r.text)
    a = rymi_agent(stack, t, "wss://agent.example/stream")
    assert a["endpoint_kind"] == "stream" and "endpoint" not in (a["config"] or {})
    r = requests.put(f"{stack.api}/v1/agents/{a['id']}", headers=bearer(t["api_key"]),
                     json={"endpoint": "sip:bot@sip.agent.example"}, timeout=10)
    assert r.status_code == 200 and r.json()["endpoint_kind"] == "sip", r.text
    r = requests.put(f"{stack.api}/v1/agents/{a['id']}", headers=bearer(t["api_key"]),
                     json={"endpoint": "https://agent.example/twiml"}, timeout=10)
    assert r.json()["endpoint_kind"] == "twiml", r.text


def test_200_recipients_reach_the_agent_each_with_its_own_variables(stack):
    t = stack.tenant(concurrency=40)
    numbers = [f"+1415777{i:04d}" for i in range(200)]
    script_answered(stack, numbers)
    recipients = [{"to_number": n, "dynamic_variables": {"first_name": f"Person{i}", "seq": i,
                                                          "vip": i % 7 == 0}}
                  for i, n in enumerate(numbers)]
    bid = cartesia_batch(stack, t, recipients, limit=40)
    wait_done(stack, t, bid)
    wait_until(lambda: len([s for s in starts_of(stack, bid) if s.get("stop")]) >= 200, 30,
               "every stream to stop")
    starts = starts_of(stack, bid)
    assert len(starts) == 200, len(starts)
    assert len({s["call_sid"] for s in starts}) == 200
    assert len({s["custom_parameters"]["bc_call_id"] for s in starts}) == 200
    by_to = {s["custom_parameters"]["bc_to"]: s["custom_parameters"] for s in starts}
    assert sorted(by_to) == sorted(numbers)
    for i, n in enumerate(numbers):
        p = by_to[n]
        assert p["first_name"] == f"Person{i}" and p["seq"] == str(i), p
        assert p["vip"] == ("true" if i % 7 == 0 else "false"), p
        assert p["bc_batch_id"] == bid and p["bc_tenant_id"] == t["tenant_id"]
        assert p["bc_agent_id"] == t["agent_id"] and p["bc_from"] == t["from_number"]
        assert p["bc_attempt"] == "1" and p["bc_context"] == "inline"
    # The carrier saw one create per recipient, each with the agent leg.
    dials = dials_of(stack, bid)
    assert len(dials) == 200
    for d in dials:
        assert twilio_spec.check_create(d["params"]) == [], d["params"]
        assert d["agent"]["kind"] == "stream" and d["agent"]["connected"], d["agent"]
    assert stack.agent_stats()["violations"] == []


def test_a_variable_cannot_change_the_twiml(stack):
    t = stack.tenant(concurrency=2)
    n = "+14157770999"
    script_answered(stack, [n])
    evil = {"a": "</Parameter><Hangup/>", "b": "\"><Say>owned</Say><", "c": "&amp; <!-- x -->"}
    bid = cartesia_batch(stack, t, [{"to_number": n, "dynamic_variables": evil,
                                     "metadata": {"note": "</Stream></Connect><Play>x</Play>"}}])
    wait_done(stack, t, bid)
    wait_until(lambda: starts_of(stack, bid), 20, "the agent's start")
    (s,) = starts_of(stack, bid)
    p = s["custom_parameters"]
    assert (p["a"], p["b"], p["c"]) == (evil["a"], evil["b"], evil["c"])
    assert p["bc_metadata"] == '{"note":"</Stream></Connect><Play>x</Play>"}'
    (d,) = dials_of(stack, bid)
    assert twilio_spec.check_create(d["params"]) == []
    # Nothing but the stream ran: no <Say>, <Play> or <Hangup> reached the call.
    assert d["agent"]["played"] == [] and d["agent"]["kind"] == "stream", d["agent"]
    # The parsed TwiML has exactly Response/Connect/Stream/Parameter*.
    import xml.etree.ElementTree as ET
    root = ET.fromstring(d["params"]["Twiml"])
    assert [e.tag for e in root.iter()][:3] == ["Response", "Connect", "Stream"]
    assert {e.tag for e in root.iter()} == {"Response", "Connect", "Stream", "Parameter"}


def token_for(call_id, exp):
    mac = hmac.new(SECRET.encode(), f"{call_id}.{exp}".encode(), hashlib.sha256).hexdigest()
    return f"{exp}.{mac}"


def test_large_variables_go_by_the_context_route_with_its_token(stack):
    t = stack.tenant(concurrency=2)
    n = "+14157770888"
    script_answered(stack, [n])
    big = {f"note{i}": "x" * 400 for i in range(9)}
    stack.agent_behavior(fetch_context=True)
    try:
        bid = cartesia_batch(stack, t, [{"to_number": n, "dynamic_variables": big}])
        wait_done(stack, t, bid)
        wait_until(lambda: [s for s in starts_of(stack, bid) if "context_status" in s], 20,
                   "the agent's context fetch")
    finally:
        stack.agent_behavior(fetch_context=False)
    (s,) = starts_of(stack, bid)
    p = s["custom_parameters"]
    assert p["bc_context"] == "fetch" and "note0" not in p
    assert s["context_status"] == 200, s
    ctx = s["context"]
    assert ctx["variables"] == big and ctx["call_id"] == p["bc_call_id"]
    assert ctx["batch_id"] == bid and ctx["to"] == n and ctx["attempt"] == 1
    (d,) = dials_of(stack, bid)
    assert len(d["params"]["Twiml"]) <= 4000
    assert twilio_spec.check_create(d["params"]) == []
    # Wrong, foreign, expired or missing tokens get 401 and no data.
    call = p["bc_call_id"]
    url = f"{stack.api}/v1/calls/{call}/context"
    good = p["bc_token"]
    assert requests.get(url, headers={"Authorization": "Bearer " + good}, timeout=10).status_code == 200
    for tok in (good[:-1] + ("0" if good[-1] != "0" else "1"), token_for("ac_other", int(time.time()) + 60),
                token_for(call, int(time.time()) - 1), "", t["api_key"]):
        r = requests.get(url, headers={"Authorization": "Bearer " + tok}, timeout=10)
        assert r.status_code == 401 and r.json()["code"] == "invalid_token", (tok, r.text)
        assert "variables" not in r.text
    assert requests.get(url, timeout=10).status_code == 401
    # A token good for its call opens no other.
    other = f"{stack.api}/v1/calls/ac_doesnotexist/context"
    assert requests.get(other, headers={"Authorization": "Bearer " + good}, timeout=10).status_code == 401


def test_every_kind_of_agent_gets_a_valid_create(stack):
    t = stack.tenant(concurrency=4)
    host = stack.agent_url.split("/stream")[0].replace("wss://", "https://")
    kinds = {"stream": stack.agent_url, "twiml": host + "/twiml?tenant=acme",
             "sip": "sip:agent@sip.example.com"}
    for kind, endpoint in kinds.items():
        a = rymi_agent(stack, t, endpoint, name=kind)
        n = {"stream": "+14157770701", "twiml": "+14157770702", "sip": "+14157770703"}[kind]
        script_answered(stack, [n])
        bid = cartesia_batch(stack, t, [{"to_number": n, "dynamic_variables": {"k": kind}}],
                             agent_id=a["id"])
        wait_done(stack, t, bid)
        (d,) = dials_of(stack, bid)
        assert twilio_spec.check_create(d["params"]) == [], (kind, d["params"])
        # A TwiML agent's own TwiML (fetched from its Url) opened a stream.
        assert d["agent"]["kind"] == ("stream" if kind == "twiml" else kind), d["agent"]
        assert d["agent"]["connected"] and d["agent"]["error"] is None, d["agent"]
        if kind == "twiml":
            assert d["params"]["Method"] == "GET" and "Twiml" not in d["params"]
            assert d["params"]["Url"].startswith(endpoint + "&bc_call_id=ac_")
            fetches = requests.get(stack.agent_control + "/twiml-fetches", timeout=10).json()
            (f,) = [x for x in fetches["twiml_fetches"] if d["call_id"] in x["url"]]
            assert f["method"] == "GET" and f["signature"], f
            # The agent's TwiML connected the call to its stream.
            wait_until(lambda: starts_of_call(stack, d["call_id"]), 20, "the twiml agent's start")
        if kind == "sip":
            assert d["agent"]["sip_headers"]["X-bc-call-id"] == d["call_id"]
            assert d["agent"]["sip_headers"]["X-bc-token"]


def starts_of_call(stack, call_id):
    return [s for s in stack.agent_starts() if s["custom_parameters"].get("bc_call_id") == call_id]


def test_the_simulator_refuses_the_old_create(stack):
    old = {"To": "+14155550100", "From": "+14155550199",
           "StatusCallback": stack.api + "/carrier/twilio/status", "StatusCallbackMethod": "POST",
           "Timeout": "60", "TimeLimit": "600", "MachineDetection": "DetectMessageEnd"}
    assert any("Url, Twiml or ApplicationSid" in e for e in twilio_spec.check_create(old))
    r = requests.post(stack.sim + "/2010-04-01/Accounts/ACsimulator/Calls.json", data=old,
                      auth=("ACsimulator", "sim-auth-token"), timeout=10)
    assert r.status_code == 400 and r.json()["code"] == 21205, r.text
