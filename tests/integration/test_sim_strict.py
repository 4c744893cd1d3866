"""The carrier simulator is at least as strict as Twilio about a create, and
runs a call's TwiML once it is answered as Twilio does: Media Streams to the
agent over TLS WebSocket, a Url's TwiML fetched signed, <Dial><Sip>
recorded, async answering-machine detection, and a live call updated.
Only the simulator runs here (no database, no Kafka): each test starts its
own, with a WebSocket agent and an HTTP receiver of its own in this process."""
import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import threading
import urllib.parse
from xml.sax.saxutils import quoteattr

import pytest
import requests
from websockets.asyncio.server import serve

from conftest import BUILD, Proc, free_port, sim_map_hash, wait_until

ACCOUNT, TOKEN = "ACsimulator", "sim-auth-token"
# Values that would break TwiML built by hand; escaped in the XML, they
# must reach the agent as the plain text they are.
TRICKY = {"agent_id": "ag_1", "evil": "</Parameter><Hangup/>", "quote": '"><', "amp": "a&b c"}


def signature(url, params):
    """X-Twilio-Signature: HMAC-SHA1 of the URL and the sorted POST params."""
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


class Agent:
    """A Media Streams agent: a TLS WebSocket server recording every message
    of every connection; with close_after_start it hangs up first."""

    def __init__(self, cert, key):
        self.port = free_port()
        self.conns = []
        self.close_after_start = False
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        import ssl
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl.load_cert_chain(cert, key)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def _handler(self, ws):
        msgs = []
        self.conns.append({"path": ws.request.path, "msgs": msgs, "closed": False})
        try:
            async for m in ws:
                msgs.append(json.loads(m))
                if self.close_after_start and msgs[-1]["event"] == "start":
                    await ws.close()
                    break
        finally:
            self.conns[-1]["closed"] = True

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.done = asyncio.Event()
            async with serve(self._handler, "127.0.0.1", self.port, ssl=self.ssl):
                self.ready.set()
                await self.done.wait()
        self.loop.run_until_complete(main())

    def url(self, path="/media", host="localhost"):
        return f"wss://{host}:{self.port}{path}"

    def stop(self):
        self.loop.call_soon_threadsafe(self.done.set)
        self.thread.join(10)


