"""The audit log (docs/api.md, "Audit log"): every write by a tenant's key or
an admin command is one append-only row saying who, what, when and from
where; a refused request writes none; a tenant reads only its own rows
(GET /v1/audit-logs) and the admin CLI reads any tenant's (batchcall audit)."""
import getpass
import json
import socket
import subprocess
import time

import psycopg2
import pytest
import requests

from conftest import batchcall_headers, bearer, cartesia_headers

IP = "127.0.0.1"   # where every request of the tests comes from


def mark(stack):
    return stack.sql("SELECT coalesce(max(id), 0) FROM audit_log")[0][0]


def rows_since(stack, since, tenant=None):
    """Every audit row written after mark `since` (of one tenant if given)."""
    return [dict(zip(("tenant_id", "actor", "key_id", "operator", "source", "action",
                      "target_id", "detail", "at"), r))
            for r in stack.sql("SELECT tenant_id, actor, key_id, operator, source, action,"
                               "       target_id, detail, at FROM audit_log"
                               " WHERE id > %s AND (%s::text IS NULL OR tenant_id = %s)"
                               " ORDER BY id", since, tenant, tenant)]


def only_row(stack, since, t, action, target=None):
    """The one row written since `since`: by t's key, from the test's address."""
    rows = rows_since(stack, since)
    assert len(rows) == 1, rows
    r = rows[0]
    assert (r["tenant_id"], r["actor"], r["key_id"], r["source"], r["action"]) == \
        (t["tenant_id"], "api_key", t["key_id"], IP, action), r
    assert r["operator"] is None
    if target is not None:
        assert r["target_id"] == target, r
    return r


def post(stack, path, headers, body=None):
    return requests.post(stack.api + path, headers=headers, json=body, timeout=30)


def audited(stack, t, action, call, status, target=None):
    """Runs call(); its answer must be status and leave exactly one row."""
    since = mark(stack)
    r = call()
    assert r.status_code == status, r.text
    return r, only_row(stack, since, t, action, target)


def refused(stack, call, status):
    """Runs call(); its answer must be status and leave no row at all."""
    since = mark(stack)
    r = call()
    assert r.status_code == status, r.text
    assert rows_since(stack, since) == []
    return r


@pytest.fixture(scope="module")
def t(stack):
    return stack.tenant(concurrency=10)


def cartesia_body(t, n=3):
    return {"name": "audit", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": 1,
            "recipients": [{"to_number": f"+1555300{i:04d}"} for i in range(n)]}


def test_every_batch_write_on_every_surface_is_one_row(stack, t):
    ck, bk = cartesia_headers(t["api_key"]), bearer(t["api_key"])
    url = "/agents/calls/batches"
    before = time.time()

    # Cartesia: create, pause, resume, retry, cancel.
    r, row = audited(stack, t, "batch.create", lambda: post(stack, url, ck, cartesia_body(t, 20)), 201)
    bid = r.json()["id"]
    assert row["target_id"] == bid
    assert row["detail"] == {"surface": "cartesia", "recipients": 20, "region": "us"}
    assert before - 5 <= row["at"].timestamp() <= time.time() + 5
    for verb in ("pause", "resume", "retry", "cancel"):
        audited(stack, t, f"batch.{verb}", lambda: post(stack, f"{url}/{bid}/{verb}", ck), 200, bid)

    # Rymi: create, then end (cancel and hang up): one row, not two.
    r, row = audited(stack, t, "batch.create", lambda: post(stack, "/v1/calls/batch", bk, {
        "agent_id": t["agent_id"], "to": ["+15553100001"], "from_number": t["from_number"]}), 202)
    rid = r.json()["id"]
    assert row["target_id"] == rid and row["detail"]["surface"] == "rymi"
    audited(stack, t, "batch.end", lambda: post(stack, f"/v1/calls/{rid}/end", bk), 200, rid)

    # batch-call: a draft, sent later.
    bh = batchcall_headers(t)
    r, row = audited(stack, t, "batch.create", lambda: post(stack, "/batch-call", bh, {
        "from_number": t["from_number"], "agent_id": t["agent_id"], "status": "draft",
        "tasks": [{"to_number": "+15553200001"}]}), 201)
    did = r.json()["data"]["batch_call_id"]
    assert row["target_id"] == did and row["detail"]["surface"] == "batch-call"
    audited(stack, t, "batch.send", lambda: post(stack, f"/batch-call/{did}/send", bh), 200, did)
    audited(stack, t, "batch.cancel", lambda: post(stack, f"/batch-call/{did}/cancel", bh), 200, did)

    # Retell: create, cancel.
    r, row = audited(stack, t, "batch.create", lambda: post(stack, "/create-batch-call", bk, {
        "from_number": t["from_number"], "tasks": [{"to_number": "+15553300001"}]}), 201)
    tid = r.json()["batch_call_id"]
    assert row["detail"]["surface"] == "retell"
    audited(stack, t, "batch.cancel", lambda: post(stack, f"/cancel-batch-call/{tid}", bk), 200, tid)

    # The whole tenant: pause and resume.
    _, row = audited(stack, t, "tenant.pause", lambda: post(stack, "/v1/calls/queue/pause", bk), 200,
                     t["tenant_id"])
    assert "batches" in row["detail"]
    audited(stack, t, "tenant.resume", lambda: post(stack, "/v1/calls/queue/resume", bk), 200,
            t["tenant_id"])


