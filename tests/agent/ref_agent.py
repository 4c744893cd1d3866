#!/usr/bin/env python3
"""The reference AI voice agent: stands in for a customer's agent in tests,
benchmarks and the README demo.

It serves Twilio Media Streams (a WebSocket per answered call: JSON text
frames `connected`, `start`, `media`..., `stop`) on --host/--port, in TLS
(wss://) when --cert and --key are given. Every stream path is accepted.
It records each `start` and counts every event, remembers protocol
violations, and on the same port answers a plain HTTP GET to /twiml with
TwiML that connects the call to its own stream, one <Parameter> per query
parameter. A control API on --control-port (plain http) reads the records
and switches behaviour for later streams:

  GET  /healthz         200 {"ok": true}
  GET  /starts          {"starts": [ {call_sid, stream_sid, custom_parameters,
                         at, media, stop, ...}, ... ]}
  GET  /stats           {"connections", "connected", "starts", "media",
                         "stops", "twiml_fetches", "violations": [...]}
  GET  /twiml-fetches   {"twiml_fetches": [ {method, path, url, query,
                         signature, at}, ... ]}
  GET  /behavior        the current behaviour
  POST /reset           clears every record and count (behaviour is kept)
  POST /behavior        {"hangup_after_start": bool, "fetch_context": bool,
                         "report": object|null}; missing keys keep their value
  GET|POST /twiml       the same TwiML as the stream port's /twiml (a POST
                        may carry a form body here, which the WebSocket
                        port cannot take)

Behaviour, for streams whose `start` arrives after it is set:
  hangup_after_start  close the WebSocket right after `start`
  fetch_context       on `start`, GET {api}/v1/calls/{bc_call_id}/context with
                      "Authorization: Bearer {bc_token}" (both from the start's
                      customParameters); the record gets context_status and
                      context
  report              on `stop`, POST this object to
                      {api}/v1/calls/{bc_call_id}/report with the same token;
                      the record gets report_status

Logs JSON lines on stderr only when it starts and stops. SIGTERM or SIGINT
closes every stream and exits 0.
"""
import argparse
import asyncio
import concurrent.futures
import http
import http.server
import json
import logging
import resource
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from xml.sax.saxutils import quoteattr

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

MAX_VIOLATIONS = 10000      # kept in the list; the count goes on
HTTP_TIMEOUT = 5.0          # seconds, for the context and report calls


def log(level, event, **fields):
    t = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int(t % 1 * 1000)
    line = {"ts": ts, "level": level, "svc": "ref-agent", "event": event}
    line.update(fields)
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()


DEFAULT_BEHAVIOR = {"hangup_after_start": False, "fetch_context": False, "report": None}


