"""The reference agent (tests/agent/ref_agent.py) on its own, without the
stack: a websockets client speaks Twilio Media Streams to it over TLS, and a
small stand-in for batchcall's API answers its context and report calls."""
import asyncio
import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import ROOT, free_port, wait_until

AGENT = os.path.join(ROOT, "tests", "agent", "ref_agent.py")
CERT = os.path.join(ROOT, ".local", "tls", "agent.crt")
KEY = os.path.join(ROOT, ".local", "tls", "agent.key")


class FakeApi:
    """GET /v1/calls/{id}/context and POST /v1/calls/{id}/report, recorded."""

    def __init__(self):
        self.requests = []
        api = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                api.requests.append({"method": self.command, "path": self.path,
                                     "auth": self.headers.get("Authorization"), "body": body})
                if self.headers.get("Authorization") != "Bearer tok-good":
                    return self.answer(401, {"error": "bad token"})
                parts = self.path.split("/")     # ['', 'v1', 'calls', id, what]
                if self.command == "GET" and parts[4] == "context":
                    return self.answer(200, {"call_id": parts[3], "variables": {"name": "Ada"}})
                if self.command == "POST" and parts[4] == "report":
                    return self.answer(202, {"ok": True})
                self.answer(404, {})

            do_GET = do_POST = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Agent:
    def __init__(self, tmp, api=""):
        if not os.path.exists(CERT):
            pytest.fail(f"{CERT} is missing: run deploy/local/infra.sh up (install-deps.sh makes it)")
        self.port, self.cport = free_port(), free_port()
        self.log_path = os.path.join(str(tmp), f"agent-{self.port}.log")
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen([sys.executable, AGENT, "--port", str(self.port),
                                   "--control-port", str(self.cport), "--cert", CERT,
                                   "--key", KEY, "--api", api],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        self.control = f"http://127.0.0.1:{self.cport}"
        self.stream = f"wss://127.0.0.1:{self.port}/stream"

        def up():
            assert self.p.poll() is None, self.logs()
            try:
                return requests.get(self.control + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_until(up, 15, "the reference agent's /healthz")

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def get(self, path):
        r = requests.get(self.control + path, timeout=5)
        r.raise_for_status()
        return r.json()

    def post(self, path, body=None):
        return requests.post(self.control + path, json=body, timeout=5)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


@pytest.fixture(scope="module")
def fake_api():
    a = FakeApi()
    yield a
    a.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory, fake_api):
    a = Agent(tmp_path_factory.mktemp("agent"), fake_api.url)
    yield a
    assert a.stop() == 0, a.logs()


@pytest.fixture(autouse=True)
def clean(request):
    if "agent" in request.fixturenames:
        a = request.getfixturevalue("agent")
        a.post("/reset")
        a.post("/behavior", {"hangup_after_start": False, "fetch_context": False, "report": None})
    yield


def tls_client():
    ctx = ssl.create_default_context(cafile=CERT)
    return ctx


def frames(call_sid, stream_sid, params, media=3):
    """What Twilio sends on one stream, in order."""
    out = [{"event": "connected", "protocol": "Call", "version": "1.0.0"},
           {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
            "start": {"streamSid": stream_sid, "callSid": call_sid, "accountSid": "AC" + "0" * 32,
                      "tracks": ["inbound"], "customParameters": params,
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}}}]
    for i in range(media):
        out.append({"event": "media", "sequenceNumber": str(i + 2), "streamSid": stream_sid,
                    "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(20 * i),
                              "payload": "/" * 160}})
    out.append({"event": "stop", "sequenceNumber": str(media + 2), "streamSid": stream_sid,
                "stop": {"accountSid": "AC" + "0" * 32, "callSid": call_sid}})
    return [json.dumps(f) for f in out]


async def send_all(url, msgs, ctx=None):
    # open_timeout: websockets gives a handshake 10 s by default, and 300 TLS
    # handshakes at once on one Python thread took longer than that on a
    # loaded 2-core machine (seen in CI). What these tests check is that
    # every stream is served, not how fast a crowd of handshakes is.
    async with connect(url, ssl=ctx or tls_client(), open_timeout=120) as ws:
        for m in msgs:
            await ws.send(m)


