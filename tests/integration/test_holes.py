"""Holes an outside tester found (issue 16), each shut: secrets are never
kept or replayed in clear by Idempotency-Key and its rows expire after a
day; a request must arrive whole within a deadline and one client address
cannot take every connection; a chunked body over the cap gets its 413;
client JSON stored with a batch or an agent is capped in size and depth on
every surface."""
import json
import select
import socket
import time

import pytest
import requests

from conftest import api_proc, batchcall_headers, bearer, cartesia_headers, wait_until

SECRET_SHAPES = ("bc_sk_", "bc_pk_", "whsec_")


def idem(key, name):
    return dict(bearer(key), **{"Idempotency-Key": name})


def stored_responses(stack, tenant_id):
    return [r[0] or "" for r in stack.sql(
        "SELECT response FROM idempotency_keys WHERE tenant_id = %s", tenant_id)]


# ---- 1. secrets at rest ------------------------------------------------------

def test_a_regenerated_key_is_never_stored_nor_replayed_in_clear(stack):
    t = stack.tenant()
    r = requests.post(stack.api + "/v1/auth/regenerate-key", headers=idem(t["api_key"], "rot-1"),
                      timeout=10)
    assert r.status_code == 201, r.text
    new = r.json()["api_key"]
    assert new.startswith("bc_sk_")
    assert requests.get(stack.api + "/v1/auth/me", headers=bearer(new), timeout=10).status_code == 200
    rows = stored_responses(stack, t["tenant_id"])
    assert len(rows) == 1 and new not in rows[0] and "bc_sk_" not in rows[0]
    # The retry (the old key is revoked, so with the new one) is the same
    # answer with the key redacted: no second key, no key shown twice.
    again = requests.post(stack.api + "/v1/auth/regenerate-key", headers=idem(new, "rot-1"),
                          timeout=10)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == r.json()["id"]
    assert again.json()["api_key"] == "redacted" and new not in again.text
    assert requests.get(stack.api + "/v1/auth/me", headers=bearer(new), timeout=10).status_code == 200
    keys = stack.sql("SELECT count(*) FROM api_keys WHERE tenant_id = %s AND revoked_at IS NULL",
                     t["tenant_id"])[0][0]
    assert keys == 1


def test_publishable_keys_and_webhook_secrets_are_never_stored_nor_replayed_in_clear(stack):
    t = stack.tenant()
    calls = [("/v1/keys/publishable", None, "key"),
             ("/v1/webhooks", {"url": "https://hooks.example/h", "events": ["call.completed"]},
              "secret")]
    for path, body, field in calls:
        h = idem(t["api_key"], "once-" + path)
        a = requests.post(stack.api + path, headers=h, json=body, timeout=10)
        assert a.status_code == 201, a.text
        secret = a.json()[field]
        assert secret.startswith(SECRET_SHAPES)
        assert not any(secret in row for row in stored_responses(stack, t["tenant_id"]))
        b = requests.post(stack.api + path, headers=h, json=body, timeout=10)
        assert b.status_code == 201 and b.headers.get("Idempotent-Replayed") == "true"
        assert b.json()["id"] == a.json()["id"] and b.json()[field] == "redacted"
        assert secret not in b.text
    for row in stored_responses(stack, t["tenant_id"]):
        assert not any(s in row for s in SECRET_SHAPES), row


def test_the_migration_scrubs_secrets_already_stored(stack):
    t = stack.tenant()
    sk = "bc_sk_" + "A" * 16 + "_" + "b" * 32
    wh = "whsec_" + "C" * 32
    stack.sql("INSERT INTO idempotency_keys (tenant_id, key, route, request_hash, status, response)"
              " VALUES (%s, 'old-1', '/v1/auth/regenerate-key', 'h', 201, %s),"
              "        (%s, 'old-2', '/v1/webhooks', 'h', 201, %s)",
              t["tenant_id"], json.dumps({"id": "key_1", "api_key": sk, "note": "n"}),
              t["tenant_id"], json.dumps({"id": "wh_1", "url": "https://x", "secret": wh}))
    # Applied again (it is written to be re-runnable), the migration finds
    # these rows as it found those of a deployment before it.
    stack.sql("DELETE FROM schema_migrations WHERE name LIKE '0024_%%'")
    stack.cli("migrate")
    rows = dict(stack.sql("SELECT key, response FROM idempotency_keys WHERE tenant_id = %s"
                          " AND key LIKE 'old-%%'", t["tenant_id"]))
    assert json.loads(rows["old-1"]) == {"id": "key_1", "api_key": "redacted", "note": "n"}
    assert json.loads(rows["old-2"]) == {"id": "wh_1", "url": "https://x", "secret": "redacted"}


