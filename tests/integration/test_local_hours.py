"""Calling hours read in each recipient's own time zone (else the batch's),
on PostgreSQL's movable clock (clock_offset): windows open and close
because the test moves the clock, not because it waits for them."""
import datetime
import json
from zoneinfo import ZoneInfo

import pytest
import requests

from conftest import cartesia_batch, wait_until
from test_dispatch import all_terminal, assert_one_dial_per_recipient, cartesia_headers, create, dials

ZONES = {"Asia/Tokyo": "+1431", "Europe/Berlin": "+1432", "America/New_York": "+1433"}
HOURS = {"start": "09:00", "end": "17:00"}


def set_clock(stack, utc):
    """Moves the clock calling hours are read on to the UTC time given."""
    stack.sql("INSERT INTO clock_offset (one, offset_s)"
              " VALUES (true, extract(epoch FROM %s::timestamptz - now()))"
              " ON CONFLICT (one) DO UPDATE SET offset_s = excluded.offset_s", utc)


@pytest.fixture
def clock(stack):
    yield lambda utc: set_clock(stack, utc)
    stack.sql("DELETE FROM clock_offset")


def dialed_numbers(stack, bid):
    return {d["to"] for d in dials(stack, bid)}


def test_each_recipient_is_called_only_inside_its_own_hours(stack, clock):
    t = stack.tenant(concurrency=10)
    recipients = [{"to_number": f"{prefix}{i:07d}", "timezone": zone}
                  for zone, prefix in ZONES.items() for i in range(3)]
    by_zone = {zone: {f"{prefix}{i:07d}" for i in range(3)} for zone, prefix in ZONES.items()}
    # A Wednesday, 01:00 UTC: 10:00 in Tokyo; 02:00 in Berlin; 20:00 the
    # day before in New York. Only Tokyo is inside 09:00-17:00.
    clock("2026-11-25 01:00:00+00")
    bid = create(stack, t, [], limit=5, calling_hours=HOURS, timezone="UTC",
                 recipients=recipients)
    wait_until(lambda: dialed_numbers(stack, bid) == by_zone["Asia/Tokyo"], 30,
               "Tokyo's recipients to be dialed")
    wait_until(lambda: cartesia_batch(stack, t, bid)["total_calls_waiting_for_window"] == 6, 15,
               "Berlin's and New York's recipients to be counted as waiting for their window")
    # The others wait, holding no slot and no released job.
    assert stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s AND released"
                     " AND timezone <> 'Asia/Tokyo'", bid)[0][0] == 0
    opens = dict(stack.sql("SELECT timezone, min(next_attempt_at) FROM recipients"
                           " WHERE batch_id = %s AND window_wait GROUP BY 1", bid))
    assert opens["Europe/Berlin"] == datetime.datetime(2026, 11, 25, 8, 0, tzinfo=datetime.timezone.utc)
    assert opens["America/New_York"] == datetime.datetime(2026, 11, 25, 14, 0, tzinfo=datetime.timezone.utc)

    # 09:30 UTC: 10:30 in Berlin (open), 18:30 in Tokyo, 04:30 in New York.
    clock("2026-11-25 09:30:00+00")
    wait_until(lambda: dialed_numbers(stack, bid) == by_zone["Asia/Tokyo"] | by_zone["Europe/Berlin"],
               30, "Berlin's recipients to be dialed once its hours open")
    assert cartesia_batch(stack, t, bid)["total_calls_waiting_for_window"] == 3

    # 15:00 UTC: 10:00 in New York.
    clock("2026-11-25 15:00:00+00")
    all_terminal(stack, bid, 60)
    assert cartesia_batch(stack, t, bid)["total_calls_waiting_for_window"] == 0
    assert_one_dial_per_recipient(stack, bid, [r["to_number"] for r in recipients], 5)


def test_hours_across_midnight_open_in_each_zone(stack, clock):
    """22:00-06:00 read in Tokyo while it is 12:00 there: the recipient waits
    for 22:00 Tokyo (13:00 UTC) and is called once the clock passes it."""
    t = stack.tenant(concurrency=5)
    clock("2026-11-25 03:00:00+00")
    bid = create(stack, t, [], limit=1, calling_hours={"start": "22:00", "end": "06:00"},
                 recipients=[{"to_number": "+14340000001", "timezone": "Asia/Tokyo"}])
    wait_until(lambda: stack.sql("SELECT next_attempt_at FROM recipients WHERE batch_id = %s"
                                 " AND window_wait", bid), 15, "the recipient to be deferred")
    assert stack.sql("SELECT next_attempt_at FROM recipients WHERE batch_id = %s", bid)[0][0] == \
        datetime.datetime(2026, 11, 25, 13, 0, tzinfo=datetime.timezone.utc)
    assert dials(stack, bid) == []
    clock("2026-11-25 13:00:01+00")
    all_terminal(stack, bid, 30)
    assert len(dials(stack, bid)) == 1


