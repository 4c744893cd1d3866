"""What every surface shares: idempotency, rate limits, credits, key scope
and tenant isolation on every route."""
import requests

from conftest import batchcall_headers, bearer, cartesia_headers


def cartesia_body(t, n=1):
    return {"name": "g", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "recipients": [{"to_number": f"+1415666{i:04d}"} for i in range(n)]}


def batches_of(stack, tenant):
    return stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", tenant)[0][0]


def test_idempotency_key_replays_and_refuses_a_different_body(stack):
    t = stack.tenant()
    h = dict(cartesia_headers(t["api_key"]), **{"Idempotency-Key": "create-1"})
    a = requests.post(stack.api + "/agents/calls/batches", json=cartesia_body(t), headers=h, timeout=10)
    b = requests.post(stack.api + "/agents/calls/batches", json=cartesia_body(t), headers=h, timeout=10)
    assert a.status_code == b.status_code == 201
    assert a.json() == b.json()
    assert b.headers.get("Idempotent-Replayed") == "true"
    assert batches_of(stack, t["tenant_id"]) == 1
    c = requests.post(stack.api + "/agents/calls/batches", json=cartesia_body(t, 2), headers=h,
                      timeout=10)
    assert c.status_code == 400 and c.json()["code"] == "idempotency_key_reused"
    assert batches_of(stack, t["tenant_id"]) == 1
    # The same key on the Rymi surface (409 there) and per tenant.
    hr = dict(bearer(t["api_key"]), **{"Idempotency-Key": "create-1"})
    r = requests.post(stack.api + "/v1/calls/batch", json={"agent_id": t["agent_id"],
                      "to": ["+15550000001"]}, headers=hr, timeout=10)
    assert r.status_code == 409
    other = stack.tenant()
    ho = dict(cartesia_headers(other["api_key"]), **{"Idempotency-Key": "create-1"})
    assert requests.post(stack.api + "/agents/calls/batches", json=cartesia_body(other), headers=ho,
                         timeout=10).status_code == 201


def test_rate_limit_is_429_with_retry_after(stack):
    t = stack.tenant(rate_per_min=60, burst=3)
    codes, last = [], None
    for _ in range(6):
        last = requests.get(stack.api + "/v1/agents", headers=bearer(t["api_key"]), timeout=10)
        codes.append(last.status_code)
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes[3:]
    r = next(r for r in [last] if r.status_code == 429) if last.status_code == 429 else None
    assert r is not None
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["X-RateLimit-Limit"] == "60"
    assert r.json()["code"] == "rate_limited"


