"""The Rymi-style /v1 surface: the seeds' own examples replayed, every
documented error, and the resources around calls."""
import pytest
import requests

from conftest import bearer, wait_until

V1 = "/v1"


@pytest.fixture(scope="module")
def t(stack):
    return stack.tenant(concurrency=20)


def get(stack, key, path, **params):
    return requests.get(stack.api + V1 + path, headers=bearer(key), params=params, timeout=30)


def post(stack, key, path, body=None, headers=None):
    h = bearer(key)
    h.update(headers or {})
    return requests.post(stack.api + V1 + path, headers=h, json=body, timeout=30)


def assert_error(r, status, code=None):
    assert r.status_code == status, r.text
    b = r.json()
    assert isinstance(b["error"], str) and b["error"]
    if code:
        assert b["code"] == code


def count_batches(stack, tenant):
    return stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", tenant)[0][0]


def test_simple_batch_example_is_202_with_one_participant_each(stack, t):
    r = post(stack, t["api_key"], "/calls/batch", {
        "agent_id": t["agent_id"], "to": ["+15559990001", "+15559990002"],
        "from_number": "+15559990000", "metadata": {"batch_label": "promo-q1"},
        "variables": {"campaign": "spring-offer"}})
    assert r.status_code == 202, r.text
    b = r.json()
    assert b["status"] == "queued" and b["queued"] == 2
    assert b["room_name"] == "call_" + b["id"]
    assert b["batch_id"] == b["id"]
    assert [p["identity"] for p in b["participants"]] == ["+15559990001", "+15559990002"]
    for p in b["participants"]:
        assert p["transport"] == "pstn" and p["status"] == "queued"
        assert p["telephony_leg_id"] and p["job_id"] and p["id"]
        assert p["from_number"] == "+15559990000"


def test_per_recipient_example_keeps_batch_id_and_overrides(stack, t):
    r = post(stack, t["api_key"], "/calls/batch", {
        "agent_id": t["agent_id"],
        "recipients": [
            {"to": "+15559990001", "from_number": "+15559990000",
             "metadata": {"name": "Alice", "plan": "Gold"}},
            {"to": "+15559990002", "metadata": {"name": "Bob", "plan": "Silver"}}],
        "from_number": "+15559990000", "batch_id": "promo-q1-2026",
        "variables": {"campaign": "spring-offer"}})
    assert r.status_code == 202, r.text
    b = r.json()
    assert b["batch_id"] == "promo-q1-2026"
    assert b["participants"][0]["metadata"] == {"name": "Alice", "plan": "Gold"}

    def done():
        s = get(stack, t["api_key"], "/calls/" + b["id"]).json()
        return s if all(p["status"] in ("completed", "failed") for p in s["participants"]) else None
    s = wait_until(done, 60, "the session's participants to finish", interval=0.3)
    assert s["status"] in ("completed", "failed")
    ev = get(stack, t["api_key"], f"/calls/{b['id']}/events").json()["events"]
    assert ev, "every call leaves a status history"
    for p in s["participants"]:
        mine = [e["status"] for e in ev if e["participant_id"] == p["id"]]
        assert mine[:2] == ["queued", "dialing"]
        assert mine[-1] in ("completed", "busy", "no-answer", "failed")


def test_queue_stats_count_the_tenants_jobs(stack):
    t2 = stack.tenant()
    r = post(stack, t2["api_key"], "/calls/batch", {"agent_id": t2["agent_id"],
                                                    "to": ["+15559990011", "+15559990012"]})
    assert r.status_code == 202

    def settled():
        s = get(stack, t2["api_key"], "/calls/queue/stats").json()
        return s if s["completed"] + s["failed"] == 2 else None
    s = wait_until(settled, 60, "both jobs to finish", interval=0.3)
    assert set(s) == {"waiting", "active", "completed", "failed"}
    assert s["waiting"] == 0 and s["active"] == 0


@pytest.mark.parametrize("body,why", [
    ({"to": ["+15559990001"]}, "agent_id"),
    ({"agent_id": "x", "to": []}, "to or recipients"),
    ({"agent_id": "x"}, "to or recipients"),
    ({"agent_id": "x", "to": ["5559990001"]}, "E.164"),
    ({"agent_id": "x", "to": ["+15559990001"], "recipients": [{"to": "+15559990002"}]}, "either"),
    ({"agent_id": "x", "to": [f"+1555999{i:04d}" for i in range(501)]}, "500"),
    ({"agent_id": "x", "recipients": [{"to": "+15559990001", "from_number": "123"}]}, "from_number"),
    ({"agent_id": "x", "to": ["+15559990001"], "metadata": [1]}, "metadata"),
])
def test_batch_validation_errors_are_400(stack, t, body, why):
    before = count_batches(stack, t["tenant_id"])
    r = post(stack, t["api_key"], "/calls/batch", body)
    assert_error(r, 400, "invalid_request")
    assert why in r.json()["error"]
    assert count_batches(stack, t["tenant_id"]) == before


