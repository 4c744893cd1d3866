"""The API under abuse: hundreds of idle connections, clients that trickle
bytes and a burst of connections do not take it down or starve others;
idle connections are closed after the idle timeout. (Trickling ones meet
the request deadline and one address's connections are capped: both in
test_holes.py.)"""
import socket
import time

import requests

from conftest import api_proc


def test_idle_and_trickling_clients_do_not_starve_others(stack, tmp_path):
    p, port, url = api_proc(stack, tmp_path, "api-abuse", BC_API_IDLE_TIMEOUT="3",
                            BC_API_MAX_CONNECTIONS="2000",
                            # Hundreds of connections from this one address: the
                            # server's load is the point here, not the per-address cap.
                            BC_API_MAX_CONNECTIONS_PER_IP="0")
    idle, trickle = [], []
    try:
        for _ in range(500):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /agents/calls/batches HTTP/1.1\r\nHost: x\r\n")
            trickle.append(s)
        worst = 0.0
        for i in range(30):
            for s in trickle:   # one more header byte now and then
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            t0 = time.monotonic()
            r = requests.get(url + "/healthz", timeout=5)
            worst = max(worst, time.monotonic() - t0)
            assert r.status_code == 200
            time.sleep(0.2)
        assert worst < 1.0, f"a normal request waited {worst:.2f} s"
        # Idle connections are closed by the server after the idle timeout.
        time.sleep(4)
        closed = 0
        for s in idle[:50]:
            try:
                s.settimeout(2)
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == 50
        # A burst of new connections is served.
        ok = sum(requests.get(url + "/healthz", timeout=5).status_code == 200 for _ in range(200))
        assert ok == 200
        assert p.p.poll() is None, "the API is still up"
    finally:
        for s in idle + trickle:
            s.close()
        assert p.stop() == 0
