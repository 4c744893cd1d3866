"""The Retell-compatible surface: POST /create-batch-call with Retell's
documented fields, its response shape, errors and Bearer auth, on the real
stack (docs/retell.md)."""
import json
import time

import pytest
import requests

from conftest import bearer
from test_dispatch import all_terminal, assert_one_dial_per_recipient


def post(stack, key, body, path="/create-batch-call"):
    h = bearer(key) if key else {"Content-Type": "application/json"}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(stack.api + path, data=data, headers=h, timeout=30)


@pytest.fixture(scope="module")
def t(stack):
    return stack.tenant(concurrency=10)


def test_documented_example_creates_a_batch_that_is_dialed_once_each(stack, t):
    numbers = [f"+1213777{i:04d}" for i in range(12)]
    body = {"from_number": t["from_number"], "name": "First batch call",
            "tasks": [{"to_number": n, "retell_llm_dynamic_variables": {"customer_name": f"c{i}"},
                       "metadata": {"row": i}} for i, n in enumerate(numbers)]}
    before = time.time()
    r = post(stack, t["api_key"], body)
    assert r.status_code == 201, r.text
    b = r.json()
    for field in ("batch_call_id", "name", "from_number", "scheduled_timestamp", "total_task_count"):
        assert field in b, field
    assert b["name"] == "First batch call" and b["from_number"] == t["from_number"]
    assert b["total_task_count"] == 12
    assert "call_time_window" not in b   # present only if it was given
    # Immediate: scheduled when it was created, in milliseconds.
    assert before - 2 <= b["scheduled_timestamp"] / 1000.0 <= time.time() + 1
    bid = b["batch_call_id"]
    all_terminal(stack, bid, 60)
    assert_one_dial_per_recipient(stack, bid, numbers, 5)
    rows = stack.sql("SELECT to_number, variables, metadata FROM recipients WHERE batch_id = %s"
                     " ORDER BY seq", bid)
    assert [r[0] for r in rows] == numbers
    assert rows[3][1] == {"customer_name": "c3"} and rows[3][2] == {"row": 3}
    got = requests.get(f"{stack.api}/get-batch-call/{bid}", headers=bearer(t["api_key"]), timeout=10)
    assert got.status_code == 200 and got.json()["status"] == "completed", got.text
    assert got.json()["sent"] == 12


def test_schedule_window_and_reserved_concurrency_map_onto_the_core(stack, t):
    trigger = (int(time.time()) + 3600) * 1000
    window = {"windows": [{"start": 540, "end": 1020}], "timezone": "America/New_York",
              "day": ["Monday", "Friday"]}
    r = post(stack, t["api_key"], {"from_number": t["from_number"], "tasks": [{"to_number": "+12137770001"}],
                                   "trigger_timestamp": trigger, "call_time_window": window,
                                   "reserved_concurrency": 3})
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["scheduled_timestamp"] == trigger
    assert b["call_time_window"] == window
    assert b["status"] == "scheduled"
    limit, hours, tz, state, sched = stack.sql(
        "SELECT target_concurrency_limit, calling_hours, timezone, state,"
        " extract(epoch FROM scheduled_at)::bigint * 1000 FROM batches WHERE id = %s",
        b["batch_call_id"])[0]
    assert limit == 10 - 3   # the tenant's limit less what is reserved for other calls
    assert hours == {"start": "09:00", "end": "17:00", "days": [1, 5]}
    assert (tz, state, sched) == ("America/New_York", "scheduled", trigger)
    c = post(stack, t["api_key"], {}, path=f"/cancel-batch-call/{b['batch_call_id']}")
    assert c.status_code == 200 and c.json()["status"] == "cancelled", c.text


def test_a_window_ending_at_midnight_and_the_default_zone(stack, t):
    r = post(stack, t["api_key"], {"from_number": t["from_number"], "tasks": [{"to_number": "+12137770002"}],
                                   "trigger_timestamp": (int(time.time()) + 7200) * 1000,
                                   "call_time_window": {"windows": [{"start": 1200, "end": 1440}]}})
    assert r.status_code == 201, r.text
    assert r.json()["call_time_window"] == {"windows": [{"start": 1200, "end": 1440}],
                                            "timezone": "America/Los_Angeles"}
    bid = r.json()["batch_call_id"]
    assert stack.sql("SELECT calling_hours, timezone FROM batches WHERE id = %s", bid)[0] == \
        ({"start": "20:00", "end": "00:00"}, "America/Los_Angeles")
    # 20:00-24:00 is inside the hours at 23:59 and outside at 00:00.
    assert stack.sql("SELECT in_calling_hours(calling_hours, 'UTC', '2026-05-05 23:59+00'),"
                     " in_calling_hours(calling_hours, 'UTC', '2026-05-06 00:00+00')"
                     " FROM batches WHERE id = %s", bid)[0] == (True, False)
    post(stack, t["api_key"], {}, path=f"/cancel-batch-call/{bid}")


