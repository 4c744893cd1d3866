"""The batch-call surface: the seed's request replayed, drafts, sending,
scheduling, the envelope on success and on every error."""
import time

import pytest
import requests

from conftest import batchcall_headers, system_settled, wait_until


@pytest.fixture(scope="module")
def t(stack):
    return stack.tenant(concurrency=10)


def seed_body(t, **over):
    body = {
        "from_number": "+14157774444",
        "tasks": [{"to_number": "+12137774445",
                   "dynamic_variables": {"first_name": "John", "last_name": "Doe",
                                         "company": "Acme Corp"},
                   "max_retries": 3}],
        "name": "Q1 Sales Campaign", "trigger_timestamp": 1735718400000,
        "agent_id": t["agent_id"], "timezone": "America/New_York",
        "status": "draft", "send_now": False}
    body.update(over)
    return body


def post(stack, t, path="/batch-call", body=None, headers=None):
    return requests.post(stack.api + path, json=body, headers=headers or batchcall_headers(t),
                         timeout=30)


def assert_error(r, status, code=None):
    assert r.status_code == status, r.text
    b = r.json()
    assert b["status"] == "error" and b["data"] is None and b["message"]
    if code:
        assert b["error"]["code"] == code


def test_seed_example_creates_a_draft(stack, t):
    r = post(stack, t, body=seed_body(t))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["message"] == "Batch call created successfully"
    assert b["status"] == "success" and b["error"] is None
    d = b["data"]
    assert d["status"] == "draft"
    assert d["scheduled_timestamp"] == 1735718400000
    assert d["total_task_count"] == d["total"] == 1
    assert (d["sent"], d["picked_up"], d["completed"]) == (0, 0, 0)
    assert d["timezone"] == "America/New_York"
    assert d["organization_id"] == t["tenant_id"]
    assert d["batch_call_id"] and d["tasks_url"].endswith(f"/batch-call/{d['batch_call_id']}/tasks")
    assert isinstance(d["created_timestamp"], int) and d["last_sent_timestamp"] is None
    # Nothing is dialed while it is a draft, once the scheduler and worker
    # have had their turn.
    system_settled(stack)
    assert stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s", d["batch_call_id"])[0][0] == 0


def test_send_now_dials_and_tasks_show_progress(stack, t):
    r = post(stack, t, body=seed_body(t, send_now=True, status="sent"))
    assert r.status_code == 201, r.text
    bid = r.json()["data"]["batch_call_id"]
    assert r.json()["data"]["status"] == "sent"

    def done():
        tasks = requests.get(f"{stack.api}/batch-call/{bid}/tasks", headers=batchcall_headers(t),
                             timeout=10).json()["data"]["tasks"]
        return tasks if tasks[0]["status"] in ("completed", "failed") else None
    tasks = wait_until(done, 60, "the task to finish", interval=0.3)
    assert tasks[0]["dynamic_variables"]["company"] == "Acme Corp"
    assert tasks[0]["max_retries"] == 3
    d = requests.get(f"{stack.api}/batch-call/{bid}", headers=batchcall_headers(t),
                     timeout=10).json()["data"]
    assert d["sent"] == 1 and d["last_sent_timestamp"] is not None


def test_draft_is_sent_later(stack, t):
    bid = post(stack, t, body=seed_body(t)).json()["data"]["batch_call_id"]
    s = post(stack, t, f"/batch-call/{bid}/send")
    assert s.status_code == 200 and s.json()["data"]["status"] == "sent"
    assert_error(post(stack, t, f"/batch-call/{bid}/send"), 409, "conflict")


def test_future_trigger_is_scheduled_then_cancelled(stack, t):
    future = int((time.time() + 3600) * 1000)
    r = post(stack, t, body=seed_body(t, status="scheduled", trigger_timestamp=future))
    assert r.status_code == 201, r.text
    d = r.json()["data"]
    assert d["status"] == "scheduled" and d["scheduled_timestamp"] == future // 1000 * 1000
    c = post(stack, t, f"/batch-call/{d['batch_call_id']}/cancel")
    assert c.status_code == 200 and c.json()["data"]["status"] == "cancelled"
    lst = requests.get(stack.api + "/batch-call", headers=batchcall_headers(t), params={"limit": 5},
                       timeout=10).json()["data"]
    assert d["batch_call_id"] in [x["batch_call_id"] for x in lst["batch_calls"]]


@pytest.mark.parametrize("over,why", [
    ({"tasks": []}, "tasks"),
    ({"tasks": [{"to_number": "+12137774445"}] * 1001}, "1000"),
    ({"tasks": [{"to_number": "2137774445"}]}, "tasks[0].to_number"),
    ({"tasks": [{"to_number": "+12137774445", "max_retries": -1}]}, "max_retries"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"status": "paused"}, "status"),
    ({"from_number": "4157774444"}, "from_number"),
    ({"trigger_timestamp": "soon"}, "trigger_timestamp"),
    ({"name": "x" * 256}, "name"),
    ({"status": "scheduled", "trigger_timestamp": 1735718400000}, "future"),
])
def test_validation_errors_use_the_envelope(stack, t, over, why):
    before = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]
    r = post(stack, t, body=seed_body(t, **over))
    assert_error(r, 400, "invalid_request")
    assert why in r.json()["message"]
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0] == before


def test_missing_fields_are_400(stack, t):
    for field in ("from_number", "tasks", "agent_id"):
        body = seed_body(t)
        del body[field]
        assert_error(post(stack, t, body=body), 400, "invalid_request")


def test_wrong_secret_is_401_and_unknown_agent_404(stack, t):
    h = batchcall_headers(t)
    h["X-API-SECRET"] = "x" * 32
    assert_error(post(stack, t, body=seed_body(t), headers=h), 401, "unauthorized")
    assert_error(post(stack, t, body=seed_body(t, agent_id="agent_nope")), 404)
    other = stack.tenant()
    bid = post(stack, other, body=seed_body(other)).json()["data"]["batch_call_id"]
    assert_error(requests.get(f"{stack.api}/batch-call/{bid}", headers=batchcall_headers(t),
                              timeout=10), 404)
    assert_error(post(stack, t, f"/batch-call/{bid}/cancel"), 404)
