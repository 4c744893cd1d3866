"""The carrier's callbacks on a port of the API's own (BC_API_CALLBACK_PORT,
BC_CALLBACK_URL): the workers put that URL in every dial, the port answers
the carrier's routes and nothing else, and a callback signed for the public
URL (a call dialed before the port existed) is still taken there."""
import os
import subprocess

import requests

from conftest import BUILD, api_proc, cartesia_headers, free_port, wait_until
from test_carrier_events import sim_metric
from test_dispatch import Extra, all_terminal
from test_publisher_route import signature

PATH = "/carrier/twilio/status"


def callbacks_served(text, code="200"):
    """The callbacks an API served with code, from its /metrics text."""
    total = 0.0
    for line in text.splitlines():
        if (line.startswith("http_requests_total{") and f'route="{PATH}"' in line
                and f'code="{code}"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_carriers_callbacks_go_to_the_callback_port_and_only_they_are_served_there(
        stack, tmp_path):
    cb_port = free_port()
    cb = f"http://127.0.0.1:{cb_port}"
    proc, port, url = api_proc(stack, tmp_path, "api-cb", BC_API_CALLBACK_PORT=str(cb_port),
                               BC_CALLBACK_URL=cb)
    extra = Extra(stack, tmp_path)
    try:
        sim = extra.start("sim-cb", "batchcall-carrier-sim", {
            "BC_SIM_MS_PER_SECOND": "10", "BC_SIM_RING_SECONDS": "1", "BC_SIM_TALK_SECONDS": "2",
            "BC_SIM_MIX": "completed=1"})
        env = {"BC_REGION": "apac", "BC_CARRIER_URL": f"http://127.0.0.1:{sim.port}",
               "BC_CALLBACK_URL": cb}
        extra.start("sched-cb", "batchcall-scheduler", dict(env, BC_SCHEDULER_TICK_MS="50"))
        extra.start("w-cb", "batchcall-worker", env)
        t = stack.tenant(concurrency=6)
        body = {"name": "callback port", "agent_id": t["agent_id"],
                "from_number_id": t["from_number_id"], "target_concurrency_limit": 6,
                "region": "APAC", "recipients": [{"to_number": f"+1426{i:07d}"} for i in range(6)]}
        r = requests.post(stack.api + "/agents/calls/batches", json=body,
                          headers=cartesia_headers(t["api_key"]), timeout=60)
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        all_terminal(stack, bid, 60)
        assert stack.sql("SELECT status, count(*) FROM calls WHERE batch_id = %s GROUP BY 1",
                         bid) == [("completed", 6)]
        # Every callback the carrier sent (ringing, in-progress, completed)
        # was this API's, which only the callback port's URL reaches.
        sent = wait_until(lambda: sim_metric(sim.port, "sim_callbacks_total", 'result="ok"')
                          or None, 10, "the carrier's count of callbacks")
        assert sent == 6 * 3
        served = callbacks_served(requests.get(url + "/metrics", timeout=5).text)
        assert served == sent, (served, sent)

        # The callback port serves the carrier's routes alone.
        for method, path in (("GET", "/agents/calls/batches"), ("POST", "/v1/create-batch-call"),
                             ("GET", f"/v1/calls/{bid}")):
            x = requests.request(method, cb + path, timeout=10,
                                 headers=cartesia_headers(t["api_key"]))
            assert x.status_code == 404, (method, path, x.status_code, x.text)
        assert requests.get(url + "/agents/calls/batches/" + bid, timeout=10,
                            headers=cartesia_headers(t["api_key"])).status_code == 200

        # Signed for the public URL (dialed before the callback port was
        # set): taken. Signed for another: refused. Region eu: no worker
        # of this test reads it.
        q = f"?region=eu&tenant_id={t['tenant_id']}&batch_id=acb_cbport&call_id=ac_cbport"
        form = {"CallSid": "CAcbport", "CallStatus": "ringing", "SequenceNumber": "0"}
        for base, code in ((stack.api, 200), (cb, 200), ("http://elsewhere.example", 403)):
            x = requests.post(cb + PATH + q, data=form, timeout=10,
                              headers={"X-Twilio-Signature": signature(base + PATH + q, form)})
            assert x.status_code == code, (base, x.status_code, x.text)
    finally:
        extra.stop()
        proc.stop()


def test_a_callback_port_out_of_range_stops_the_api_with_why(stack, tmp_path):
    for env in ({"BC_API_CALLBACK_PORT": "70000"},
                {"BC_API_CALLBACK_PORT": "1", "BC_API_CALLBACK_THREADS": "0"}):
        p = subprocess.run([os.path.join(BUILD, "batchcall-api")], capture_output=True, text=True,
                           env=dict(stack.env, BC_API_PORT=str(free_port()), **env), timeout=30)
        assert p.returncode != 0
        assert "BC_API_CALLBACK_PORT" in p.stderr, p.stderr