BAD = [
    ({"tasks": [{"to_number": "+12137774445"}]}, "from_number"),
    ({"from_number": "+14155550100"}, "tasks"),
    ({"from_number": "+14155550100", "tasks": []}, "tasks"),
    ({"from_number": "4155550100", "tasks": [{"to_number": "+12137774445"}]}, "from_number"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "213-777-4445"}]}, "tasks[0].to_number"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445",
      "retell_llm_dynamic_variables": {"n": 3}}]}, "retell_llm_dynamic_variables"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}],
      "reserved_concurrency": -1}, "reserved_concurrency"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}],
      "reserved_concurrency": 10}, "reserved_concurrency"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}],
      "trigger_timestamp": 1735718400000}, "trigger_timestamp"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}],
      "trigger_timestamp": "soon"}, "trigger_timestamp"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}],
      "call_time_window": {"windows": [{"start": 1200, "end": 300}]}}, "call_time_window"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}],
      "call_time_window": {"windows": [{"start": 540, "end": 720}, {"start": 780, "end": 1020}]}},
     "one window"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}],
      "call_time_window": {"windows": [{"start": 540, "end": 1020}], "day": ["Funday"]}}, "day[0]"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}],
      "call_time_window": {"windows": [{"start": 540, "end": 1020}], "timezone": "Mars/Olympus"}},
     "Mars/Olympus"),
    ({"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445", "override_agent_id": "a"},
                                               {"to_number": "+12137774446", "override_agent_id": "b"}]},
     "override_agent_id"),
]


@pytest.mark.parametrize("body,word", BAD)
def test_validation_errors_are_400_in_retells_shape_and_store_nothing(stack, t, body, word):
    n0 = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0]
    r = post(stack, t["api_key"], body)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "error" and word in r.json()["message"], r.text
    assert set(r.json()) == {"status", "message"}
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0] == n0


def test_malformed_json_is_400(stack, t):
    r = post(stack, t["api_key"], '{"from_number": ')
    assert r.status_code == 400 and r.json()["status"] == "error", r.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer bc_sk_0000000000000000_"
                                                           "00000000000000000000000000000000"},
                                     {"Authorization": "Basic abc"}])
def test_missing_or_invalid_key_is_401(stack, headers):
    r = requests.post(stack.api + "/create-batch-call",
                      json={"from_number": "+14155550100", "tasks": [{"to_number": "+12137774445"}]},
                      headers=headers, timeout=10)
    assert r.status_code == 401, r.text
    assert r.json()["status"] == "error" and r.json()["message"]


def test_unknown_number_or_unbound_agent_is_422(stack):
    t = stack.tenant(concurrency=4)
    r = post(stack, t["api_key"], {"from_number": "+19995550100", "tasks": [{"to_number": "+12137774445"}]})
    assert r.status_code == 422 and "+19995550100" in r.json()["message"], r.text
    # Two agents and a number bound to neither: which one would dial?
    stack.sql("INSERT INTO agents (id, tenant_id, name) VALUES (%s, %s, 'second')",
              "agent_second_" + t["tenant_id"], t["tenant_id"])
    r = post(stack, t["api_key"], {"from_number": t["from_number"], "tasks": [{"to_number": "+12137774445"}]})
    assert r.status_code == 422 and "agent" in r.json()["message"], r.text
    r = post(stack, t["api_key"], {"from_number": t["from_number"], "tasks": [{"to_number": "+12137774445"}],
                                   "agent_id": "agent_nope"})
    assert r.status_code == 422, r.text
    # Bound to an agent, the number picks it.
    stack.sql("UPDATE phone_numbers SET agent_id = %s WHERE id = %s", t["agent_id"], t["from_number_id"])
    r = post(stack, t["api_key"], {"from_number": t["from_number"], "tasks": [{"to_number": "+12137774445"}]})
    assert r.status_code == 201, r.text
    assert stack.sql("SELECT agent_id FROM batches WHERE id = %s", r.json()["batch_call_id"])[0][0] == \
        t["agent_id"]


def test_another_tenants_batch_is_404(stack, t):
    other = stack.tenant(concurrency=2)
    r = post(stack, other["api_key"], {"from_number": other["from_number"], "tasks": [{"to_number": "+12137770009"}]})
    assert r.status_code == 201, r.text
    bid = r.json()["batch_call_id"]
    for path, method in ((f"/get-batch-call/{bid}", "GET"), (f"/cancel-batch-call/{bid}", "POST")):
        x = requests.request(method, stack.api + path, headers=bearer(t["api_key"]), timeout=10)
        assert x.status_code == 404 and x.json() == {"status": "error", "message": "Batch call not found."}
    assert stack.sql("SELECT state FROM batches WHERE id = %s", bid)[0][0] != "cancelled"