def test_batch_unknown_agent_is_404(stack, t):
    r = post(stack, t["api_key"], "/calls/batch", {"agent_id": "agent_nope", "to": ["+15559990001"]})
    assert_error(r, 404)


def test_missing_or_invalid_key_is_401(stack, t):
    r = requests.post(stack.api + V1 + "/calls/batch", json={}, timeout=10)
    assert_error(r, 401, "unauthorized")
    r = post(stack, "rymi_nope", "/calls/batch", {})
    assert_error(r, 401, "unauthorized")


def test_dnc_number_in_batch_is_409_and_nothing_is_queued(stack, t):
    assert post(stack, t["api_key"], "/dnc", {"number": "+15559990666"}).status_code in (200, 201)
    before = count_batches(stack, t["tenant_id"])
    r = post(stack, t["api_key"], "/calls/batch", {"agent_id": t["agent_id"],
                                                   "to": ["+15559990001", "+15559990666"]})
    assert_error(r, 409, "dnc_listed")
    assert r.json()["numbers"] == ["+15559990666"]
    assert count_batches(stack, t["tenant_id"]) == before


def test_publishable_keys_create_calls_but_not_batches(stack, t):
    pk = post(stack, t["api_key"], "/keys/publishable").json()["key"]
    r = post(stack, pk, "/calls/batch", {"agent_id": t["agent_id"], "to": ["+15559990001"]})
    assert_error(r, 403)
    assert r.json()["error"] == "Publishable keys cannot use batch API"
    r = post(stack, pk, "/calls", {"agent_id": t["agent_id"], "participants": [
        {"transport": "pstn", "identity": "+15559990003"}]})
    assert r.status_code == 201, r.text
    for path in ("/calls", "/agents", "/dnc", "/auth/me", "/calls/queue/stats"):
        assert_error(get(stack, pk, path), 403, "forbidden")


def test_participant_fanout(stack, t):
    r = post(stack, t["api_key"], "/calls", {
        "agent_id": t["agent_id"], "variables": {"campaign": "spring-offer"},
        "participants": [
            {"transport": "pstn", "identity": "+15559990001", "from_number": "+15559990000",
             "metadata": {"name": "Alice", "plan": "Gold"}},
            {"transport": "pstn", "identity": "+15559990002", "from_number": "+15559990000",
             "metadata": {"name": "Bob", "plan": "Silver"}}]})
    assert r.status_code == 201, r.text
    assert len(r.json()["participants"]) == 2
    r = post(stack, t["api_key"], "/calls", {"agent_id": t["agent_id"], "participants": [
        {"transport": "webrtc", "identity": "user-1"}]})
    assert_error(r, 400, "invalid_request")


def test_error_quoting_long_non_ascii_text_is_still_json(stack, t):
    # Found by tests/fuzz/fuzz_rymi: the message quoting the transport was
    # cut inside a UTF-8 character and the 400 went out with an empty body.
    for k in range(150, 160):
        r = post(stack, t["api_key"], "/calls", {"agent_id": t["agent_id"], "participants": [
            {"transport": "x" * k + "\u00e9" * 10, "identity": "+15559990001"}]})
        assert_error(r, 400, "invalid_request")


def test_list_calls_paginates_and_filters(stack, t):
    page = get(stack, t["api_key"], "/calls", limit=2, offset=0).json()
    assert page["limit"] == 2 and page["offset"] == 0 and len(page["calls"]) <= 2
    assert page["total"] >= len(page["calls"])
    if page["next_cursor"]:
        nxt = get(stack, t["api_key"], "/calls", limit=2, cursor=page["next_cursor"]).json()
        assert not {c["id"] for c in nxt["calls"]} & {c["id"] for c in page["calls"]}
    assert_error(get(stack, t["api_key"], "/calls", limit=201), 400)
    assert_error(get(stack, t["api_key"], "/calls", status="bogus"), 400)
    for c in get(stack, t["api_key"], "/calls", status="queued").json()["calls"]:
        assert c["status"] == "queued"
    assert "calls" in get(stack, t["api_key"], "/calls/active").json()


