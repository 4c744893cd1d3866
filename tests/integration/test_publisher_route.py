"""The publisher's two producers (common/bc_publisher.h): a process that
publishes few messages sends each at once, one that publishes many batches
them, and no message is lost or repeated as it moves between the two. Seen
through the API, which publishes each carrier callback's event."""
import base64
import hashlib
import hmac
import json
import threading
import time

import requests

from conftest import api_proc, consume_from_start, wait_until
from test_dispatch import metric

TOKEN = "sim-auth-token"    # the stack's carrier auth token (the default)
PATH = "/carrier/twilio/status"


def signature(url, params):
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


def poster(stack, url, tenant):
    """post(call, seq): one signed status callback for call through the
    test's API, answered 200 once Kafka has its event."""
    session = requests.Session()

    def post(call, seq):
        # Region apac: the stack runs no worker there, so nothing reads them.
        q = f"?region=apac&tenant_id={tenant}&batch_id=acb_route&call_id={call}"
        form = {"CallSid": "CA" + call, "CallStatus": "in-progress", "SequenceNumber": str(seq)}
        r = session.post(url + PATH + q, data=form, timeout=10,
                         headers={"X-Twilio-Signature": signature(stack.api + PATH + q, form)})
        assert r.status_code == 200, r.text
    return post


def test_quiet_callbacks_go_out_at_once_and_a_burst_is_batched(stack, tmp_path):
    proc, port, url = api_proc(stack, tmp_path, "api-route", BC_KAFKA_PROMPT_BELOW="200")
    try:
        t = stack.tenant()
        post = poster(stack, url, t["tenant_id"])
        # 20 a second: under the mark, each goes out at once.
        for i in range(20):
            post("ac_quiet", i)
            time.sleep(0.05)
        assert metric(port, "kafka_publisher_prompt") == 1
        assert metric(port, "kafka_publisher_switches_total") == 0

        # A burst from 8 clients, each posting its own call's callbacks in
        # order: far over 200 a second, so it is batched.
        def burst(c):
            p = poster(stack, url, t["tenant_id"])
            for i in range(150):
                p(f"ac_burst{c}", i)
        threads = [threading.Thread(target=burst, args=(c,)) for c in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert metric(port, "kafka_publisher_switches_total") >= 1

        # After a quiet spell (a whole 1 s window with nothing), at once again.
        time.sleep(2.1)
        post("ac_quiet", 20)
        assert metric(port, "kafka_publisher_prompt") == 1
        assert metric(port, "kafka_publisher_switches_total") >= 2
        sent = 21 + 8 * 150
        assert metric(port, "kafka_messages_published_total") >= sent
    finally:
        proc.stop()

    # Every event is in the topic once, and each call's in the order posted.
    c = consume_from_start(stack, "carrier-events.apac", "route-check")
    seen = {}
    try:
        def read():
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                ev = json.loads(m.value())
                if ev["batch_id"] == "acb_route" and ev["tenant_id"] == t["tenant_id"]:
                    seen.setdefault(ev["call_id"], []).append(ev["sequence"])
            return sum(len(v) for v in seen.values()) >= sent or None
        wait_until(read, 30, "every callback's event in the topic")
    finally:
        c.close()
    assert seen["ac_quiet"] == list(range(21))
    for b in range(8):
        assert seen[f"ac_burst{b}"] == list(range(150))