def starts_for(agent, pred, n=1, timeout=10):
    def got():
        s = [r for r in agent.get("/starts")["starts"] if pred(r)]
        return s if len(s) >= n else None
    return wait_until(got, timeout, f"{n} matching start record(s)")


def test_stream_recorded_with_exact_custom_parameters(agent):
    params = {"bc_call_id": "ac_abc", "bc_token": "tok", "first_name": "Zoë",
              "note": "<b>&\"quoted\"</b>", "empty": ""}
    asyncio.run(send_all(agent.stream, frames("CA1", "MZ1", params, media=5)))
    [rec] = starts_for(agent, lambda r: r["stop"])
    assert rec["call_sid"] == "CA1" and rec["stream_sid"] == "MZ1"
    assert rec["custom_parameters"] == params
    assert rec["media"] == 5 and rec["stop"] is True
    assert abs(rec["at"] - time.time()) < 30
    assert rec["path"] == "/stream"
    st = agent.get("/stats")
    assert {k: st[k] for k in ("connections", "connected", "starts", "media", "stops")} == \
        {"connections": 1, "connected": 1, "starts": 1, "media": 5, "stops": 1}
    assert st["violations"] == []


def test_any_path_is_a_stream(agent):
    asyncio.run(send_all(f"wss://127.0.0.1:{agent.port}/some/other/path?x=1",
                         frames("CA2", "MZ2", {}, media=0)))
    [rec] = starts_for(agent, lambda r: r["stop"])
    assert rec["path"] == "/some/other/path?x=1"


def test_violations_recorded(agent):
    start = frames("CA3", "MZ3", {"a": "b"}, media=1)
    # start before connected, then a second start, invalid JSON, media
    # before start (on another stream).
    asyncio.run(send_all(agent.stream, [start[1], start[1], "{not json", start[3]]))
    asyncio.run(send_all(agent.stream, [start[0], start[2]]))
    kinds = wait_until(lambda: (lambda v: v if len(v) >= 4 else None)(
        [x["kind"] for x in agent.get("/stats")["violations"]]), 10, "four violations")
    assert sorted(kinds) == sorted(["start before connected", "second start", "invalid JSON",
                                    "media before start"])