@pytest.mark.parametrize("hours,zone,at,expect", [
    (HOURS, "Asia/Tokyo", "2026-11-25 06:20+00", "2026-11-25 06:20+00"),     # inside: now
    (HOURS, "America/New_York", "2026-11-25 06:20+00", "2026-11-25 14:00+00"),
    ({"start": "22:00", "end": "06:00"}, "Europe/Paris", "2026-11-25 12:00+00", "2026-11-25 21:00+00"),
    # Saturdays only, across midnight: Saturday's own 00:00-06:00 comes first.
    ({"start": "22:00", "end": "06:00", "days": [6]}, "Europe/Paris", "2026-11-25 12:00+00",
     "2026-11-27 23:00+00"),
    ({"start": "09:00", "end": "17:00", "days": [1]}, "UTC", "2026-11-25 12:00+00", "2026-11-30 09:00+00"),
    # The spring-forward Sunday in New York: 09:00 EDT is 13:00 UTC.
    (HOURS, "America/New_York", "2026-03-08 06:00+00", "2026-03-08 13:00+00"),
    (None, "UTC", "2026-11-25 12:00+00", "2026-11-25 12:00+00"),
])
def test_next_calling_time(stack, hours, zone, at, expect):
    got = stack.sql("SELECT next_calling_time(%s::jsonb, %s, %s::timestamptz) = %s::timestamptz",
                    json.dumps(hours) if hours else None, zone, at, expect)[0][0]
    assert got is True


def test_recipient_timezones_are_validated_on_every_surface(stack):
    t = stack.tenant()
    base = {"name": "tz", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"]}
    for tz, word in (("Not A Zone!", "timezone"), ("Mars/Olympus", "Mars/Olympus"), (7, "timezone")):
        r = requests.post(stack.api + "/agents/calls/batches",
                          json=dict(base, recipients=[{"to_number": "+14155550000", "timezone": tz}]),
                          headers=cartesia_headers(t["api_key"]), timeout=10)
        assert r.status_code == 400 and word in r.json()["error"], r.text
    r = requests.post(stack.api + "/v1/calls/batch",
                      json={"agent_id": t["agent_id"],
                            "recipients": [{"to": "+14155550000", "timezone": "Bad Zone"}]},
                      headers={"Authorization": f"Bearer {t['api_key']}"}, timeout=10)
    assert r.status_code == 400 and "timezone" in r.text, r.text
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0] == 0


def test_a_clock_offset_row_is_ignored_unless_the_test_clock_is_on(stack, tmp_path):
    """bc_now() reads clock_offset only in sessions where the setting
    batchcall.test_clock is on (sql/0025_test_clock.sql); the test database
    has it on, a production one has no such setting. A scheduler and worker
    whose sessions have it off read calling hours on the server's clock,
    whatever row is there: hours the moved clock would open stay closed."""
    import psycopg2
    from test_dispatch import Extra
    tokyo = datetime.datetime.now(ZoneInfo("Asia/Tokyo"))
    closed = {"start": (tokyo + datetime.timedelta(hours=2)).strftime("%H:%M"),
              "end": (tokyo + datetime.timedelta(hours=3)).strftime("%H:%M")}
    # 2.5 hours ahead: inside those hours on the moved clock.
    set_clock(stack, (datetime.datetime.now(datetime.timezone.utc)
                      + datetime.timedelta(seconds=9000)).isoformat())
    extra = Extra(stack, tmp_path)
    try:
        for setting, moved in (("on", True), ("off", False), ("0", False)):
            with psycopg2.connect(stack.dsn, options=f"-c batchcall.test_clock={setting}") as conn, \
                    conn.cursor() as cur:
                cur.execute("SELECT extract(epoch FROM bc_now() - now())")
                assert abs(float(cur.fetchone()[0]) - (9000 if moved else 0)) < 5, setting
        off = {"BC_REGION": "apac", "PGOPTIONS": "-c batchcall.test_clock=off"}
        extra.start("sched-clock", "batchcall-scheduler", dict(off, BC_SCHEDULER_TICK_MS="50"))
        extra.start("w-clock", "batchcall-worker", off)
        t = stack.tenant(concurrency=4)
        numbers = [f"+1434{i:07d}" for i in range(3)]
        bid = create(stack, t, numbers, limit=3, timezone="Asia/Tokyo", calling_hours=closed,
                     region="APAC")
        # Put off to the opening on the server's clock, about 2 hours away.
        wait_until(lambda: stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s"
                                     " AND window_wait AND NOT released", bid)[0][0] == 3, 15,
                   "the recipients to be put off to their hours")
        waits = stack.sql("SELECT extract(epoch FROM next_attempt_at - now()) FROM recipients"
                          " WHERE batch_id = %s", bid)
        assert all(3600 < float(s) <= 7200 for (s,) in waits), waits
        assert stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s", bid)[0][0] == 0
        r = requests.post(f"{stack.api}/agents/calls/batches/{bid}/cancel",
                          headers=cartesia_headers(t["api_key"]), timeout=10)
        assert r.status_code == 200, r.text
    finally:
        extra.stop()
        stack.sql("DELETE FROM clock_offset")


def test_a_create_answers_with_the_recipients_its_first_release_deferred(stack, clock):
    """A create whose policy stopped nobody answers without reading its
    recipients back (batch_get_new); the recipients its first release
    deferred to their hours, in the create's own transaction, are still
    counted. Outside every recipient's hours, the create's answer and a
    read right after it agree: all of them wait for their window."""
    t = stack.tenant(concurrency=10)
    clock("2026-11-25 01:00:00+00")   # 01:00 UTC: outside 09:00-17:00 UTC
    body = {"name": "night", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "target_concurrency_limit": 2, "calling_hours": HOURS, "timezone": "UTC",
            "recipients": [{"to_number": f"+1434{i:07d}"} for i in range(5)]}
    r = requests.post(stack.api + "/agents/calls/batches", json=body,
                      headers=cartesia_headers(t["api_key"]), timeout=60)
    assert r.status_code == 201, r.text
    created = r.json()
    waiting = stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s AND window_wait",
                        created["id"])[0][0]
    assert waiting > 0, "the create's release deferred its first window"
    assert created["total_calls_waiting_for_window"] == waiting
    assert cartesia_batch(stack, t, created["id"])["total_calls_waiting_for_window"] == waiting

