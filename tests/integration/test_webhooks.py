"""Webhooks end to end: endpoints registered over Rymi's /v1/webhooks, events
from the real call-results topic, delivered by real batchcall-scheduler
processes (started and killed here) to a real HTTP server on loopback, each
request's signature checked with Python's hmac."""
import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import (BUILD, Proc, api_proc, bearer, cartesia_headers, consume_from_start,
                      free_port, scheduler_ticked, scrape, wait_until)

MAX_ATTEMPTS = 5
BACKOFF_MS = 400
TIMEOUT_MS = 2000


class Receiver:
    """An HTTP server that records every request and answers what
    answer(event_id, nth_try_of_that_event) says: a status, or
    (seconds to wait, status)."""

    def __init__(self, answer=lambda event_id, n: 200):
        self.answer = answer
        self.requests = []
        self.lock = threading.Lock()
        rcv = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ev = self.headers.get("X-Batchcall-Event-Id")
                with rcv.lock:
                    n = sum(1 for r in rcv.requests if r["event_id"] == ev) + 1
                    rcv.requests.append({"at": time.monotonic(), "path": self.path,
                                         "headers": dict(self.headers), "body": body,
                                         "event_id": ev, "n": n})
                a = rcv.answer(ev, n)
                wait, status = a if isinstance(a, tuple) else (0, a)
                if wait:
                    time.sleep(wait)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/batchcall"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def got(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(answer=lambda event_id, n: 200):
        r = Receiver(answer)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