class Receiver:
    """Status callbacks, TwiML fetches and AMD callbacks: every request
    recorded; /twiml answers self.twiml."""

    def __init__(self):
        self.requests = []
        self.twiml = "<Response/>"
        self.twiml_status = 200
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode() if n else ""
                rec.requests.append({"method": self.command, "path": self.path,
                                     "sig": self.headers.get("X-Twilio-Signature"),
                                     "form": dict(urllib.parse.parse_qsl(body))})
                out = rec.twiml.encode() if self.path.startswith("/twiml") else b""
                self.send_response(rec.twiml_status if self.path.startswith("/twiml") else 200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _any

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.base = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def of(self, prefix):
        return [r for r in self.requests if r["path"].startswith(prefix)]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("agent-tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def agent(certs):
    a = Agent(*certs)
    yield a
    a.stop()


@pytest.fixture
def rx():
    r = Receiver()
    yield r
    r.srv.shutdown()


class Sim:
    def __init__(self, port, proc):
        self.base = f"http://127.0.0.1:{port}"
        self.proc = proc

    def create(self, pairs):
        return requests.post(f"{self.base}/2010-04-01/Accounts/{ACCOUNT}/Calls.json",
                             auth=(ACCOUNT, TOKEN), data=pairs, timeout=10)

    def update(self, sid, pairs):
        return requests.post(f"{self.base}/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json",
                             auth=(ACCOUNT, TOKEN), data=pairs, timeout=10)

    def call(self, sid):
        return requests.get(f"{self.base}/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json",
                            auth=(ACCOUNT, TOKEN), timeout=10).json()

    def ledger(self, what=""):
        return requests.get(f"{self.base}/ledger{what}", timeout=10).json()

    def dial(self, batch):
        dials = self.ledger(f"/dials?batch_id={batch}")["dials"]
        assert len(dials) == 1
        return dials[0]

    def ended(self, sid, timeout=20):
        return wait_until(lambda: self.call(sid)["status"] in ("completed", "canceled", "busy",
                                                               "no-answer", "failed"),
                          timeout, f"call {sid} to end")


def start_sim(tmp_path, ca, name="sim", ring="1"):
    """A simulator: a simulated second is 20 ms, every call answered after
    ring (1) s and talking 100 s (2 s real) unless its TimeLimit says less."""
    port = free_port()
    env = dict(os.environ, BC_SIM_PORT=str(port), BC_SIM_MS_PER_SECOND="20",
               BC_SIM_RING_SECONDS=ring, BC_SIM_TALK_SECONDS="100", BC_SIM_MIX="completed=1",
               BC_SIM_AGENT_CA=ca, BC_LOG_LEVEL="info")
    p = Proc(name, [os.path.join(BUILD, "batchcall-carrier-sim")], env, str(tmp_path))
    s = Sim(port, p)
    wait_until(lambda: _ready(s.base), 10, "the simulator")
    return s


@pytest.fixture
def sim(certs, tmp_path):
    s = start_sim(tmp_path, certs[0])
    yield s
    assert s.proc.stop() == 0, "\n".join(s.proc.log_lines()[-30:])


def _ready(base):
    try:
        return requests.get(base + "/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def base_form(rx, batch="b1", to="+14155550100"):
    return [("To", to), ("From", "+14155550199"),
            ("StatusCallback", f"{rx.base}/cb?batch_id={batch}&call_id=c_{batch}"),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "ringing"), ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"), ("Timeout", "30")]


def stream_twiml(url, params):
    ps = "".join(f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in params.items())
    return f'<Response><Connect><Stream url={quoteattr(url)}>{ps}</Stream></Connect></Response>'


def refused(sim, r, code):
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == code and body["status"] == 400, body
    return body


# ---- refused at create -------------------------------------------------------

def test_the_old_create_without_url_or_twiml_is_refused_as_twilio_does(sim, rx):
    r = sim.create(base_form(rx) + [("TimeLimit", "60"), ("MachineDetection", "Enable")])
    refused(sim, r, 21205)
    assert sim.ledger()["dials"] == 0
    last = sim.ledger("/refused")["refused"][-1]
    assert last["code"] == 21205 and last["status"] == 400
    assert last["params"]["StatusCallbackEvent"] == ["ringing", "answered", "completed"]
    assert last["params"]["To"] == "+14155550100"


def test_twiml_over_4000_characters_is_refused(sim, rx):
    long = "<Response><Say>" + "x" * 4000 + "</Say></Response>"
    refused(sim, sim.create(base_form(rx) + [("Twiml", long)]), 32018)
    # 4,000 characters exactly is fine, counted in characters, not bytes.
    pad = 4000 - len("<Response><Say></Say></Response>")
    ok = "<Response><Say>" + "é" * pad + "</Say></Response>"
    assert sim.create(base_form(rx) + [("Twiml", ok)]).status_code == 201


def test_twiml_that_is_not_a_response_document_is_refused(sim, rx):
    refused(sim, sim.create(base_form(rx) + [("Twiml", "<Response><Say>hi</Response>")]), 12100)
    refused(sim, sim.create(base_form(rx) + [("Twiml", "hello")]), 12100)
    refused(sim, sim.create(base_form(rx) + [("Twiml", "<Resp><Hangup/></Resp>")]), 12102)
    assert sim.ledger()["dials"] == 0


def test_a_stream_that_is_not_wss_is_refused(sim, rx):
    body = refused(sim, sim.create(base_form(rx) + [
        ("Twiml", stream_twiml("ws://127.0.0.1:9/media", {}))]), 31922)
    assert "wss" in body["message"]


def test_a_url_that_is_not_absolute_http_is_refused(sim, rx):
    body = refused(sim, sim.create(base_form(rx) + [("Url", "/twiml")]), 21205)
    assert body["message"].startswith("Url is not a valid URL")
    refused(sim, sim.create(base_form(rx) + [("Url", "ftp://example.com/x")]), 21205)


def test_an_unknown_parameter_is_refused(sim, rx):
    body = refused(sim, sim.create(base_form(rx) + [("Twiml", "<Response/>"),
                                                    ("StatusCalback", "x")]), 20001)
    assert "StatusCalback" in body["message"]


def test_sip_uris_and_headers_twilio_would_not_use_are_refused(sim, rx):
    bad_uri = "<Response><Dial><Sip>tel:+14155550100</Sip></Dial></Response>"
    refused(sim, sim.create(base_form(rx) + [("Twiml", bad_uri)]), 13243)
    bad_hdr = "<Response><Dial><Sip>sip:agent@example.com?Y-Id=1</Sip></Dial></Response>"
    refused(sim, sim.create(base_form(rx) + [("Twiml", bad_hdr)]), 13252)
    assert len(sim.ledger("/refused")["refused"]) == 2


# ---- run on answer -----------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_stream_gets_twilio_media_streams_messages_with_its_parameters(sim, rx, agent, host):
    n0 = len(agent.conns)
    r = sim.create(base_form(rx) + [("Twiml", stream_twiml(agent.url("/media?x=1", host), TRICKY)),
                                    ("TimeLimit", "15")])
    assert r.status_code == 201, r.text
    sid = r.json()["sid"]
    sim.ended(sid)
    wait_until(lambda: len(agent.conns) > n0 and agent.conns[n0]["closed"], 10, "the stream to close")
    conn = agent.conns[n0]
    assert conn["path"] == "/media?x=1"
    msgs = conn["msgs"]
    events = [m["event"] for m in msgs]
    assert events[0] == "connected" and msgs[0] == {"event": "connected", "protocol": "Call",
                                                    "version": "1.0.0"}
    assert events[1] == "start" and events[-1] == "stop"
    assert set(events[2:-1]) == {"media"} and 1 <= len(events[2:-1]) <= 10
    start = msgs[1]
    assert start["sequenceNumber"] == "1"
    assert start["start"]["customParameters"] == TRICKY
    assert start["start"]["callSid"] == sid and start["start"]["accountSid"] == ACCOUNT
    assert start["start"]["tracks"] == ["inbound"]
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                             "channels": 1}
    ssid = start["streamSid"]
    assert ssid.startswith("MZ") and len(ssid) == 34 and start["start"]["streamSid"] == ssid
    media = msgs[2]
    assert base64.b64decode(media["media"]["payload"]) == b"\xff" * 160
    assert media["media"]["track"] == "inbound" and media["media"]["chunk"] == "1"
    assert [int(m["sequenceNumber"]) for m in msgs[1:]] == list(range(1, len(msgs)))
    assert msgs[-1]["stop"] == {"accountSid": ACCOUNT, "callSid": sid}
    assert all(m.get("streamSid") == ssid for m in msgs[1:])
    # The call lasted its talk time (TimeLimit 15 s), not less.
    assert sim.call(sid)["duration"] == "15"
    ag = wait_until(lambda: (lambda a: a if a["stream_stops"] else None)(sim.ledger()["agent"]),
                    10, "the stop in the ledger")
    assert ag["connections"] == 1 and ag["stream_starts"] == 1 and ag["stream_stops"] == 1
    assert ag["errors"] == 0
    d = sim.dial("b1")
    assert d["agent"] == {"kind": "stream", "target": agent.url("/media?x=1", host), "connected": True,
                          "error": None, "played": [], "sip_headers": {}}
    assert d["params"]["Twiml"].startswith("<Response><Connect>")
    assert d["params"]["StatusCallbackEvent"] == ["ringing", "answered", "completed"]


def test_when_the_agent_hangs_up_first_the_twiml_goes_on(sim, rx, agent):
    agent.close_after_start = True
    try:
        twiml = stream_twiml(agent.url(), {"a": "1"}).replace(
            "</Response>", "<Say>bye now</Say></Response>")
        sid = sim.create(base_form(rx) + [("Twiml", twiml)]).json()["sid"]
        sim.ended(sid, timeout=10)
    finally:
        agent.close_after_start = False
    call = sim.call(sid)
    # Talk time was 100 s; the agent's hang-up and one Say ended it sooner.
    assert call["status"] == "completed" and int(call["duration"]) < 10
    d = sim.dial("b1")
    assert d["agent"]["played"] == ["say:bye now"] and d["agent"]["connected"] is True
    assert sim.ledger()["agent"]["plays"] == 1


def test_a_stream_that_cannot_connect_is_an_error_and_the_call_ends(sim, rx):
    dead = free_port()
    sid = sim.create(base_form(rx) + [("Twiml", stream_twiml(f"wss://127.0.0.1:{dead}/m", {}))]
                     ).json()["sid"]
    sim.ended(sid, timeout=10)
    assert int(sim.call(sid)["duration"]) < 5
    d = sim.dial("b1")
    assert d["agent"]["kind"] == "stream" and d["agent"]["connected"] is False
    assert d["agent"]["error"] == 31902
    assert sim.ledger()["agent"]["errors"] == 1 and sim.ledger()["agent"]["connections"] == 0


def test_an_agent_whose_certificate_is_not_trusted_is_a_tls_error(tmp_path, rx, agent):
    other = start_sim(tmp_path, "", "sim-system-cas")
    try:
        sid = other.create(base_form(rx) + [("Twiml", stream_twiml(agent.url(), {}))]).json()["sid"]
        other.ended(sid, timeout=10)
        a = other.dial("b1")["agent"]
        assert a["error"] == 31910 and a["connected"] is False
    finally:
        assert other.proc.stop() == 0


def test_a_url_is_fetched_signed_and_its_twiml_runs(sim, rx):
    rx.twiml = "<Response><Say>hello</Say><Play>https://example.com/a.mp3</Play><Hangup/></Response>"
    url = f"{rx.base}/twiml?agent=ag_1"
    sid = sim.create(base_form(rx) + [("Url", url), ("Twiml", "<Response><Say>ignored</Say></Response>")]
                     ).json()["sid"]
    sim.ended(sid)
    [fetch] = rx.of("/twiml")
    assert fetch["method"] == "POST"
    f = fetch["form"]
    assert f["CallSid"] == sid and f["AccountSid"] == ACCOUNT and f["CallStatus"] == "in-progress"
    assert f["Direction"] == "outbound-api" and f["To"] == "+14155550100"
    assert fetch["sig"] == signature(url, f)
    d = sim.dial("b1")
    assert d["agent"]["kind"] == "url" and d["agent"]["target"] == url
    assert d["agent"]["connected"] is True
    assert d["agent"]["played"] == ["say:hello", "play:https://example.com/a.mp3"]
    led = sim.ledger()["agent"]
    assert led["twiml_fetches"] == 1 and led["plays"] == 2


def test_a_get_url_carries_the_parameters_in_the_query_and_signs_the_url(sim, rx):
    rx.twiml = "<Response><Hangup/></Response>"
    sid = sim.create(base_form(rx) + [("Url", f"{rx.base}/twiml?a=1"), ("Method", "GET")]
                     ).json()["sid"]
    sim.ended(sid)
    [fetch] = rx.of("/twiml")
    assert fetch["method"] == "GET" and fetch["form"] == {}
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(fetch["path"]).query))
    assert q["a"] == "1" and q["CallSid"] == sid
    assert fetch["sig"] == signature(rx.base + fetch["path"], {})