def test_end_stops_queued_participants(stack):
    t2 = stack.tenant(concurrency=2)
    r = post(stack, t2["api_key"], "/calls/batch", {
        "agent_id": t2["agent_id"], "to": [f"+1555888{i:04d}" for i in range(40)]})
    assert r.status_code == 202
    cid = r.json()["id"]
    e = post(stack, t2["api_key"], f"/calls/{cid}/end")
    assert e.status_code == 200, e.text
    s = wait_until(lambda: (lambda x: x if x["status"] == "completed" else None)(
        get(stack, t2["api_key"], "/calls/" + cid).json()), 60, "the session to end")
    assert sum(p["status"] == "failed" and p["end_reason"] is None for p in s["participants"]) > 0
    assert_error(post(stack, t2["api_key"], "/calls/call_nope/end"), 404)


def test_agents_crud(stack, t):
    a = post(stack, t["api_key"], "/agents", {"name": "Support", "region": "eu", "voice": "alloy"})
    assert a.status_code == 201, a.text
    aid = a.json()["id"]
    assert a.json()["config"] == {"voice": "alloy"}
    assert get(stack, t["api_key"], "/agents/" + aid).json()["name"] == "Support"
    u = requests.put(stack.api + V1 + "/agents/" + aid, headers=bearer(t["api_key"]),
                     json={"name": "Sales"}, timeout=10)
    assert u.status_code == 200 and u.json()["name"] == "Sales" and u.json()["region"] == "eu"
    lst = get(stack, t["api_key"], "/agents", limit=10).json()
    assert aid in [x["id"] for x in lst["agents"]] and lst["total"] >= 2
    assert_error(post(stack, t["api_key"], "/agents", {"region": "us"}), 400)
    assert_error(post(stack, t["api_key"], "/agents", {"name": "x", "region": "mars"}), 400)
    assert get(stack, t["api_key"], f"/agents/{aid}/calls").status_code == 200
    d = requests.delete(stack.api + V1 + "/agents/" + aid, headers=bearer(t["api_key"]), timeout=10)
    assert d.status_code == 200
    assert_error(get(stack, t["api_key"], "/agents/" + aid), 404)


def test_numbers(stack, t):
    r = post(stack, t["api_key"], "/numbers", {"number": "+14155550199", "provider": "plivo"})
    assert r.status_code == 201, r.text
    assert r.json()["provider"] == "plivo"
    assert_error(post(stack, t["api_key"], "/numbers", {"number": "+14155550199"}), 409)
    assert_error(post(stack, t["api_key"], "/numbers", {"number": "555"}), 400)
    assert_error(post(stack, t["api_key"], "/numbers", {"number": "+14155550198",
                                                        "provider": "acme"}), 400)
    a = post(stack, t["api_key"], "/numbers/+14155550199/attach", {"agent_id": t["agent_id"]})
    assert a.status_code == 200 and a.json()["agent_id"] == t["agent_id"]
    assert "+14155550199" in [n["number"] for n in get(stack, t["api_key"], "/numbers").json()["numbers"]]
    d = requests.delete(stack.api + V1 + "/numbers/+14155550199", headers=bearer(t["api_key"]),
                        timeout=10)
    assert d.status_code == 200
    assert_error(requests.delete(stack.api + V1 + "/numbers/+14155550199",
                                 headers=bearer(t["api_key"]), timeout=10), 404)


def test_dnc_registry(stack, t):
    assert post(stack, t["api_key"], "/dnc", {"number": "+15550001111", "reason": "asked"}).status_code == 201
    assert post(stack, t["api_key"], "/dnc", {"number": "+15550001111"}).status_code == 200
    b = post(stack, t["api_key"], "/dnc/batch", {"numbers": ["+15550001112", "+15550001113"]})
    assert b.status_code == 201 and b.json()["added"] == 2
    c = post(stack, t["api_key"], "/dnc/check", {"number": "+15550001112"}).json()
    assert c == {"number": "+15550001112", "blocked": True}
    m = post(stack, t["api_key"], "/dnc/check", {"numbers": ["+15550001113", "+15550009999"]}).json()
    assert [x["blocked"] for x in m["results"]] == [True, False]
    assert "+15550001111" in [x["number"] for x in get(stack, t["api_key"], "/dnc").json()["dnc"]]
    assert_error(post(stack, t["api_key"], "/dnc", {"number": "nope"}), 400)
    assert_error(post(stack, t["api_key"], "/dnc/batch", {"numbers": []}), 400)
    d = requests.delete(stack.api + V1 + "/dnc/+15550001111", headers=bearer(t["api_key"]), timeout=10)
    assert d.status_code == 200
    assert post(stack, t["api_key"], "/dnc/check", {"number": "+15550001111"}).json()["blocked"] is False