def test_twiml_on_the_stream_port(agent):
    q = {"bc_call_id": "ac_x1", "bc_token": "t<o>k&\"'", "name": "O'Brien & <Sons>"}
    r = requests.get(f"https://127.0.0.1:{agent.port}/twiml?" + urllib.parse.urlencode(q),
                     headers={"X-Twilio-Signature": "sig=="}, verify=CERT, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "Response"
    [connect_el] = list(root)
    assert connect_el.tag == "Connect"
    [stream] = list(connect_el)
    assert stream.tag == "Stream" and stream.get("url") == agent.stream
    got = {p.get("name"): p.get("value") for p in stream if p.tag == "Parameter"}
    assert got == q
    assert b"&lt;Sons&gt;" in r.content          # escaped, not raw
    fetches = agent.get("/twiml-fetches")["twiml_fetches"]
    assert len(fetches) == 1
    assert fetches[0]["query"] == q and fetches[0]["signature"] == "sig=="
    assert fetches[0]["method"] == "GET"
    assert agent.get("/stats")["twiml_fetches"] == 1
    # A plain GET elsewhere is not a stream and not TwiML.
    r = requests.get(f"https://127.0.0.1:{agent.port}/nope", verify=CERT, timeout=5)
    assert r.status_code == 404


def test_twiml_post_with_form_on_the_control_port(agent):
    r = requests.post(agent.control + "/twiml?bc_call_id=ac_y", data={"CallSid": "CA9"},
                      headers={"X-Twilio-Signature": "s2"}, timeout=5)
    assert r.status_code == 200
    stream = ET.fromstring(r.content).find("Connect/Stream")
    assert stream.get("url") == agent.stream
    [f] = agent.get("/twiml-fetches")["twiml_fetches"]
    assert f["method"] == "POST" and f["form"] == {"CallSid": "CA9"} and f["signature"] == "s2"


def test_behavior_fetch_context_and_report(agent, fake_api):
    fake_api.requests.clear()
    r = agent.post("/behavior", {"fetch_context": True, "report": {"outcome": "done", "n": 2}})
    assert r.status_code == 200
    assert r.json() == {"hangup_after_start": False, "fetch_context": True,
                        "report": {"outcome": "done", "n": 2}}
    asyncio.run(send_all(agent.stream, frames("CA4", "MZ4",
                                              {"bc_call_id": "ac_ctx", "bc_token": "tok-good"})))
    asyncio.run(send_all(agent.stream, frames("CA5", "MZ5",
                                              {"bc_call_id": "ac_bad", "bc_token": "nope"})))
    recs = starts_for(agent, lambda r: "report_status" in r and "context_status" in r, n=2)
    by = {r["call_sid"]: r for r in recs}
    assert by["CA4"]["context_status"] == 200
    assert by["CA4"]["context"] == {"call_id": "ac_ctx", "variables": {"name": "Ada"}}
    assert by["CA4"]["report_status"] == 202
    assert by["CA5"]["context_status"] == 401 and by["CA5"]["report_status"] == 401
    seen = {(q["method"], q["path"], q["auth"]) for q in fake_api.requests}
    assert ("GET", "/v1/calls/ac_ctx/context", "Bearer tok-good") in seen
    assert ("POST", "/v1/calls/ac_ctx/report", "Bearer tok-good") in seen
    [rep] = [q for q in fake_api.requests if q["path"] == "/v1/calls/ac_ctx/report"]
    assert rep["body"] == {"outcome": "done", "n": 2}
    # Missing keys keep their value; bad values are refused.
    assert agent.post("/behavior", {"report": None}).json()["fetch_context"] is True
    assert agent.post("/behavior", {"fetch_context": "yes"}).status_code == 400
    assert agent.post("/behavior", {"bogus": 1}).status_code == 400


def test_behavior_hangup_after_start(agent):
    agent.post("/behavior", {"hangup_after_start": True})
    msgs = frames("CA6", "MZ6", {})

    async def run():
        async with connect(agent.stream, ssl=tls_client()) as ws:
            await ws.send(msgs[0])
            await ws.send(msgs[1])
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
    asyncio.run(run())
    [rec] = starts_for(agent, lambda r: r["call_sid"] == "CA6")
    assert rec["hung_up"] is True
    agent.post("/behavior", {"hangup_after_start": False})


def test_many_concurrent_streams(agent):
    n = 300

    async def one(i, ctx):
        await send_all(agent.stream, frames(f"CAm{i}", f"MZm{i}", {"i": str(i)}, media=10), ctx)

    async def run():
        ctx = tls_client()
        await asyncio.gather(*(one(i, ctx) for i in range(n)))
    t0 = time.monotonic()
    asyncio.run(run())
    took = time.monotonic() - t0
    recs = starts_for(agent, lambda r: r["stop"], n=n, timeout=30)
    assert sorted(int(r["custom_parameters"]["i"]) for r in recs) == list(range(n))
    st = agent.get("/stats")
    assert st["media"] == 10 * n and st["violations"] == []
    print(f"{n} concurrent TLS streams in {took:.2f}s")


def test_sigterm_with_open_streams_exits_0(tmp_path):
    a = Agent(tmp_path)
    msgs = frames("CA7", "MZ7", {})

    async def run():
        async with connect(a.stream, ssl=tls_client()) as ws:
            await ws.send(msgs[0])
            await ws.send(msgs[1])
            wait_until(lambda: a.get("/stats")["starts"] == 1, 10, "the start")
            t0 = time.monotonic()
            a.p.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return time.monotonic() - t0
    asyncio.run(run())
    assert a.p.wait(15) == 0
    a.log.close()
    lines = [json.loads(x) for x in a.logs().splitlines() if x.strip()]
    assert [x["event"] for x in lines] == ["agent_listening", "agent_stopping", "agent_stopped"]