def test_a_url_that_fails_or_serves_bad_twiml_ends_the_call_with_twilios_error(sim, rx):
    rx.twiml_status = 500
    sid = sim.create(base_form(rx, "b1") + [("Url", f"{rx.base}/twiml")]).json()["sid"]
    sim.ended(sid)
    assert sim.dial("b1")["agent"]["error"] == 11200
    rx.twiml_status = 200
    rx.twiml = "<Response><Say>unclosed</Response>"
    sid = sim.create(base_form(rx, "b2") + [("Url", f"{rx.base}/twiml")]).json()["sid"]
    sim.ended(sid)
    assert sim.dial("b2")["agent"]["error"] == 12100
    assert sim.ledger()["agent"]["errors"] == 2


def test_a_sip_dial_is_recorded_with_its_decoded_headers(sim, rx):
    uri = "sip:agent@sip.example.com;transport=tls?X-Agent-Id=ag_1&X-Note=a%20b%26c"
    sid = sim.create(base_form(rx) + [("Twiml", f"<Response><Dial><Sip>{uri.replace('&', '&amp;')}"
                                                "</Sip></Dial></Response>"),
                                      ("TimeLimit", "10")]).json()["sid"]
    sim.ended(sid)
    assert sim.call(sid)["duration"] == "10"
    a = sim.dial("b1")["agent"]
    assert a["kind"] == "sip" and a["target"] == uri and a["connected"] is True
    assert a["sip_headers"] == {"X-Agent-Id": "ag_1", "X-Note": "a b&c"}
    assert sim.ledger()["agent"]["connections"] == 1