def test_webhooks(stack, t):
    r = post(stack, t["api_key"], "/webhooks", {"url": "https://example.test/hook",
                                                "events": ["call.completed", "call.failed"]})
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["secret"].startswith("whsec_")
    listed = get(stack, t["api_key"], "/webhooks").json()["webhooks"]
    assert all("secret" not in x for x in listed)
    p = requests.patch(stack.api + V1 + "/webhooks/" + w["id"], headers=bearer(t["api_key"]),
                       json={"enabled": False, "events": ["call.completed"]}, timeout=10)
    assert p.status_code == 200 and p.json()["enabled"] is False
    assert p.json()["events"] == ["call.completed"]
    assert_error(post(stack, t["api_key"], "/webhooks", {"url": "ftp://x", "events": ["call.completed"]}), 400)
    assert_error(post(stack, t["api_key"], "/webhooks", {"url": "https://x.test", "events": ["nope"]}), 400)
    d = requests.delete(stack.api + V1 + "/webhooks/" + w["id"], headers=bearer(t["api_key"]), timeout=10)
    assert d.status_code == 200
    assert_error(get(stack, t["api_key"], "/webhooks/" + w["id"]), 404)


def test_a_webhook_created_disabled_stays_disabled_and_enabled_must_be_a_boolean(stack, t):
    """Issue 16, hole 4: create ignored "enabled": false and took "enabled": "no"."""
    r = post(stack, t["api_key"], "/webhooks", {"url": "https://example.test/off",
                                                "events": ["call.completed"], "enabled": False})
    assert r.status_code == 201, r.text
    assert r.json()["enabled"] is False
    assert stack.sql("SELECT enabled FROM webhooks WHERE id = %s", r.json()["id"]) == [(False,)]
    before = stack.sql("SELECT count(*) FROM webhooks WHERE tenant_id = %s", t["tenant_id"])
    for bad in ("no", 0, None, [True]):
        assert_error(post(stack, t["api_key"], "/webhooks", {"url": "https://example.test/x",
                                                             "events": ["call.completed"],
                                                             "enabled": bad}), 400)
    assert stack.sql("SELECT count(*) FROM webhooks WHERE tenant_id = %s", t["tenant_id"]) == before
    requests.delete(stack.api + V1 + "/webhooks/" + r.json()["id"], headers=bearer(t["api_key"]),
                    timeout=10)


def test_me_and_key_rotation(stack):
    t2 = stack.tenant(concurrency=7)
    me = get(stack, t2["api_key"], "/auth/me").json()
    assert me["tenant"]["id"] == t2["tenant_id"]
    assert me["limits"]["concurrent_calls"] == 7 and me["key"]["type"] == "secret"
    r = post(stack, t2["api_key"], "/auth/regenerate-key")
    assert r.status_code == 201
    new = r.json()["api_key"]
    assert_error(get(stack, t2["api_key"], "/auth/me"), 401)
    assert get(stack, new, "/auth/me").status_code == 200
    pk = post(stack, new, "/keys/publishable").json()
    assert pk["key"].startswith("bc_pk_")
    assert pk["id"] in [k["id"] for k in get(stack, new, "/keys/publishable").json()["keys"]]
    d = requests.delete(stack.api + V1 + "/keys/publishable/" + pk["id"], headers=bearer(new), timeout=10)
    assert d.status_code == 200
    assert_error(post(stack, pk["key"], "/calls", {}), 401)


def test_spend(stack, t):
    s = get(stack, t["api_key"], "/analytics/spend").json()
    assert s["currency"] == "usd" and s["total_cents"] >= 0
    assert s["total_cents"] == sum(d["cents"] for d in s["days"])
    assert_error(get(stack, t["api_key"], "/analytics/spend", **{"from": "yesterday"}), 400)


def test_unknown_route_is_404_json(stack, t):
    assert_error(get(stack, t["api_key"], "/nope"), 404)


def test_an_agent_region_is_never_null(stack, t):
    """The OpenAPI document types region as us, eu or apac, not nullable:
    PUT /v1/agents/{id} with "region": null is a 400 in Rymi's shape and
    changes nothing (issue 16, hole 6); so is a create with it."""
    a = post(stack, t["api_key"], "/agents", {"name": "Regional", "region": "eu"})
    assert a.status_code == 201, a.text
    aid = a.json()["id"]
    u = requests.put(stack.api + V1 + "/agents/" + aid, headers=bearer(t["api_key"]),
                     json={"region": None}, timeout=10)
    assert u.status_code == 400, u.text
    assert u.json()["code"] == "invalid_request" and "region" in u.json()["error"]
    assert get(stack, t["api_key"], "/agents/" + aid).json()["region"] == "eu"
    assert_error(post(stack, t["api_key"], "/agents", {"name": "x", "region": None}), 400)
