"""Security promises: keys never reach a log, injection in any string field
is stored as data, forged or stale carrier callbacks change nothing."""
import requests

from conftest import bearer, cartesia_headers


def test_keys_and_secrets_never_reach_a_log(stack):
    t = stack.tenant()
    key = t["api_key"]
    secret = t["x_api_secret"]
    # Use the key on every surface, and wrong keys too.
    requests.get(stack.api + "/v1/auth/me", headers=bearer(key), timeout=10)
    requests.get(stack.api + "/batch-call", headers={"X-API-KEY": t["x_api_key"],
                                                     "X-API-SECRET": secret}, timeout=10)
    requests.get(stack.api + "/agents/calls/batches", headers=cartesia_headers(key), timeout=10)
    requests.get(stack.api + "/v1/auth/me", headers=bearer(key[:-1] + "x"), timeout=10)
    hashed = stack.sql("SELECT hash FROM api_keys WHERE tenant_id = %s", t["tenant_id"])[0][0]
    for name, p in stack.procs.items():
        text = "\n".join(p.log_lines())
        for needle in (key, secret, key[:-1] + "x", hashed):
            assert needle not in text, f"{name} logged a key"


def test_injection_in_string_fields_is_stored_as_data(stack):
    t = stack.tenant()
    evil = "x'); DROP TABLE batches; --"
    body = {"name": evil, "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "recipients": [{"to_number": "+14155550000", "metadata": {"note": evil}}]}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == evil
    got = requests.get(f"{stack.api}/agents/calls/batches/{r.json()['id']}",
                       headers=cartesia_headers(t["api_key"]), timeout=10).json()
    assert got["recipients"][0]["metadata"] == {"note": evil}
    for path in ("/v1/agents/" + evil, "/v1/calls/" + evil.replace(" ", "%20")):
        x = requests.get(stack.api + path, headers=bearer(t["api_key"]), timeout=10)
        assert x.status_code in (400, 404)
    a = requests.post(stack.api + "/v1/agents", headers=bearer(t["api_key"]),
                      json={"name": evil, "prompt": "' OR 1=1 --"}, timeout=10)
    assert a.status_code == 201 and a.json()["name"] == evil
    assert stack.sql("SELECT count(*) FROM batches WHERE id = %s", r.json()["id"])[0][0] == 1


def test_forged_or_unsigned_callbacks_are_refused(stack):
    t = stack.tenant()
    url = (stack.api + "/carrier/twilio/status?region=us&tenant_id=" + t["tenant_id"] +
           "&batch_id=acb_x&call_id=ac_x")
    form = {"CallSid": "CA1", "CallStatus": "completed", "CallDuration": "3"}
    assert requests.post(url, data=form, timeout=10).status_code == 403
    assert requests.post(url, data=form, headers={"X-Twilio-Signature": "bm9wZQ=="},
                         timeout=10).status_code == 403
    bad = url.replace("region=us", "region=mars")
    assert requests.post(bad, data=form, timeout=10).status_code == 400
    inj = url.replace("call_id=ac_x", "call_id=ac_x'%3B--")
    assert requests.post(inj, data=form, timeout=10).status_code == 400


def test_a_concurrent_burst_cannot_exceed_a_keys_rate_limit(stack):
    """100 requests at once from 20 connections against a key allowed a burst
    of 10 at 60/min: at most the burst plus what refills during the burst gets
    through, the rest are 429; a second key of the same tenant and another
    tenant's key are not starved by it."""
    import concurrent.futures
    import time

    from conftest import bearer
    t = stack.tenant(rate_per_min=60, burst=10)
    other_key = stack.cli("key-create", "--tenant", t["tenant_id"], "--kind", "secret")["api_key"]
    other_tenant = stack.tenant(rate_per_min=60, burst=10)

    def get(key):
        return requests.get(stack.api + "/v1/agents", headers=bearer(key), timeout=30).status_code

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: get(t["api_key"]), range(100)))
    elapsed = time.monotonic() - t0
    ok = codes.count(200)
    assert set(codes) <= {200, 429}, codes
    assert 10 <= ok <= 10 + int(elapsed * 1.0) + 1, (ok, elapsed)
    assert get(other_key) == 200
    assert get(other_tenant["api_key"]) == 200