class Agent:
    """All state lives on the event loop's thread; the control server reads
    and changes it through on_loop()."""

    def __init__(self, args):
        self.args = args
        self.loop = None
        self.tls = bool(args.cert)
        self.port = args.port
        self.behavior = dict(DEFAULT_BEHAVIOR)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.http_workers,
                                                          thread_name_prefix="agent-http")
        self.tasks = set()
        self.reset()

    def reset(self):
        self.starts = []
        self.twiml_fetches = []
        self.violations = []
        self.n = {"connections": 0, "connected": 0, "starts": 0, "media": 0, "stops": 0,
                  "twiml_fetches": 0, "violations": 0}

    # ---- records -----------------------------------------------------------

    def violation(self, kind, path, stream_sid=None, detail=None):
        self.n["violations"] += 1
        if len(self.violations) < MAX_VIOLATIONS:
            v = {"kind": kind, "path": path, "at": time.time()}
            if stream_sid is not None:
                v["stream_sid"] = stream_sid
            if detail is not None:
                v["detail"] = detail
            self.violations.append(v)

    def stats(self):
        out = {k: self.n[k] for k in ("connections", "connected", "starts", "media", "stops",
                                      "twiml_fetches")}
        out["violation_count"] = self.n["violations"]
        out["violations"] = self.violations
        return out

    def set_behavior(self, body):
        if not isinstance(body, dict):
            raise ValueError("behaviour must be a JSON object")
        for k in ("hangup_after_start", "fetch_context"):
            if k in body and not isinstance(body[k], bool):
                raise ValueError(f"{k} must be true or false")
        if "report" in body and body["report"] is not None and not isinstance(body["report"], dict):
            raise ValueError("report must be an object or null")
        unknown = set(body) - set(DEFAULT_BEHAVIOR)
        if unknown:
            raise ValueError("unknown keys: " + ", ".join(sorted(unknown)))
        self.behavior.update(body)
        return dict(self.behavior)

    # ---- TwiML -------------------------------------------------------------

    def stream_url(self):
        host = self.args.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}/stream"

    def twiml(self, query):
        params = "".join(f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>"
                         for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True))
        return ('<?xml version="1.0" encoding="UTF-8"?>'
                f"<Response><Connect><Stream url={quoteattr(self.stream_url())}>{params}"
                "</Stream></Connect></Response>")

    def record_twiml_fetch(self, method, target, host, signature, scheme, form=None):
        u = urllib.parse.urlsplit(target)
        rec = {"at": time.time(), "method": method, "path": target,
               "url": f"{scheme}://{host}{target}" if host else None,
               "query": dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True)),
               "signature": signature}
        if form is not None:
            rec["form"] = form
        self.n["twiml_fetches"] += 1
        self.twiml_fetches.append(rec)

    def process_request(self, connection, request):
        """Plain HTTP (no Upgrade) on the stream port: /twiml and /healthz."""
        if "websocket" in request.headers.get("Upgrade", "").lower():
            return None
        u = urllib.parse.urlsplit(request.path)
        if u.path == "/twiml":
            self.record_twiml_fetch(getattr(request, "method", "GET"), request.path,
                                    request.headers.get("Host"),
                                    request.headers.get("X-Twilio-Signature"),
                                    "https" if self.tls else "http")
            return self.response(200, "text/xml; charset=utf-8", self.twiml(u.query))
        if u.path == "/healthz":
            return self.response(200, "application/json", '{"ok":true}')
        return self.response(404, "text/plain; charset=utf-8", "not found\n")

    @staticmethod
    def response(status, ctype, text):
        body = text.encode()
        headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                           ("Connection", "close")])
        return Response(status, http.HTTPStatus(status).phrase, headers, body)

    # ---- streams -----------------------------------------------------------

    async def handler(self, ws):
        n = self.n
        n["connections"] += 1
        path = ws.request.path if ws.request else None
        connected = False
        rec = None          # this stream's start record
        behavior = None
        try:
            async for msg in ws:
                if not isinstance(msg, str):
                    self.violation("binary frame", path, rec and rec["stream_sid"])
                    continue
                try:
                    m = json.loads(msg)
                    ev = m["event"]
                except (ValueError, TypeError, KeyError):
                    self.violation("invalid JSON", path, rec and rec["stream_sid"], msg[:200])
                    continue
                if ev == "media":
                    n["media"] += 1
                    if rec is None:
                        self.violation("media before start", path)
                    else:
                        rec["media"] += 1
                elif ev == "connected":
                    n["connected"] += 1
                    if connected:
                        self.violation("second connected", path, rec and rec["stream_sid"])
                    connected = True
                elif ev == "start":
                    n["starts"] += 1
                    s = m.get("start") if isinstance(m.get("start"), dict) else {}
                    sid = m.get("streamSid") or s.get("streamSid")
                    if rec is not None:
                        self.violation("second start", path, sid)
                    elif not connected:
                        self.violation("start before connected", path, sid)
                    cp = s.get("customParameters")
                    rec = {"call_sid": s.get("callSid"), "stream_sid": sid,
                           "custom_parameters": cp if isinstance(cp, dict) else {},
                           "at": time.time(), "account_sid": s.get("accountSid"),
                           "tracks": s.get("tracks"), "media_format": s.get("mediaFormat"),
                           "path": path, "media": 0, "stop": False}
                    self.starts.append(rec)
                    behavior = dict(self.behavior)
                    if behavior["fetch_context"]:
                        self.spawn(self.fetch_context(rec))
                    if behavior["hangup_after_start"]:
                        rec["hung_up"] = True
                        await ws.close()
                        break
                elif ev == "stop":
                    n["stops"] += 1
                    if rec is None:
                        self.violation("stop before start", path,
                                       m.get("streamSid"))
                        continue
                    if rec["stop"]:
                        self.violation("second stop", path, rec["stream_sid"])
                    rec["stop"] = True
                    if behavior and behavior["report"] is not None:
                        self.spawn(self.post_report(rec, behavior["report"]))
                elif ev in ("mark", "dtmf"):
                    pass
                else:
                    self.violation("unknown event", path, rec and rec["stream_sid"], str(ev)[:100])
        except ConnectionClosed:
            pass

    def spawn(self, coro):
        t = self.loop.create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    # ---- calls back to batchcall's API ------------------------------------

    def _http(self, method, url, token, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except Exception as e:       # refused, timed out: no status
            return None, {"error": f"{type(e).__name__}: {e}"}
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")[:1000]

    def _call_url(self, rec, what):
        cid = rec["custom_parameters"].get("bc_call_id")
        tok = rec["custom_parameters"].get("bc_token")
        if not self.args.api or not cid or tok is None:
            return None, None
        return f"{self.args.api.rstrip('/')}/v1/calls/{urllib.parse.quote(cid, safe='')}/{what}", tok

    async def fetch_context(self, rec):
        url, tok = self._call_url(rec, "context")
        if url is None:
            rec["context_status"], rec["context"] = None, {"error": "no --api, bc_call_id or bc_token"}
            return
        rec["context_status"], rec["context"] = await self.loop.run_in_executor(
            self.pool, self._http, "GET", url, tok)

    async def post_report(self, rec, report):
        url, tok = self._call_url(rec, "report")
        if url is None:
            rec["report_status"], rec["report_error"] = None, "no --api, bc_call_id or bc_token"
            return
        rec["report_status"], body = await self.loop.run_in_executor(
            self.pool, self._http, "POST", url, tok, report)
        if rec["report_status"] is None or rec["report_status"] >= 300:
            rec["report_error"] = body

    # ---- control API ---------------------------------------------------------

    def on_loop(self, fn, timeout=10):
        """Runs fn on the event loop's thread, returns its result here."""
        fut = concurrent.futures.Future()

        def run():
            try:
                fut.set_result(fn())
            except Exception as e:   # handed back to the control thread
                fut.set_exception(e)
        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout)