class Deliverers:
    """batchcall-scheduler processes with webhooks on and fast retries. They
    stand by for the region (the stack's scheduler leads it) and share the
    webhook consumer group."""

    def __init__(self, stack, tmp):
        self.stack, self.tmp, self.procs, self.n = stack, tmp, [], 0

    def start(self):
        return self.start_with()

    def start_with(self, **extra_env):
        self.n += 1
        port = free_port()
        env = dict(self.stack.env, BC_SCHEDULER_PORT=str(port), BC_WEBHOOKS="1",
                   BC_WEBHOOK_MAX_ATTEMPTS=str(MAX_ATTEMPTS), BC_WEBHOOK_BACKOFF_MS=str(BACKOFF_MS),
                   BC_WEBHOOK_TIMEOUT_MS=str(TIMEOUT_MS), BC_WEBHOOK_POLL_MS="50", **extra_env)
        p = Proc(f"deliverer{self.n}", [os.path.join(BUILD, "batchcall-scheduler")], env, self.tmp)
        p.url = f"http://127.0.0.1:{port}"
        self.procs.append(p)
        self.stack.wait_ready(p.url)
        wait_until(lambda: p.events("webhooks.started"), 10, "the webhook thread")
        return p

    def caught_up(self, p, timeout=15):
        """Barrier: p looked for due deliveries twice since this call (so
        once wholly after it) and has no request in flight: every try due
        by now was sent and answered. A test may then assert that no other
        came."""
        start = scrape(p.url)["webhook_claim_passes_total"]

        def done():
            m = scrape(p.url)
            return m["webhook_claim_passes_total"] >= start + 2 and m["webhook_requests_in_flight"] == 0
        wait_until(done, timeout, f"{p.name} to send every due try", interval=0.02)

    def metrics(self, p):
        out = {}
        for line in requests.get(p.url + "/metrics", timeout=5).text.splitlines():
            if line.startswith("webhook_"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


@pytest.fixture
def deliverers(stack, tmp_path):
    d = Deliverers(stack, str(tmp_path))
    yield d
    codes = {p.name: p.stop() for p in d.procs if p.p.poll() is None}
    if any(c != 0 for c in codes.values()):
        for p in d.procs:
            print(f"\n===== {p.name} =====\n" + "\n".join(p.log_lines()[-40:]))
    assert all(c == 0 for c in codes.values()), f"a deliverer did not drain cleanly: {codes}"


def verify(secret, headers, body):
    """The receiver's side of docs/webhooks.md: v1 = HMAC-SHA256 of
    "<timestamp>.<body>" keyed by the endpoint's secret."""
    ts = headers["X-Batchcall-Timestamp"]
    want = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Batchcall-Signature"], want), "bad signature"
    assert abs(time.time() - int(ts)) < 300, "stale timestamp"


def register(stack, t, url, events=("call.completed", "call.failed", "batch.completed")):
    r = requests.post(stack.api + "/v1/webhooks", headers=bearer(t["api_key"]),
                      json={"url": url, "events": list(events)}, timeout=10)
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["secret"].startswith("whsec_")
    return w


def run_batch(stack, t, numbers, limit=3):
    body = {"name": "hooks", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": limit,
            "recipients": [{"to_number": n} for n in numbers]}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_batch_done(stack, bid, timeout=90):
    wait_until(lambda: stack.sql(
        "SELECT count(*) FROM recipients WHERE batch_id = %s"
        "   AND status NOT IN ('completed', 'failed', 'cancelled')", bid)[0][0] == 0,
        timeout, "every recipient to finish", interval=0.2)


def deliveries(stack, wid):
    return stack.sql("SELECT event_id, event_type, status, attempts, last_status"
                     "  FROM webhook_deliveries WHERE webhook_id = %s ORDER BY id", wid)


def test_each_finished_call_is_delivered_once_with_a_valid_signature(stack, receiver, deliverers):
    d = deliverers.start()
    before = deliverers.metrics(d)
    t = stack.tenant()
    rcv = receiver()
    w = register(stack, t, rcv.url)
    # ...0486 is busy and ...0404 no answer at the simulator: call.failed.
    numbers = ["+14155550486", "+14155550404"] + [f"+1415555{i:04d}" for i in range(1001, 1005)]
    bid = run_batch(stack, t, numbers)
    wait_batch_done(stack, bid)
    calls = {c: (st, dur) for c, st, dur in stack.sql(
        "SELECT id, status, duration_s FROM calls WHERE batch_id = %s", bid)}
    assert len(calls) == 6

    wait_until(lambda: len({r["event_id"] for r in rcv.got()}) >= 7, 60,
               "six call events and one batch event")
    # Anything sent twice would have been sent by now: every delivery is
    # recorded delivered, and the deliverer has claimed again since.
    wait_until(lambda: [r[2] for r in deliveries(stack, w["id"])] == ["delivered"] * 7, 15,
               "the seven deliveries to be recorded")
    deliverers.caught_up(d)
    got = rcv.got()
    assert Counter(r["event_id"] for r in got).most_common(1)[0][1] == 1, "an event came twice"
    assert len(got) == 7
    by_type = Counter()
    for r in got:
        assert r["path"] == "/hooks/batchcall"
        h = r["headers"]
        assert h["Content-Type"] == "application/json"
        verify(w["secret"], h, r["body"])
        with pytest.raises(AssertionError):   # the check can fail: a changed body does
            verify(w["secret"], h, r["body"].replace(b"}", b" }", 1))
        ev = json.loads(r["body"])
        assert ev["id"] == h["X-Batchcall-Event-Id"] and ev["type"] == h["X-Batchcall-Event-Type"]
        assert h["X-Batchcall-Attempt"] == "1"
        by_type[ev["type"]] += 1
        data = ev["data"]
        if ev["type"] == "batch.completed":
            assert data["batch_id"] == bid and data["total"] == 6
            assert data["completed"] + data["failed"] == 6
            continue
        assert ev["id"] == "evt_" + data["call_id"]
        status, dur = calls[data["call_id"]]
        assert data["status"] == status and data["duration_s"] == dur
        assert ev["type"] == ("call.completed" if status == "completed" else "call.failed")
        assert data["batch_id"] == bid and data["final"] is True
    assert by_type["call.failed"] >= 2 and by_type["batch.completed"] == 1
    assert by_type["call.completed"] + by_type["call.failed"] == 6

    rows = deliveries(stack, w["id"])
    assert len(rows) == 7 and {(r[2], r[3], r[4]) for r in rows} == {("delivered", 1, 200)}
    listed = requests.get(f"{stack.api}/v1/webhooks/{w['id']}/deliveries",
                          headers=bearer(t["api_key"]), timeout=10).json()
    assert listed["total"] == 7 and {x["status"] for x in listed["deliveries"]} == {"delivered"}
    assert {x["event_id"] for x in listed["deliveries"]} == {r["event_id"] for r in got}
    after = deliverers.metrics(d)
    key = 'webhook_deliveries_total{outcome="delivered"}'
    assert after[key] - before.get(key, 0) >= 7
    assert after["webhook_delivery_seconds_count"] - before.get("webhook_delivery_seconds_count", 0) >= 7


def test_failing_receiver_gets_retries_with_growing_gaps_then_success(stack, receiver, deliverers):
    d = deliverers.start()
    t = stack.tenant()
    rcv = receiver(lambda event_id, n: 500 if n <= 3 else 200)
    w = register(stack, t, rcv.url, events=("call.completed", "call.failed"))
    bid = run_batch(stack, t, ["+14155552001"])
    wait_batch_done(stack, bid)
    wait_until(lambda: any(r["n"] == 4 for r in rcv.got()), 30, "the fourth try")
    wait_until(lambda: [r[2] for r in deliveries(stack, w["id"])] == ["delivered"], 15,
               "the success to be recorded")
    deliverers.caught_up(d)
    got = rcv.got()
    assert [r["n"] for r in got] == [1, 2, 3, 4], "no try after the success"
    assert len({r["body"] for r in got}) == 1, "every try sends the same body"
    for r in got:
        verify(w["secret"], r["headers"], r["body"])
    assert [r["headers"]["X-Batchcall-Attempt"] for r in got] == ["1", "2", "3", "4"]
    gaps = [b["at"] - a["at"] for a, b in zip(got, got[1:])]
    print("gaps between tries:", [round(g, 3) for g in gaps])
    # Try k+1 waits at least 0.9 x base x 2^(k-1) after try k's answer...
    for k, g in enumerate(gaps):
        assert g >= 0.9 * BACKOFF_MS / 1000 * 2 ** k, gaps
    # ...so the gaps grow (by about 2x; the slack absorbs a loaded machine).
    assert gaps[0] < gaps[1] < gaps[2], gaps
    rows = deliveries(stack, w["id"])
    assert [(r[2], r[3], r[4]) for r in rows] == [("delivered", 4, 200)]


def read_dlq(stack, event_id, timeout=20):
    c = consume_from_start(stack, "webhooks-dlq", "test-dlq-" + event_id)
    found = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not found:
        m = c.poll(0.5)
        if m is not None and not m.error():
            dl = json.loads(m.value())
            if dl["event_id"] == event_id:
                found.append(dl)
    c.close()
    return found


def test_always_failing_receiver_is_dead_lettered_after_the_last_try(stack, receiver, deliverers):
    d = deliverers.start()
    before = deliverers.metrics(d)
    t = stack.tenant()
    healthy = {"on": False}
    rcv = receiver(lambda event_id, n: 200 if healthy["on"] else 503)
    w = register(stack, t, rcv.url, events=("call.completed", "call.failed"))
    bid = run_batch(stack, t, ["+14155552002"])
    wait_batch_done(stack, bid)
    wait_until(lambda: [r[2] for r in deliveries(stack, w["id"])] == ["dead"], 30,
               "the delivery to be dead-lettered")
    deliverers.caught_up(d)
    got = rcv.got()
    assert len(got) == MAX_ATTEMPTS, "exactly the configured number of tries"
    event_id = got[0]["event_id"]
    assert {r["event_id"] for r in got} == {event_id}
    (ev_id, _, status, attempts, last) = deliveries(stack, w["id"])[0]
    assert (ev_id, status, attempts, last) == (event_id, "dead", MAX_ATTEMPTS, 503)

    dl = read_dlq(stack, event_id)
    assert dl, "the dead letter is on the webhooks-dlq topic"
    assert dl[0]["attempts"] == MAX_ATTEMPTS and dl[0]["last_status_code"] == 503
    assert dl[0]["webhook_id"] == w["id"] and dl[0]["event"] == json.loads(got[0]["body"])

    listed = requests.get(f"{stack.api}/v1/webhooks/{w['id']}/deliveries?status=dead",
                          headers=bearer(t["api_key"]), timeout=10).json()
    assert listed["total"] == 1
    x = listed["deliveries"][0]
    assert (x["event_id"], x["attempts"], x["last_status_code"]) == (event_id, MAX_ATTEMPTS, 503)
    assert x["last_error"] == "HTTP 503" and x["next_attempt_at"] is None
    after = deliverers.metrics(d)
    assert after["webhook_dead_letters_total"] - before.get("webhook_dead_letters_total", 0) >= 1
    key = 'webhook_deliveries_total{outcome="failed"}'
    assert after[key] - before.get(key, 0) >= MAX_ATTEMPTS

    # Sent again on request once the receiver is fixed: from a first try.
    healthy["on"] = True
    r = requests.post(f"{stack.api}/v1/webhooks/{w['id']}/deliveries/{x['id']}/retry",
                      headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending" and r.json()["attempts"] == 0
    wait_until(lambda: [r[2] for r in deliveries(stack, w["id"])] == ["delivered"], 20,
               "the retried delivery")
    last = rcv.got()[-1]
    assert last["event_id"] == event_id and last["headers"]["X-Batchcall-Attempt"] == "1"
    verify(w["secret"], last["headers"], last["body"])


def test_a_dead_letter_left_in_the_outbox_is_relayed(stack, deliverers):
    """A dead letter whose send was never acknowledged (its deliverer died
    between the commit and Kafka's answer) stays in the outbox, and a
    deliverer's relay sends it once it is 3 s old, and deletes its row."""
    deliverers.start()
    event_id = "evt_left_" + str(int(time.time() * 1000))
    (oid,) = stack.sql("INSERT INTO outbox (topic, key, payload) VALUES (%s, 'wh_left', %s)"
                       " RETURNING id", f"{stack.prefix}.webhooks-dlq",
                       json.dumps({"delivery_id": "whd_0", "event_id": event_id}))[0]
    dl = read_dlq(stack, event_id)
    assert dl and dl[0]["delivery_id"] == "whd_0"
    wait_until(lambda: not stack.sql("SELECT 1 FROM outbox WHERE id = %s", oid), 10,
               "the relayed row to be deleted")


def test_killed_deliverer_still_delivers_after_restart(stack, receiver, deliverers):
    a = deliverers.start()
    t = stack.tenant()
    slow = {"on": True}
    # While slow, every request hangs past the moment the deliverer is killed.
    rcv = receiver(lambda event_id, n: (5, 200) if slow["on"] else 200)
    w = register(stack, t, rcv.url)
    first = run_batch(stack, t, [f"+1415555{i:04d}" for i in range(3001, 3005)])
    wait_until(lambda: rcv.got(), 30, "a request in flight")
    a.p.send_signal(signal.SIGKILL)
    a.p.wait()
    a.log.close()
    assert stack.sql("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = %s"
                     "   AND status = 'pending'", w["id"])[0][0] >= 1
    # With no deliverer running, a second batch's events wait in Kafka.
    second = run_batch(stack, t, [f"+1415555{i:04d}" for i in range(3101, 3104)])
    wait_batch_done(stack, first)
    wait_batch_done(stack, second)
    want = {"evt_" + c for (c,) in stack.sql(
        "SELECT id FROM calls WHERE batch_id IN (%s, %s)", first, second)}
    want |= {f"evt_{first}_0", f"evt_{second}_0"}
    assert len(want) == 9
    second_ids = {"evt_" + c for (c,) in stack.sql("SELECT id FROM calls WHERE batch_id = %s", second)}
    assert not second_ids & {r[0] for r in deliveries(stack, w["id"])}, \
        "nothing consumed the second batch's events while no deliverer ran"
    slow["on"] = False
    deliverers.start()

    def delivered():
        rows = deliveries(stack, w["id"])
        return len(rows) == 9 and all(r[2] == "delivered" for r in rows)
    wait_until(delivered, 60, "every event to be delivered after the restart", interval=0.5)
    got = rcv.got()
    # At least once: every event arrived; a try cut off by the kill may repeat.
    assert {r["event_id"] for r in got} == want
    for r in got:
        verify(w["secret"], r["headers"], r["body"])


def test_bad_registrations_get_documented_errors_and_change_nothing(stack, tmp_path):
    t, other = stack.tenant(), stack.tenant()
    h = bearer(t["api_key"])
    w = register(stack, other, "https://hooks.example.test/in")

    def count():
        return stack.sql("SELECT count(*) FROM webhooks WHERE tenant_id IN (%s, %s)",
                         t["tenant_id"], other["tenant_id"])[0][0]

    def state():
        return stack.sql("SELECT url, events, enabled, secret, updated_at FROM webhooks"
                         " WHERE id = %s", w["id"])

    n, s = count(), state()
    ev = ["call.completed"]
    bad = [
        ({"url": "not a url", "events": ev}, "url"),
        ({"url": "http://", "events": ev}, "url"),
        ({"url": "https:///no-host", "events": ev}, "url"),
        ({"url": "https://exa mple.test/x", "events": ev}, "url"),
        ({"url": "ftp://files.example.test/x", "events": ev}, "url"),
        ({"url": "https://user:pw@example.test/x", "events": ev}, "url"),
        ({"url": "https://example.test/" + "a" * 3000, "events": ev}, "url"),
        ({"url": 42, "events": ev}, "url"),
        ({"events": ev}, "url"),
        ({"url": "https://example.test/x"}, "events"),
        ({"url": "https://example.test/x", "events": []}, "events"),
        ({"url": "https://example.test/x", "events": ["call.queued"]}, "events"),
        ({"url": "https://example.test/x", "events": "call.completed"}, "events"),
    ]
    for body, field in bad:
        r = requests.post(stack.api + "/v1/webhooks", headers=h, json=body, timeout=10)
        assert r.status_code == 400, (body, r.text)
        b = r.json()
        assert b["code"] == "invalid_request" and b["detail"] == field and b["error"], b
    r = requests.post(stack.api + "/v1/webhooks", headers=h, data=b"{nope", timeout=10)
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"
    for hdrs in ({}, bearer("bc_sk_nope_nope")):
        r = requests.post(stack.api + "/v1/webhooks", headers=hdrs,
                          json={"url": "https://example.test/x", "events": ev}, timeout=10)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text
    r = requests.get(stack.api + "/v1/webhooks", timeout=10)
    assert r.status_code == 401
    # Another tenant's endpoint does not exist for this one.
    for method, path, body in [
            ("GET", f"/v1/webhooks/{w['id']}", None),
            ("PATCH", f"/v1/webhooks/{w['id']}", {"enabled": False}),
            ("PATCH", f"/v1/webhooks/{w['id']}", {"url": "https://evil.example.test/x"}),
            ("DELETE", f"/v1/webhooks/{w['id']}", None),
            ("GET", f"/v1/webhooks/{w['id']}/deliveries", None),
            ("POST", f"/v1/webhooks/{w['id']}/deliveries/whd_1/retry", None)]:
        r = requests.request(method, stack.api + path, headers=h, json=body, timeout=10)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, path, r.text)
        assert other["tenant_id"] not in r.text and "whsec_" not in r.text
    # The owner's own bad update is refused too.
    oh = bearer(other["api_key"])
    r = requests.patch(f"{stack.api}/v1/webhooks/{w['id']}", headers=oh,
                       json={"url": "javascript:alert(1)"}, timeout=10)
    assert r.status_code == 400 and r.json()["detail"] == "url"
    r = requests.patch(f"{stack.api}/v1/webhooks/{w['id']}", headers=oh,
                       json={"enabled": "yes"}, timeout=10)
    assert r.status_code == 400 and r.json()["detail"] == "enabled"
    for q in ("status=lost", "limit=0", "limit=201"):
        r = requests.get(f"{stack.api}/v1/webhooks/{w['id']}/deliveries?{q}", headers=oh, timeout=10)
        assert r.status_code == 400, q
    for did in ("whd_999999", "whd_x", "42"):
        r = requests.post(f"{stack.api}/v1/webhooks/{w['id']}/deliveries/{did}/retry",
                          headers=oh, timeout=10)
        assert r.status_code == 404, (did, r.text)
    assert count() == n and state() == s, "a refused request changed something"

    # With https required (the default outside local stacks), http is refused.
    api, _, url = api_proc(stack, tmp_path, "api-https", BC_WEBHOOK_REQUIRE_HTTPS="1")
    try:
        r = requests.post(url + "/v1/webhooks", headers=h,
                          json={"url": "http://hooks.example.test/in", "events": ev}, timeout=10)
        assert r.status_code == 400 and r.json()["detail"] == "url"
        assert "https" in r.json()["error"]
        assert count() == n
        r = requests.post(url + "/v1/webhooks", headers=h,
                          json={"url": "https://hooks.example.test/in", "events": ev}, timeout=10)
        assert r.status_code == 201, r.text
    finally:
        assert api.stop() == 0


def test_private_addresses_are_refused_when_registered_and_when_delivered(
        stack, receiver, deliverers, tmp_path):
    """Outside a local stack (BC_WEBHOOK_ALLOW_PRIVATE off, the default) a
    tenant cannot point a webhook at our own network: an address of
    loopback, a private or link-local range (cloud metadata) is refused
    when registered, and a name that resolves to one is refused at
    delivery, before connecting."""
    t = stack.tenant()
    h = bearer(t["api_key"])
    rcv = receiver()
    count = lambda: stack.sql("SELECT count(*) FROM webhooks WHERE tenant_id = %s", t["tenant_id"])[0][0]
    api, _, url = api_proc(stack, tmp_path, "api-public", BC_WEBHOOK_ALLOW_PRIVATE="0")
    try:
        for bad in (rcv.url, "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/in",
                    "http://[::1]:8080/in", "http://[::ffff:192.168.0.1]/in",
                    f"http://localhost:{rcv.server.server_address[1]}/hooks/batchcall"):
            r = requests.post(url + "/v1/webhooks", headers=h,
                              json={"url": bad, "events": ["call.completed"]}, timeout=10)
            assert r.status_code == 400 and r.json()["detail"] == "url", (bad, r.text)
            assert "loopback, private or link-local" in r.json()["error"]
        assert count() == 0
        r = requests.post(url + "/v1/webhooks", headers=h,
                          json={"url": "http://hooks.example.test/in", "events": ["call.completed"]},
                          timeout=10)
        assert r.status_code == 201, r.text
        requests.delete(f"{url}/v1/webhooks/{r.json()['id']}", headers=h, timeout=10)
    finally:
        assert api.stop() == 0

    # A name is only known at delivery: "localhost" registered where private
    # hosts are allowed, delivered by a scheduler where they are not.
    w = register(stack, t, f"http://localhost:{rcv.server.server_address[1]}/hooks/batchcall",
                 events=("call.completed", "call.failed"))
    d = deliverers.start_with(BC_WEBHOOK_ALLOW_PRIVATE="0")
    bid = run_batch(stack, t, ["+14155551101"])
    wait_batch_done(stack, bid)
    errs = wait_until(lambda: stack.sql("SELECT last_error FROM webhook_deliveries"
                                        " WHERE webhook_id = %s AND attempts >= 1", w["id"]) or None,
                      30, "a try of the delivery")
    assert "loopback, private or link-local" in errs[0][0], errs
    # Refused again at the retry, and nothing reached the receiver.
    errs = wait_until(lambda: stack.sql("SELECT last_error FROM webhook_deliveries"
                                        " WHERE webhook_id = %s AND attempts >= 2", w["id"]) or None,
                      30, "a second try of the delivery")
    assert "loopback, private or link-local" in errs[0][0], errs
    deliverers.caught_up(d)
    assert rcv.got() == []


def test_a_batch_its_latest_at_ended_sends_batch_completed_once(stack, receiver, deliverers):
    """When the batch's last recipients expire rather than end a call, no
    call-result says the batch is over: the expiry sweep queues its
    batch.completed, with the expired count, once."""
    from test_dispatch import create, dials
    from test_pause import pause_until_settled
    d = deliverers.start()
    t = stack.tenant(concurrency=4)
    rcv = receiver()
    w = register(stack, t, rcv.url, events=("batch.completed",))
    # Told every call's end: once it has them all, the deliverer has read
    # every event a batch.completed could come from.
    probe = register(stack, t, receiver().url, events=("call.completed", "call.failed"))
    numbers = [f"+1452{i:07d}" for i in range(20)]
    bid = create(stack, t, numbers, limit=1, ttl=3600)
    wait_until(lambda: len(dials(stack, bid)) >= 2, 30, "the batch to be dialing")
    pause_until_settled(stack, t, bid)
    dialed = len(dials(stack, bid))
    assert stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s", bid)[0][0] == dialed
    wait_until(lambda: [r[2] for r in deliveries(stack, probe["id"])] == ["delivered"] * dialed,
               30, "every call's end to be told")
    scheduler_ticked(f"http://127.0.0.1:{stack.procs['scheduler'].port}")   # its expiry sweep
    deliverers.caught_up(d)
    assert rcv.got() == []            # paused, not over
    stack.sql("INSERT INTO clock_offset (one, offset_s) VALUES (true, 7200)"
              " ON CONFLICT (one) DO UPDATE SET offset_s = excluded.offset_s")
    try:
        got = wait_until(lambda: rcv.got() or None, 30, "batch.completed")
        # A second one would be sent by now: the expiry sweep ran again
        # and the deliverer claimed since.
        scheduler_ticked(f"http://127.0.0.1:{stack.procs['scheduler'].port}")
        deliverers.caught_up(d)
    finally:
        stack.sql("DELETE FROM clock_offset")
    got = rcv.got()
    assert len(got) == 1, got
    verify(w["secret"], got[0]["headers"], got[0]["body"])
    ev = json.loads(got[0]["body"])
    assert ev["type"] == "batch.completed" and ev["id"].startswith(f"evt_{bid}_")
    data = ev["data"]
    assert data["batch_id"] == bid and data["total"] == len(numbers)
    assert data["expired"] == len(numbers) - dialed
    assert data["completed"] + data["failed"] == dialed and data["cancelled"] == 0
    assert deliverers.metrics(d).get('webhook_deliveries_total{outcome="delivered"}', 0) >= 1


def test_an_event_it_cannot_read_is_skipped_and_those_beside_it_delivered(
        stack, receiver, deliverers):
    """The intake sends what it consumed in one statement, and the database
    parses it. An event that cannot be sent (it holds a NUL) is logged and
    left out; one the database refuses (cut short, or a date that does not
    exist) fails the batch, which is then tried event by event, so that one
    alone is logged and skipped. The events beside them are delivered, once
    each. The hand-made events go to topics of their own (a prefix under
    the stack's, removed with it): on the stack's call-results topic they
    broke every later test that reads the whole topic."""
    from confluent_kafka import Producer
    tag = os.urandom(4).hex()
    prefix = f"{stack.prefix}.cut{tag}"
    subprocess.run([os.path.join(BUILD, "batchcall"), "topics", "--partitions", "1"],
                   env=dict(stack.env, BC_TOPIC_PREFIX=prefix), check=True,
                   capture_output=True, timeout=60)
    d = deliverers.start_with(BC_TOPIC_PREFIX=prefix)
    t = stack.tenant()
    rcv = receiver()
    w = register(stack, t, rcv.url, events=("call.completed",))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def event(call, ended_at=now):
        return json.dumps({
            "schema": "batchcall.call-result/v2", "call_id": f"call_{tag}_{call}",
            "batch_id": f"bat_{tag}", "tenant_id": t["tenant_id"], "recipient_id": f"rcp_{tag}",
            "attempt": 1, "carrier_status": "completed", "end_reason": "completed",
            "answered_by": None, "duration_s": 2, "to_number": "+14155551000",
            "from_number": t["from_number"], "recipient_status": "completed", "final": True,
            "retry_at": None, "lease_released": True, "ended_at": ended_at}).encode()

    bodies = [event("a"), b'{"schema": "batchcall.call-result/v2", "call_id": "call_cut',
              event("feb", ended_at="2026-02-31T00:00:00Z"), event("nul")[:-1] + b"\0}",
              event("b")]
    # One request, so the intake most likely reads all four in one batch;
    # either way each must end as asserted.
    p = Producer({"bootstrap.servers": stack.brokers, "linger.ms": 200})
    since = os.path.getsize(d.log_path)
    for b in bodies:
        p.produce(f"{prefix}.call-results", key=f"bat_{tag}".encode(), value=b)
    assert p.flush(10) == 0

    wait_until(lambda: len(rcv.got()) >= 2, 30, "the two good events")
    wait_until(lambda: len(d.events("webhook.event_rejected", since)) >= 2, 10,
               "the refused events' logs")
    deliverers.caught_up(d)
    got = sorted(json.loads(r["body"])["data"]["call_id"] for r in rcv.got())
    assert got == [f"call_{tag}_a", f"call_{tag}_b"]
    assert len(d.events("webhook.event_malformed", since)) == 1
    rejected = sorted(e["error"] for e in d.events("webhook.event_rejected", since))
    assert len(rejected) == 2
    assert "2026-02-31" in rejected[0] and "json" in rejected[1], rejected
    assert [r[2] for r in deliveries(stack, w["id"])] == ["delivered", "delivered"]
    assert not d.events("webhook.enqueue_failed", since)