def test_async_amd_tells_its_callback_signed_while_the_twiml_runs(sim, rx):
    cb = f"{rx.base}/amd?x=1"
    sid = sim.create(base_form(rx, to="+14155550555") + [
        ("Twiml", "<Response><Pause length=\"5\"/></Response>"),
        ("MachineDetection", "DetectMessageEnd"), ("AsyncAmd", "true"),
        ("AsyncAmdStatusCallback", cb)]).json()["sid"]
    sim.ended(sid)
    [amd] = wait_until(lambda: rx.of("/amd") or None, 5, "the AMD callback")
    f = amd["form"]
    assert f == {"AccountSid": ACCOUNT, "CallSid": sid, "AnsweredBy": "machine_end_beep",
                 "MachineDetectionDuration": "2000"}
    assert amd["sig"] == signature(cb, f)
    # Async: the answered callback came before detection, without AnsweredBy.
    answered = [r for r in rx.of("/cb") if r["form"].get("CallStatus") == "in-progress"]
    assert answered and "AnsweredBy" not in answered[0]["form"]
    assert sim.ledger()["agent"]["amd_callbacks"] == 1


def test_async_amd_without_machine_detection_detects_nothing(sim, rx):
    sid = sim.create(base_form(rx) + [("Twiml", "<Response><Pause length=\"3\"/></Response>"),
                                      ("AsyncAmd", "true"),
                                      ("AsyncAmdStatusCallback", f"{rx.base}/amd")]).json()["sid"]
    sim.ended(sid)
    assert rx.of("/amd") == [] and sim.ledger()["agent"]["amd_callbacks"] == 0