def test_every_rymi_resource_write_is_one_row(stack):
    t = stack.tenant(concurrency=5)
    k = bearer(t["api_key"])

    def call(method, path, body=None):
        return lambda: requests.request(method, stack.api + "/v1" + path, headers=k, json=body,
                                        timeout=30)

    r, row = audited(stack, t, "agent.create", call("POST", "/agents", {
        "name": "audited", "region": "eu", "endpoint": "wss://agent.example.com/s", "prompt": "x"}),
        201)
    agent = r.json()["id"]
    assert row["target_id"] == agent
    assert row["detail"] == {"name": "audited", "region": "eu", "endpoint_kind": "stream"}
    _, row = audited(stack, t, "agent.update", call("PUT", f"/agents/{agent}", {"name": "renamed"}),
                     200, agent)
    assert row["detail"]["name"] == "renamed"

    r, row = audited(stack, t, "number.create", call("POST", "/numbers", {"number": "+15553400001"}),
                     201)
    assert row["target_id"] == r.json()["id"] and row["detail"]["number"] == "+15553400001"
    _, row = audited(stack, t, "number.attach",
                     call("POST", "/numbers/+15553400001/attach", {"agent_id": agent}), 200,
                     r.json()["id"])
    assert row["detail"]["agent_id"] == agent
    audited(stack, t, "number.delete", call("DELETE", "/numbers/+15553400001"), 200, "+15553400001")
    audited(stack, t, "agent.delete", call("DELETE", f"/agents/{agent}"), 200, agent)

    _, row = audited(stack, t, "dnc.add", call("POST", "/dnc", {"number": "+15553500001",
                                                                "reason": "asked"}), 201,
                     "+15553500001")
    assert row["detail"] == {"reason": "asked"}
    _, row = audited(stack, t, "dnc.add_bulk", call("POST", "/dnc/batch", {
        "numbers": ["+15553500002", "+15553500003", "+15553500001"]}), 201)
    assert row["target_id"] is None and row["detail"] == {"added": 2, "received": 3}
    audited(stack, t, "dnc.remove", call("DELETE", "/dnc/+15553500002"), 200, "+15553500002")
    # A check reads: no row.
    since = mark(stack)
    assert call("POST", "/dnc/check", {"number": "+15553500001"})().status_code == 200
    assert rows_since(stack, since) == []

    r, row = audited(stack, t, "webhook.create", call("POST", "/webhooks", {
        "url": "http://127.0.0.1:9/hook", "events": ["call.completed"]}), 201)
    hook = r.json()["id"]
    assert row["target_id"] == hook and r.json()["secret"]
    # The secret is shown once, to the caller, and never kept in the log.
    assert row["detail"] == {"url": "http://127.0.0.1:9/hook", "events": ["call.completed"],
                             "enabled": True}
    _, row = audited(stack, t, "webhook.update", call("PATCH", f"/webhooks/{hook}",
                                                      {"enabled": False}), 200, hook)
    assert row["detail"]["enabled"] is False
    audited(stack, t, "webhook.delete", call("DELETE", f"/webhooks/{hook}"), 200, hook)

    r, row = audited(stack, t, "key.issue", call("POST", "/keys/publishable"), 201)
    pk = r.json()["id"]
    assert row["target_id"] == pk and row["detail"] == {"type": "publishable"}
    audited(stack, t, "key.revoke", call("DELETE", f"/keys/publishable/{pk}"), 200, pk)
    r, row = audited(stack, t, "key.regenerate", call("POST", "/auth/regenerate-key"), 201)
    assert row["target_id"] == r.json()["id"]
    assert row["detail"] == {"type": "secret", "revoked_key_id": t["key_id"]}
    assert r.json()["api_key"] not in json.dumps(row["detail"])