def control_handler(agent):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, status, obj, ctype="application/json"):
            body = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def twiml(self, form=None):
            u = urllib.parse.urlsplit(self.path)
            agent.on_loop(lambda: agent.record_twiml_fetch(
                self.command, self.path, self.headers.get("Host"),
                self.headers.get("X-Twilio-Signature"), "http", form))
            self.send(200, agent.twiml(u.query), "text/xml; charset=utf-8")

        def do_GET(self):
            p = urllib.parse.urlsplit(self.path).path
            if p == "/healthz":
                return self.send(200, {"ok": True})
            if p == "/starts":
                return self.send(200, agent.on_loop(lambda: json.dumps({"starts": agent.starts})))
            if p == "/stats":
                return self.send(200, agent.on_loop(lambda: json.dumps(agent.stats())))
            if p == "/twiml-fetches":
                return self.send(200, agent.on_loop(
                    lambda: json.dumps({"twiml_fetches": agent.twiml_fetches})))
            if p == "/behavior":
                return self.send(200, agent.on_loop(lambda: dict(agent.behavior)))
            if p == "/twiml":
                return self.twiml()
            self.send(404, {"error": "not found"})

        def do_POST(self):
            p = urllib.parse.urlsplit(self.path).path
            raw = self.body()
            if p == "/reset":
                agent.on_loop(agent.reset)
                return self.send(200, {"ok": True})
            if p == "/behavior":
                try:
                    body = json.loads(raw or b"{}")
                    return self.send(200, agent.on_loop(lambda: agent.set_behavior(body)))
                except ValueError as e:
                    return self.send(400, {"error": str(e)})
            if p == "/twiml":
                return self.twiml(dict(urllib.parse.parse_qsl(raw.decode(errors="replace"),
                                                              keep_blank_values=True)))
            self.send(404, {"error": "not found"})
    return H


async def main(args):
    agent = Agent(args)
    agent.loop = asyncio.get_running_loop()
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    # websockets logs failed handshakes (scanners, clients that vanish); one
    # line per media frame or per bad client is exactly what is not wanted.
    wl = logging.getLogger("websockets")
    wl.addHandler(logging.NullHandler())
    wl.propagate = False

    stop = agent.loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        agent.loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(s))

    async with serve(agent.handler, args.host, args.port, ssl=ctx,
                     process_request=agent.process_request,
                     compression=None, ping_interval=None, close_timeout=2,
                     max_size=1 << 20, backlog=4096) as server:
        agent.port = server.sockets[0].getsockname()[1]
        ctl = http.server.ThreadingHTTPServer(("127.0.0.1", args.control_port),
                                              control_handler(agent))
        ctl.daemon_threads = True
        threading.Thread(target=ctl.serve_forever, name="control", daemon=True).start()
        log("info", "agent_listening", stream_url=agent.stream_url(), port=agent.port,
            control_port=ctl.server_address[1], tls=agent.tls, api=args.api)
        sig = await stop
        log("info", "agent_stopping", signal=signal.Signals(sig).name,
            connections=agent.n["connections"], starts=agent.n["starts"],
            violations=agent.n["violations"])
        server.close(close_connections=True)
        await server.wait_closed()
        ctl.shutdown()
        ctl.server_close()
    agent.pool.shutdown(wait=False, cancel_futures=True)
    for t in list(agent.tasks):
        t.cancel()
    log("info", "agent_stopped")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="ref_agent.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address the stream port listens on, "
                   "also the host of the stream url in /twiml (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True,
                   help="the stream port: WebSocket streams on any path, plain GET /twiml and /healthz")
    p.add_argument("--cert", help="PEM certificate (chain): serve wss:// instead of ws://")
    p.add_argument("--key", help="PEM private key of --cert")
    p.add_argument("--control-port", type=int, required=True,
                   help="plain-http control API on 127.0.0.1 (see above)")
    p.add_argument("--api", default="",
                   help="batchcall's public API base URL, for fetch_context and report")
    p.add_argument("--http-workers", type=int, default=32,
                   help="threads for calls to --api, so a slow API never stalls a stream (default 32)")
    a = p.parse_args(argv)
    if bool(a.cert) != bool(a.key):
        p.error("--cert and --key go together")
    return a


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


if __name__ == "__main__":
    args = parse_args()
    raise_fd_limit()
    try:
        asyncio.run(main(args))
    except OSError as e:
        log("error", "agent_failed", error=str(e))
        sys.exit(1)