# ---- updates -----------------------------------------------------------------

def streamed_call(sim, rx, agent):
    """A call whose TwiML streams to the agent, once its stream has started:
    (its sid, the agent's connection)."""
    n0 = len(agent.conns)
    sid = sim.create(base_form(rx) + [("Twiml", stream_twiml(agent.url(), {}))]).json()["sid"]
    return sid, wait_until(lambda: len(agent.conns) > n0 and
                           any(m["event"] == "start" for m in agent.conns[n0]["msgs"]) and
                           agent.conns[n0], 10, "the stream to start")


def test_status_completed_hangs_up_a_call_and_stops_its_stream(sim, rx, agent):
    sid, conn = streamed_call(sim, rx, agent)
    r = sim.update(sid, [("Status", "completed")])
    assert r.status_code == 200, r.text
    sim.ended(sid, timeout=5)
    wait_until(lambda: conn["closed"], 5, "the stream to close")
    assert conn["msgs"][-1]["event"] == "stop"
    finals = [r for r in rx.of("/cb") if r["form"].get("CallStatus") == "completed"]
    assert len(finals) == 1
    assert sim.ledger()["agent"]["updates"] == 1


def test_status_completed_ends_a_ringing_call_canceled(certs, rx, tmp_path):
    """Twilio: Status=completed "will attempt to hang up a call even if it's
    already in progress", and a call ended through the API before it was
    answered ends canceled. The simulator took completed as a no-op on a
    ringing call, so a hang-up sent as completed alone missed it."""
    s = start_sim(tmp_path, certs[0], name="sim-ring", ring="500")
    try:
        # Rings 500 s (10 s real) within a Timeout of 600 s.
        form = [kv for kv in base_form(rx) if kv[0] != "Timeout"] + [("Timeout", "600")]
        sid = s.create(form + [("Twiml", "<Response><Say>hi</Say></Response>")]).json()["sid"]
        wait_until(lambda: any(r["form"].get("CallStatus") == "ringing" for r in rx.of("/cb")), 10,
                   "the ringing callback")
        r = s.update(sid, [("Status", "completed")])
        assert r.status_code == 200, r.text
        assert s.ended(sid, timeout=5)
        assert s.call(sid)["status"] == "canceled"
        finals = wait_until(lambda: [x["form"]["CallStatus"] for x in rx.of("/cb")
                                     if x["form"].get("CallStatus") not in ("ringing",)], 5,
                            "the final callback")
        assert finals == ["canceled"], finals
    finally:
        assert s.proc.stop() == 0, "\n".join(s.proc.log_lines()[-30:])