def test_no_credit_is_402_on_every_surface(stack):
    t = stack.tenant(credits=0)
    r = requests.post(stack.api + "/agents/calls/batches", json=cartesia_body(t),
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 402
    r = requests.post(stack.api + "/v1/calls/batch", json={"agent_id": t["agent_id"],
                      "to": ["+15550000001"]}, headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code == 402 and r.json()["code"] == "insufficient_credits"
    r = requests.post(stack.api + "/batch-call", json={"from_number": "+14157774444",
                      "agent_id": t["agent_id"], "tasks": [{"to_number": "+12137774445"}]},
                      headers=batchcall_headers(t), timeout=10)
    assert r.status_code == 402 and r.json()["status"] == "error"
    assert batches_of(stack, t["tenant_id"]) == 0


def test_publishable_key_cannot_use_cartesia_or_batch_call(stack):
    t = stack.tenant()
    pk = requests.post(stack.api + "/v1/keys/publishable", headers=bearer(t["api_key"]),
                       timeout=10).json()["key"]
    r = requests.post(stack.api + "/agents/calls/batches", json=cartesia_body(t),
                      headers=cartesia_headers(pk), timeout=10)
    assert r.status_code == 403
    r = requests.get(stack.api + "/batch-call", headers={"X-API-KEY": pk}, timeout=10)
    assert r.status_code == 403


def test_tenant_isolation_on_every_route(stack):
    """Another tenant's ids give 404 everywhere and change nothing."""
    owner, intruder = stack.tenant(), stack.tenant()
    b = requests.post(stack.api + "/agents/calls/batches", json=cartesia_body(owner, 2),
                      headers=cartesia_headers(owner["api_key"]), timeout=10).json()
    bid = b["id"]
    wh = requests.post(stack.api + "/v1/webhooks", headers=bearer(owner["api_key"]),
                       json={"url": "https://o.test/h", "events": ["call.completed"]}, timeout=10).json()
    pk = requests.post(stack.api + "/v1/keys/publishable", headers=bearer(owner["api_key"]),
                       timeout=10).json()
    own_num = requests.post(stack.api + "/v1/numbers", headers=bearer(owner["api_key"]),
                            json={"number": "+14155557777"}, timeout=10).json()
    ik = intruder["api_key"]
    checks = [
        ("GET", f"/agents/calls/batches/{bid}", cartesia_headers(ik), None),
        ("POST", f"/agents/calls/batches/{bid}/cancel", cartesia_headers(ik), None),
        ("POST", f"/agents/calls/batches/{bid}/retry", cartesia_headers(ik), None),
        ("GET", f"/v1/calls/{bid}", bearer(ik), None),
        ("GET", f"/v1/calls/{bid}/events", bearer(ik), None),
        ("POST", f"/v1/calls/{bid}/end", bearer(ik), None),
        ("GET", f"/v1/agents/{owner['agent_id']}", bearer(ik), None),
        ("PUT", f"/v1/agents/{owner['agent_id']}", bearer(ik), {"name": "pwned"}),
        ("DELETE", f"/v1/agents/{owner['agent_id']}", bearer(ik), None),
        ("GET", f"/v1/agents/{owner['agent_id']}/calls", bearer(ik), None),
        ("POST", f"/v1/numbers/{own_num['number']}/attach", bearer(ik), {"agent_id": intruder["agent_id"]}),
        ("DELETE", f"/v1/numbers/{own_num['number']}", bearer(ik), None),
        ("GET", f"/v1/webhooks/{wh['id']}", bearer(ik), None),
        ("PATCH", f"/v1/webhooks/{wh['id']}", bearer(ik), {"enabled": False}),
        ("DELETE", f"/v1/webhooks/{wh['id']}", bearer(ik), None),
        ("DELETE", f"/v1/keys/publishable/{pk['id']}", bearer(ik), None),
        ("GET", f"/batch-call/{bid}", batchcall_headers(intruder), None),
        ("GET", f"/batch-call/{bid}/tasks", batchcall_headers(intruder), None),
        ("POST", f"/batch-call/{bid}/cancel", batchcall_headers(intruder), None),
        ("POST", f"/batch-call/{bid}/send", batchcall_headers(intruder), None),
    ]
    for method, path, headers, body in checks:
        r = requests.request(method, stack.api + path, headers=headers, json=body, timeout=10)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert owner["tenant_id"] not in r.text
    # Nothing of the owner's changed.
    assert stack.sql("SELECT state FROM batches WHERE id = %s", bid)[0][0] != "cancelled"
    assert stack.sql("SELECT name, deleted_at FROM agents WHERE id = %s", owner["agent_id"])[0] == ("demo agent", None)
    assert stack.sql("SELECT agent_id FROM phone_numbers WHERE id = %s", own_num["id"])[0][0] is None
    assert stack.sql("SELECT enabled FROM webhooks WHERE id = %s", wh["id"])[0][0] is True
    assert stack.sql("SELECT revoked_at FROM api_keys WHERE id = %s", pk["id"])[0][0] is None
    # Lists show only one's own.
    lst = requests.get(stack.api + "/agents/calls/batches", headers=cartesia_headers(ik), timeout=10).json()
    assert bid not in [x["id"] for x in lst["data"]]
    lst = requests.get(stack.api + "/v1/calls", headers=bearer(ik), timeout=10).json()
    assert bid not in [x["id"] for x in lst["calls"]]