def test_idempotency_keys_expire_after_a_day(stack):
    t = stack.tenant()
    h = idem(t["api_key"], "dnc-1")
    assert requests.post(stack.api + "/v1/dnc", headers=h, json={"number": "+14155550123"},
                         timeout=10).status_code in (200, 201)
    other = requests.post(stack.api + "/v1/dnc", headers=h, json={"number": "+14155550124"},
                          timeout=10)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    # A day later the key is free again: the new body runs.
    stack.sql("UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute'"
              " WHERE tenant_id = %s", t["tenant_id"])
    later = requests.post(stack.api + "/v1/dnc", headers=h, json={"number": "+14155550124"},
                          timeout=10)
    assert later.status_code in (200, 201) and "Idempotent-Replayed" not in later.headers
    assert stack.sql("SELECT count(*) FROM dnc WHERE tenant_id = %s AND number = '+14155550124'",
                     t["tenant_id"])[0][0] == 1


def test_the_scheduler_sweeps_idempotency_rows_older_than_a_day(stack):
    t = stack.tenant()
    for key, age in (("aged", "25 hours"), ("young", "23 hours")):
        stack.sql("INSERT INTO idempotency_keys (tenant_id, key, route, request_hash, status,"
                  " response, created_at) VALUES (%s, %s, '/v1/dnc', 'h', 201, '{}',"
                  " now() - %s::interval)", t["tenant_id"], key, age)

    def keys():
        return sorted(r[0] for r in stack.sql(
            "SELECT key FROM idempotency_keys WHERE tenant_id = %s", t["tenant_id"]))
    wait_until(lambda: keys() == ["young"], 15, "the day-old idempotency row swept")


# ---- 2. trickling connections --------------------------------------------------

def closed_by_server(s, wait):
    """True when the server closes s within wait seconds."""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_a_trickled_request_is_closed_at_its_deadline(stack, tmp_path):
    p, port, url = api_proc(stack, tmp_path, "api-deadline", BC_API_REQUEST_TIMEOUT="2",
                            BC_API_IDLE_TIMEOUT="30")
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        while not closed and time.monotonic() - t0 < 8:
            try:
                s.sendall(b"X")   # a header byte every half second: never idle
            except OSError:
                closed = True
                break
            closed = closed_by_server(s, 0.5)
        took = time.monotonic() - t0
        s.close()
        assert closed, "a trickling request outlived its 2 s deadline by far"
        assert 1.5 <= took <= 4.5, f"closed after {took:.1f} s"
        # A whole request is not hurt, nor one on a connection kept alive.
        with requests.Session() as sess:
            for _ in range(3):
                assert sess.get(url + "/healthz", timeout=5).status_code == 200
        metrics = requests.get(url + "/metrics", timeout=5).text
        assert "http_request_deadline_closed_total 1" in metrics.splitlines()
    finally:
        assert p.stop() == 0


def test_one_client_address_cannot_take_every_connection(stack, tmp_path):
    p, port, url = api_proc(stack, tmp_path, "api-per-ip", BC_API_MAX_CONNECTIONS="30",
                            BC_API_MAX_CONNECTIONS_PER_IP="10", BC_API_REQUEST_TIMEOUT="30")
    trickle = []
    try:
        # Another address of the loopback network: another client.
        for _ in range(40):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                             source_address=("127.0.0.2", 0))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                trickle.append(s)
            except OSError:
                pass
        time.sleep(0.3)
        kept = [s for s in trickle if not closed_by_server(s, 0.05)]
        assert len(kept) == 10, f"{len(kept)} connections kept from one address"
        t0 = time.monotonic()
        for _ in range(5):
            assert requests.get(url + "/healthz", timeout=5).status_code == 200
        assert time.monotonic() - t0 < 2
    finally:
        for s in trickle:
            s.close()
        assert p.stop() == 0


# ---- 3. a chunked body over the cap ----------------------------------------------

def test_a_chunked_body_over_the_cap_gets_413(stack, demo):
    s = socket.create_connection(("127.0.0.1", stack.api_port), timeout=10)
    head = ("POST /agents/calls/batches HTTP/1.1\r\nHost: x\r\n"
            f"X-API-Key: {demo['api_key']}\r\nCartesia-Version: 2026-03-01\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    s.sendall(head.encode())
    chunk = b"x" * 65536
    sent = 0
    try:
        # As a careful client does: stop sending once the server answered.
        while sent < 10 * 1024 * 1024 and not select.select([s], [], [], 0)[0]:
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    data = b""
    s.settimeout(10)
    try:
        while True:
            more = s.recv(65536)
            if not more:
                break
            data += more
            if b"\r\n\r\n" in data:
                hdr, _, body = data.partition(b"\r\n\r\n")
                n = [int(x.split(b":")[1]) for x in hdr.split(b"\r\n")
                     if x.lower().startswith(b"content-length:")]
                if n and len(body) >= n[0]:
                    break
    except OSError:
        pass
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), f"after {sent} bytes: {data[:200]!r}"
    body = json.loads(data.partition(b"\r\n\r\n")[2])
    assert body["code"] == "payload_too_large" and body["error"]