def test_a_refused_request_writes_no_row(stack, t):
    ck, bk = cartesia_headers(t["api_key"]), bearer(t["api_key"])
    url = "/agents/calls/batches"
    bid = post(stack, url, ck, cartesia_body(t)).json()["id"]
    assert post(stack, f"{url}/{bid}/cancel", ck).status_code == 200

    # 400: malformed bodies, on a core verb and on a surface-only resource.
    refused(stack, lambda: post(stack, url, ck, {"name": "x"}), 400)
    refused(stack, lambda: post(stack, "/v1/calls/batch", bk, {"agent_id": t["agent_id"], "to": []}), 400)
    refused(stack, lambda: post(stack, "/v1/dnc", bk, {"number": "555"}), 400)
    refused(stack, lambda: post(stack, "/v1/webhooks", bk, {"url": "ftp://x", "events": []}), 400)
    # 401: no key, a wrong key.
    refused(stack, lambda: post(stack, url, {"Cartesia-Version": "2026-03-01"}, cartesia_body(t)), 401)
    refused(stack, lambda: post(stack, "/v1/dnc", bearer("bc_sk_nope"), {"number": "+15553600001"}),
            401)
    # 403: a publishable key on a route it may not use.
    pk = post(stack, "/v1/keys/publishable", bk).json()["key"]
    refused(stack, lambda: post(stack, "/v1/dnc", bearer(pk), {"number": "+15553600001"}), 403)
    refused(stack, lambda: post(stack, "/v1/calls/batch", bearer(pk), {
        "agent_id": t["agent_id"], "to": ["+15553600001"]}), 403)
    # 404: unknown batch, agent, listed number; another tenant's batch.
    refused(stack, lambda: post(stack, f"{url}/acb_nosuchbatch/cancel", ck), 404)
    refused(stack, lambda: post(stack, f"{url}/acb_nosuchbatch/pause", ck), 404)
    refused(stack, lambda: requests.delete(stack.api + "/v1/agents/agent_nosuch", headers=bk,
                                           timeout=10), 404)
    refused(stack, lambda: requests.delete(stack.api + "/v1/dnc/+15553600009", headers=bk,
                                           timeout=10), 404)
    other = stack.tenant(concurrency=5)
    refused(stack, lambda: post(stack, f"{url}/{bid}/cancel", cartesia_headers(other["api_key"])),
            404)
    # 409: a cancelled batch cannot be paused, resumed or retried; a number twice.
    for verb in ("pause", "resume", "retry"):
        refused(stack, lambda: post(stack, f"{url}/{bid}/{verb}", ck), 409)
    refused(stack, lambda: post(stack, "/v1/numbers", bk, {"number": t["from_number"]}), 409)
    # A replay of an Idempotency-Key writes nothing: the write happened once.
    h = dict(bk, **{"Idempotency-Key": "audit-replay"})
    audited(stack, t, "dnc.add", lambda: post(stack, "/v1/dnc", h, {"number": "+15553600100"}), 201)
    r = refused(stack, lambda: post(stack, "/v1/dnc", h, {"number": "+15553600100"}), 201)
    assert r.headers.get("Idempotent-Replayed") == "true"
    # 402: no credit left for a new batch.
    poor = stack.tenant(concurrency=5, credits=0)
    refused(stack, lambda: post(stack, "/v1/calls/batch", bearer(poor["api_key"]), {
        "agent_id": poor["agent_id"], "to": ["+15553600001"]}), 402)


