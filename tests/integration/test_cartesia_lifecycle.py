"""The Cartesia guide's track / retry / cancel / list flow, replayed."""
import requests

from conftest import cartesia_headers, wait_until

URL = "/agents/calls/batches"


def create(stack, t, n, limit=2, numbers=None, **extra):
    numbers = numbers or [f"+1415777{i:04d}" for i in range(n)]
    body = {"name": "March outreach", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": limit,
            "recipients": [{"to_number": num, "metadata": {"customer_id": f"cust_{i}"}}
                           for i, num in enumerate(numbers)]}
    body.update(extra)
    r = requests.post(stack.api + URL, json=body, headers=cartesia_headers(t["api_key"]), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def get(stack, t, bid):
    r = requests.get(f"{stack.api}{URL}/{bid}", headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_retry_requeues_only_failed_recipients(stack):
    t = stack.tenant(concurrency=10)
    # The simulator answers numbers ending in 0486 with busy (a magic number).
    busy = ["+14157710486", "+14157720486"]
    b = create(stack, t, 4, numbers=busy + ["+14157730001", "+14157730002"])
    done = wait_until(lambda: (lambda x: x if x["total_calls_finished"] == 4 else None)(
        get(stack, t, b["id"])), 60, "all four calls to end", interval=0.3)
    failed = {r["id"] for r in done["recipients"] if r["status"] == "failed"}
    assert {r["id"] for r in done["recipients"] if r["to_number"] in busy} <= failed
    assert all(r["end_reason"] == "dial_busy" for r in done["recipients"] if r["to_number"] in busy)
    completed = {r["id"] for r in done["recipients"] if r["status"] == "completed"}
    calls_before = {r["id"]: r["agent_call_id"] for r in done["recipients"]}
    r = requests.post(f"{stack.api}{URL}/{b['id']}/retry", headers=cartesia_headers(t["api_key"]),
                      timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["retry_count"] == 1
    after = wait_until(lambda: (lambda x: x if x["total_calls_finished"] == 4 else None)(
        get(stack, t, b["id"])), 60, "the retried calls to end", interval=0.3)
    for rec in after["recipients"]:
        if rec["id"] in completed:
            assert rec["agent_call_id"] == calls_before[rec["id"]], "completed ones are untouched"
        if rec["id"] in failed:
            assert rec["agent_call_id"] != calls_before[rec["id"]], "failed ones were dialed again"
    attempts = dict(stack.sql("SELECT id, attempts FROM recipients WHERE batch_id = %s", b["id"]))
    for rid in failed:
        assert attempts[rid] == 2
    for rid in completed:
        assert attempts[rid] == 1


def test_cancel_stops_queued_and_cannot_be_retried(stack):
    t = stack.tenant(concurrency=2)
    b = create(stack, t, 60, limit=1)
    c = requests.post(f"{stack.api}{URL}/{b['id']}/cancel", headers=cartesia_headers(t["api_key"]),
                      timeout=10)
    assert c.status_code == 200, c.text
    assert c.json()["status"] == "cancelled"
    got = get(stack, t, b["id"])
    statuses = [r["status"] for r in got["recipients"]]
    assert statuses.count("cancelled") >= 55
    assert all(s in ("cancelled", "dispatched", "started", "completed", "failed") for s in statuses)
    r = requests.post(f"{stack.api}{URL}/{b['id']}/retry", headers=cartesia_headers(t["api_key"]),
                      timeout=10)
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    again = requests.post(f"{stack.api}{URL}/{b['id']}/cancel", headers=cartesia_headers(t["api_key"]),
                          timeout=10)
    assert again.status_code == 200


def test_list_is_newest_first_with_a_cursor(stack):
    t = stack.tenant()
    ids = [create(stack, t, 1)["id"] for _ in range(3)]
    r = requests.get(stack.api + URL, params={"limit": 2}, headers=cartesia_headers(t["api_key"]),
                     timeout=10).json()
    assert [x["id"] for x in r["data"]] == ids[::-1][:2] and r["has_more"] is True
    r2 = requests.get(stack.api + URL, params={"limit": 2, "starting_after": ids[1]},
                      headers=cartesia_headers(t["api_key"]), timeout=10).json()
    assert [x["id"] for x in r2["data"]] == [ids[0]] and r2["has_more"] is False
    bad = requests.get(stack.api + URL, params={"limit": 101}, headers=cartesia_headers(t["api_key"]),
                       timeout=10)
    assert bad.status_code == 400


def test_pending_until_capacity_frees_oldest_first(stack):
    t = stack.tenant(concurrency=4)
    first = create(stack, t, 6, limit=4)
    second = create(stack, t, 2, limit=2)
    third = create(stack, t, 2, limit=1)
    rows = dict(stack.sql("SELECT id, state FROM batches WHERE id IN (%s, %s, %s)",
                          first["id"], second["id"], third["id"]))
    assert rows[first["id"]] == "admitted"
    # The first holds every slot; the other two wait, and as slots free up
    # the second gets them before the third is admitted.
    assert rows[second["id"]] == "pending" and rows[third["id"]] == "pending"
    assert "admitted_at" not in second
    done = wait_until(lambda: all(get(stack, t, b["id"])["total_calls_finished"] == n
                                  for b, n in ((first, 6), (second, 2), (third, 2))),
                      90, "all three batches to finish", interval=0.5)
    assert done
    adm = dict(stack.sql("SELECT id, admitted_at FROM batches WHERE id IN (%s, %s)",
                         second["id"], third["id"]))
    assert adm[second["id"]] <= adm[third["id"]]


def test_every_recipient_is_stored_exactly_as_sent(stack):
    """The create streams its rows to PostgreSQL in pieces (bc_pg_copy): a
    batch several pieces long is stored row for row, in order, exactly as
    sent, with text in each recipient's JSON that COPY's format must escape
    (JSON writes tab, newline and carriage return as backslash escapes, so
    every one reaches the stream as a backslash; a literal backslash and
    the two characters COPY reads as NULL, too) and non-ASCII text.
    Unescaped backslashes fail it."""
    import datetime
    import json
    t = stack.tenant(concurrency=10)
    when = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    odd = "tab\there\nnew\rcr \\back\\\\slash \\N \u00e9\u6f22 \"q\""
    recips = [{"to_number": f"+1415888{i:04d}",
               "metadata": {"row": i, "note": f"{odd} {i}", "pad": "x" * (i % 300)},
               "dynamic_variables": {"name": f"N\t{i}"} if i % 2 else None}
              for i in range(3000)]
    recips[7]["from_number"] = "+14155550123"
    b = create(stack, t, 0, limit=1, numbers=[], scheduled_at=when, recipients=recips)
    rows = stack.sql("SELECT seq, to_number, from_number, metadata::text, variables::text"
                     "  FROM recipients WHERE batch_id = %s ORDER BY seq", b["id"])
    assert len(rows) == 3000
    for (seq, to, frm, meta, var), sent in zip(rows, recips):
        assert to == sent["to_number"]
        assert frm == sent.get("from_number")
        assert json.loads(meta) == sent["metadata"], seq
        assert (json.loads(var) if var else None) == sent["dynamic_variables"], seq
    assert [r[0] for r in rows] == list(range(3000))