def test_new_twiml_replaces_the_stream_of_a_live_call(sim, rx, agent):
    sid, conn = streamed_call(sim, rx, agent)
    r = sim.update(sid, [("Twiml", "<Response><Say>sorry</Say><Hangup/></Response>")])
    assert r.status_code == 200, r.text
    wait_until(lambda: conn["closed"], 5, "the stream to close")
    assert conn["msgs"][-1]["event"] == "stop"
    sim.ended(sid, timeout=5)
    assert int(sim.call(sid)["duration"]) < 10
    a = sim.dial("b1")["agent"]
    assert a["played"] == ["say:sorry"]
    # An update is checked as a create is.
    refused(sim, sim.update(sid, [("Twiml", "<Response>")]), 12100)
    refused(sim, sim.update(sid, [("Foo", "1")]), 20001)
    # The call is over: it cannot be redirected.
    body = refused(sim, sim.update(sid, [("Twiml", "<Response><Hangup/></Response>")]), 21220)
    assert body["message"] == "Call is not in-progress. Cannot redirect."
    led = sim.ledger()
    assert led["agent"]["updates"] == 1 and led["agent"]["stream_stops"] == 1
    assert [x["code"] for x in sim.ledger("/refused")["refused"]] == [12100, 20001, 21220]


def test_reset_clears_the_agent_counters_and_the_refused(sim, rx):
    refused(sim, sim.create(base_form(rx)), 21205)
    sid = sim.create(base_form(rx) + [("Twiml", "<Response><Say>x</Say></Response>")]).json()["sid"]
    sim.ended(sid)
    assert sim.ledger()["agent"]["plays"] == 1
    requests.post(f"{sim.base}/ledger/reset", timeout=5)
    assert set(sim.ledger()["agent"].values()) == {0}
    assert sim.ledger("/refused") == {"refused": []}


def test_spread_talk_times_fall_anywhere_in_the_range(tmp_path, certs, rx):
    """With BC_SIM_TALK_SPREAD a call talks for any time in the range, to the
    millisecond, so calls placed together do not end together a whole number
    of seconds later; the duration told is in whole seconds, rounded up.
    Without it (every other test) talk times are whole seconds."""
    port = free_port()
    env = dict(os.environ, BC_SIM_PORT=str(port), BC_SIM_MS_PER_SECOND="1000",
               BC_SIM_RING_SECONDS="0", BC_SIM_TALK_SECONDS="1-2", BC_SIM_TALK_SPREAD="1",
               BC_SIM_MIX="completed=1", BC_SIM_SEED="11", BC_SIM_AGENT_CA=certs[0])
    s = Sim(port, Proc("sim-spread", [os.path.join(BUILD, "batchcall-carrier-sim")], env,
                       str(tmp_path)))
    wait_until(lambda: _ready(s.base), 10, "the simulator")
    try:
        twiml = "<Response><Dial><Sip>sip:agent@sip.example.com</Sip></Dial></Response>"
        sids = [s.create(base_form(rx, batch="spread", to=f"+1415555{i:04d}")
                         + [("Twiml", twiml)]).json()["sid"] for i in range(20)]
        for sid in sids:
            s.ended(sid)
        dials = s.ledger("/dials?batch_id=spread")["dials"]
        talk = [d["ended_ms"] - d["at_ms"] for d in dials]
        assert len(talk) == 20 and all(950 <= t <= 2300 for t in talk), talk
        # Whole seconds would end each call within a few ms of 1 or 2 s.
        off_the_second = [t for t in talk if 100 <= t % 1000 <= 900]
        assert len(off_the_second) >= 8, talk
        assert {s.call(sid)["duration"] for sid in sids} <= {"1", "2"}
    finally:
        assert s.proc.stop() == 0