def test_a_tenant_reads_only_its_own_rows_newest_first(stack):
    a, b = stack.tenant(concurrency=5), stack.tenant(concurrency=5)
    ka, kb = bearer(a["api_key"]), bearer(b["api_key"])
    for i in range(3):
        assert post(stack, "/v1/dnc", ka, {"number": f"+1555370000{i}"}).status_code == 201
    assert post(stack, "/v1/dnc", kb, {"number": "+15553709999"}).status_code == 201

    def page(key, **params):
        r = requests.get(stack.api + "/v1/audit-logs", headers=key, params=params, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    mine = page(ka)
    rows = mine["audit_logs"]
    ours = stack.sql("SELECT 'aud_' || id FROM audit_log WHERE tenant_id = %s ORDER BY id DESC",
                     a["tenant_id"])
    assert [r["id"] for r in rows] == [x[0] for x in ours]
    assert mine["total"] == len(ours) and mine["limit"] == 50 and mine["offset"] == 0
    assert "+15553709999" not in {r["target_id"] for r in rows}
    assert [r["target_id"] for r in rows[:3]] == ["+15553700002", "+15553700001", "+15553700000"]
    first = rows[0]
    assert first["action"] == "dnc.add" and first["created_at"].endswith("Z")
    assert first["actor"] == {"type": "api_key", "key_id": a["key_id"], "ip": IP}
    # The admin CLI made the tenant: its rows show, without who ran it or where.
    admin = [r for r in rows if r["actor"]["type"] == "admin"]
    assert {r["action"] for r in admin} >= {"tenant.create", "key.issue", "agent.create",
                                            "number.create", "tenant.limits"}
    assert all(r["actor"] == {"type": "admin"} for r in admin)
    # Paging and the action filter.
    p = page(ka, limit=2, offset=1)
    assert [r["id"] for r in p["audit_logs"]] == [r["id"] for r in rows[1:3]]
    assert (p["total"], p["limit"], p["offset"]) == (len(ours), 2, 1)
    only = page(ka, action="dnc.add")
    assert only["total"] == 3 and {r["action"] for r in only["audit_logs"]} == {"dnc.add"}
    # The other tenant sees its one DNC row and nothing of a's.
    theirs = page(kb)["audit_logs"]
    assert {r["target_id"] for r in theirs if r["action"] == "dnc.add"} == {"+15553709999"}
    assert not {r["id"] for r in theirs} & {r["id"] for r in rows}
    # Errors as on Rymi's other lists; a publishable key may not read it.
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}):
        r = requests.get(stack.api + "/v1/audit-logs", headers=ka, params=bad, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
    pk = post(stack, "/v1/keys/publishable", ka).json()["key"]
    r = requests.get(stack.api + "/v1/audit-logs", headers=bearer(pk), timeout=10)
    assert r.status_code == 403, r.text
    assert requests.get(stack.api + "/v1/audit-logs", timeout=10).status_code == 401


def test_postgresql_refuses_to_change_or_delete_a_row(stack, t):
    assert stack.sql("SELECT count(*) FROM audit_log WHERE tenant_id = %s", t["tenant_id"])[0][0] > 0
    for stmt in ("UPDATE audit_log SET action = 'forged' WHERE tenant_id = %s",
                 "DELETE FROM audit_log WHERE tenant_id = %s",
                 "UPDATE audit_log SET tenant_id = 'org_x' WHERE tenant_id = %s"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="append-only"):
            stack.sql(stmt, t["tenant_id"])
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="append-only"):
        stack.sql("TRUNCATE audit_log")
    assert stack.sql("SELECT count(*) FROM audit_log WHERE action = 'forged'")[0][0] == 0


def test_admin_commands_are_rows_with_the_operator_and_the_cli_lists_them(stack, t):
    since = mark(stack)
    out = stack.cli("credits-add", "--tenant", t["tenant_id"], "--cents", "250")
    rows = rows_since(stack, since)
    assert len(rows) == 1, rows
    r = rows[0]
    assert (r["tenant_id"], r["actor"], r["key_id"], r["action"], r["target_id"], r["detail"]) == \
        (t["tenant_id"], "admin", None, "credits.add", t["tenant_id"], {"cents": 250})
    assert r["operator"].startswith(getpass.getuser()) and r["source"] == socket.gethostname()
    # The balance after: credits granted less those held and spent
    # (docs/api.md, Credits).
    assert out["credits_cents"] == stack.sql(
        "SELECT t.credits_cents - u.used_cents FROM tenants t"
        " JOIN credit_usage u ON u.tenant_id = t.id WHERE t.id = %s", t["tenant_id"])[0][0]
    # A command that changes nothing writes nothing.
    since = mark(stack)
    p = subprocess.run([stack.bin("batchcall"), "credits-add", "--tenant", "org_nosuch",
                        "--cents", "5"], env=stack.env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and rows_since(stack, since) == []

    log = stack.cli("audit", "--tenant", t["tenant_id"], "--limit", "1000")
    ours = stack.sql("SELECT 'aud_' || id FROM audit_log WHERE tenant_id = %s ORDER BY id DESC",
                     t["tenant_id"])
    assert [x["id"] for x in log["audit_logs"]] == [x[0] for x in ours]
    assert log["total"] == len(ours)
    top = log["audit_logs"][0]
    assert top["action"] == "credits.add"
    assert top["actor"] == {"type": "admin", "operator": r["operator"], "host": r["source"]}
    assert any(x["actor"]["type"] == "api_key" for x in log["audit_logs"])
    only = stack.cli("audit", "--tenant", t["tenant_id"], "--action", "tenant.create")
    assert [x["action"] for x in only["audit_logs"]] == ["tenant.create"]