# ---- 5. size and depth of client JSON ---------------------------------------------

def nested(depth):
    """A JSON object depth levels deep, as text (json.dumps would recurse)."""
    return '{"a":' * depth + "1" + "}" * depth


def blob(size):
    """A JSON object of exactly size bytes, compact."""
    return json.dumps({"b": "x" * (size - len('{"b":""}'))}, separators=(",", ":"))


def post_raw(url, headers, text):
    return requests.post(url, data=text.encode(), headers=dict(headers, **{
        "Content-Type": "application/json"}), timeout=30)


def rymi_batch(t, meta_text):
    return ('{"agent_id":"%s","to":["+15559990001"],"metadata":%s}' % (t["agent_id"], meta_text))


def rymi_recipient(t, meta_text):
    return ('{"agent_id":"%s","recipients":[{"to":"+15559990001","metadata":%s}]}'
            % (t["agent_id"], meta_text))


def cartesia_recipient(t, meta_text):
    return ('{"name":"n","agent_id":"%s","from_number_id":"%s","recipients":'
            '[{"to_number":"+14155550100","metadata":%s}]}'
            % (t["agent_id"], t["from_number_id"], meta_text))


def batchcall_task(t, vars_text):
    return ('{"from_number":"+14157774444","agent_id":"%s","name":"n","tasks":'
            '[{"to_number":"+12137774445","dynamic_variables":%s}]}' % (t["agent_id"], vars_text))


def retell_task(t, meta_text):
    return ('{"from_number":"%s","tasks":[{"to_number":"+12137774445","metadata":%s}]}'
            % (t["from_number"], meta_text))


SURFACES = {
    "rymi-batch-metadata": ("/v1/calls/batch", lambda t: bearer(t["api_key"]), rymi_batch),
    "rymi-recipient-metadata": ("/v1/calls/batch", lambda t: bearer(t["api_key"]), rymi_recipient),
    "cartesia-metadata": ("/agents/calls/batches", lambda t: cartesia_headers(t["api_key"]),
                          cartesia_recipient),
    "batch-call-variables": ("/batch-call", batchcall_headers, batchcall_task),
    "retell-metadata": ("/create-batch-call", lambda t: bearer(t["api_key"]), retell_task),
}


@pytest.fixture(scope="module")
def jt(stack):
    return stack.tenant(concurrency=10)


def batches(stack, t):
    return stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]


@pytest.mark.parametrize("surface", sorted(SURFACES))
@pytest.mark.parametrize("what,text,ok", [
    ("at the size cap", blob(4096), True),
    ("over the size cap", blob(4097), False),
    ("a megabyte", blob(1024 * 1024), False),
    ("at the depth cap", nested(32), True),
    ("over the depth cap", nested(33), False),
    ("1,500 levels deep", nested(1500), False),
])
def test_client_json_is_capped_in_size_and_depth(stack, jt, surface, what, text, ok):
    path, headers, body = SURFACES[surface]
    before = batches(stack, jt)
    r = post_raw(stack.api + path, headers(jt), body(jt, text))
    if ok:
        assert r.status_code in (200, 201, 202), r.text
        assert batches(stack, jt) == before + 1
    else:
        assert r.status_code == 400, f"{what}: {r.status_code} {r.text[:200]}"
        err = json.dumps(r.json())
        assert "4096 bytes" in err or "32 levels" in err, err
        assert batches(stack, jt) == before


# The config is what the body holds besides the agent's own fields, here
# {"extra": X}: 10 bytes and one level more than X.
@pytest.mark.parametrize("extra,ok", [
    (blob(65536 - 10), True), (blob(65536 - 9), False), (nested(31), True), (nested(32), False),
])
def test_an_agents_config_is_capped_in_size_and_depth(stack, jt, extra, ok):
    r = post_raw(stack.api + "/v1/agents", bearer(jt["api_key"]),
                 '{"name":"capped","region":"us","extra":%s}' % extra)
    if ok:
        assert r.status_code == 201, r.text[:300]
    else:
        assert r.status_code == 400, r.text[:300]
        assert "65536 bytes" in r.json()["error"] or "32 levels" in r.json()["error"]