def test_keep_one_in_forgets_ended_calls_of_other_batches_only(tmp_path, certs, rx, agent):
    """BC_SIM_KEEP_ONE_IN=N (long runs: bench/soak.py) frees an ended call
    once nothing of its own is in flight, unless its batch id hashes to 0
    mod N: its sid then answers 20404 and its batch has no dial list, while
    kept batches keep both and the counts (dials, duplicates) keep every
    call. A recorded call waits for its recording callback, a streamed one
    is never freed (its stream may still report to it); under the
    sanitizers this is where a use after free would show."""
    port = free_port()
    env = dict(os.environ, BC_SIM_PORT=str(port), BC_SIM_MS_PER_SECOND="20",
               BC_SIM_RING_SECONDS="1", BC_SIM_TALK_SECONDS="2", BC_SIM_MIX="completed=1",
               BC_SIM_KEEP_ONE_IN="3", BC_SIM_AGENT_CA=certs[0])
    s = Sim(port, Proc("sim-forget", [os.path.join(BUILD, "batchcall-carrier-sim")], env,
                       str(tmp_path)))
    wait_until(lambda: _ready(s.base), 10, "the simulator")
    try:
        batches = [f"b{i}" for i in range(12)]
        kept = [b for b in batches if sim_map_hash(b) % 3 == 0]
        gone = [b for b in batches if sim_map_hash(b) % 3]
        assert kept and gone
        sip = "<Response><Dial><Sip>sip:agent@sip.example.com</Sip></Dial></Response>"
        def form(b, to, n):
            f = base_form(rx, batch=b, to=to)
            return [(k, v.replace(f"call_id=c_{b}", f"call_id=c_{b}_{n}")) for k, v in f]
        sids = {b: [s.create(form(b, f"+141555{i:02d}{j}77", j)
                             + [("Twiml", sip)]).json()["sid"] for j in range(3)]
                for i, b in enumerate(batches)}
        # A recorded call and a streamed one of a forgotten batch.
        rec = s.create(form(gone[0], "+14155559901", "rec")
                       + [("Twiml", sip), ("Record", "true"),
                          ("RecordingStatusCallback", f"{rx.base}/rec")]).json()["sid"]
        streamed = s.create(form(gone[0], "+14155559902", "ws")
                            + [("Twiml", stream_twiml(agent.url(), {})),
                               ("TimeLimit", "3")]).json()["sid"]
        total = 12 * 3 + 2
        wait_until(lambda: len([r for r in rx.of("/cb") if r["form"]["CallStatus"] == "completed"])
                   == total and rx.of("/rec"), 20, "every call to end and be told")
        led = wait_until(lambda: (lambda l: l if l["forgotten"] == 3 * len(gone) + 1 else None)(
            s.ledger()), 10, "the simulator to forget the calls it was told of")
        assert led["dials"] == total and led["live"] == 0 and led["duplicate_call_ids"] == []
        assert led["batches"][gone[0]]["dials"] == 5
        for b in kept:
            assert len(s.ledger(f"/dials?batch_id={b}")["dials"]) == 3
            for sid in sids[b]:
                assert s.call(sid)["status"] == "completed"
        for b in gone:
            assert s.ledger(f"/dials?batch_id={b}")["dials"] == []
            for sid in sids[b]:
                r = requests.get(f"{s.base}/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json",
                                 auth=(ACCOUNT, TOKEN), timeout=10)
                assert r.status_code == 404 and r.json()["code"] == 20404
        assert s.call(streamed)["status"] == "completed"
        assert requests.get(f"{s.base}/2010-04-01/Accounts/{ACCOUNT}/Calls/{rec}.json",
                            auth=(ACCOUNT, TOKEN), timeout=10).status_code == 404
    finally:
        assert s.proc.stop() == 0


def test_an_attempt_id_dialed_again_is_reported_once(sim, rx):
    """The ledger's evidence of a double dial: an attempt id (call_id in the
    callback URL) created twice or more is listed once; others never."""
    sip = "<Response><Dial><Sip>sip:agent@sip.example.com</Sip></Dial></Response>"
    for b, times in (("d1", 3), ("d2", 1), ("d3", 2)):
        for i in range(times):
            assert sim.create(base_form(rx, batch=b, to=f"+1415555{len(b)}{i}77")
                              + [("Twiml", sip)]).status_code == 201
    led = sim.ledger()
    assert led["dials"] == 6
    assert sorted(led["duplicate_call_ids"]) == ["c_d1", "c_d3"]
