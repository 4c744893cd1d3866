"""Legal calling hours (docs/api.md, "Tenant policy"): a tenant policy, on
by default, that no call starts outside 08:00-21:00 in the recipient's local
time; the zone is the recipient's own, else inferred from its number with
libphonenumber's prefix map (tz_prefixes, loaded by `batchcall tz-load`),
conservatively across every zone a prefix spans. A recipient outside them is
deferred to the next legal opening, not failed. The simulator's ledger is the
witness; the clock is PostgreSQL's movable one (clock_offset)."""
import datetime
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, TZ_PREFIXES, Stack, cartesia_batch, free_port, scrape, wait_until
from test_dispatch import all_terminal, create, dials
from test_local_hours import clock  # noqa: F401 (a fixture)

UTC = datetime.timezone.utc
LEGAL = {"start": "08:00", "end": "21:00"}


def policy_on(stack, t, **kw):
    args = ["tenant-legal-hours", "--tenant", t["tenant_id"], "--legal-hours", "on"]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", v]
    return stack.cli(*args)


def deferred_until(stack, bid):
    """(next_attempt_at, window_wait) of a one-recipient batch, once it is
    deferred."""
    return wait_until(lambda: stack.sql("SELECT next_attempt_at, window_wait FROM recipients"
                                        " WHERE batch_id = %s AND window_wait", bid), 15,
                      "the recipient to be deferred")[0]


def test_the_policy_is_on_by_default_and_set_by_the_admin_cli(stack):
    # The migration's default, before the test database turned it off
    # (conftest.Stack.create_db).
    assert stack.legal_hours_default == "true"
    t = stack.tenant()
    out = policy_on(stack, t, legal_start="09:00", legal_end="20:30")
    assert out == {"tenant_id": t["tenant_id"], "legal_hours": True, "start": "09:00", "end": "20:30"}
    assert stack.sql("SELECT legal_hours, legal_start::text, legal_end::text FROM tenants"
                     " WHERE id = %s", t["tenant_id"]) == [(True, "09:00:00", "20:30:00")]
    assert stack.sql("SELECT detail->>'start' FROM audit_log WHERE tenant_id = %s"
                     " AND action = 'tenant.legal_hours'", t["tenant_id"]) == [("09:00",)]
    for bad in (["--legal-hours", "maybe"], ["--legal-start", "21:00", "--legal-end", "08:00"],
                ["--legal-start", "8:00"]):
        r = subprocess.run([stack.bin("batchcall"), "tenant-legal-hours", "--tenant", t["tenant_id"],
                            *bad], env=stack.env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "legal-" in r.stderr, (bad, r.stderr)
    assert stack.sql("SELECT legal_start::text FROM tenants WHERE id = %s",
                     t["tenant_id"]) == [("09:00:00",)]


@pytest.mark.parametrize("number,zones", [
    ("+12125550100", ["America/New_York"]),                          # US: Manhattan
    ("+442071234567", ["Europe/London"]),                            # Europe: London
    ("+81312345678", ["Asia/Tokyo"]),                                # Asia: Tokyo
    ("+17755550100", ["America/Boise", "America/Los_Angeles"]),      # Nevada's 775 spans two
])
def test_a_numbers_zone_is_inferred_from_its_prefix(stack, number, zones):
    assert stack.sql("SELECT number_zones(%s)", number)[0][0] == zones


@pytest.mark.parametrize("number,at,expect", [
    # A Wednesday in November (no daylight saving anywhere here).
    ("+12125550100", "2026-11-25 12:59+00", "2026-11-25 13:00+00"),  # 07:59 New York
    ("+12125550100", "2026-11-25 13:00+00", "2026-11-25 13:00+00"),  # 08:00: open
    ("+12125550100", "2026-11-26 01:59+00", "2026-11-26 01:59+00"),  # 20:59: open
    ("+12125550100", "2026-11-26 02:00+00", "2026-11-26 13:00+00"),  # 21:00: closed
    ("+442071234567", "2026-11-25 21:30+00", "2026-11-26 08:00+00"),
    ("+81312345678", "2026-11-25 18:00+00", "2026-11-25 23:00+00"),  # 03:00 Tokyo
    # Boise is an hour ahead of Los Angeles: only 08:00-20:00 Pacific is
    # legal in both. 07:30 Pacific (08:30 Boise) waits for 08:00 Pacific;
    # 20:00 Pacific (21:00 Boise) waits for the next morning.
    ("+17755550100", "2026-11-25 15:30+00", "2026-11-25 16:00+00"),
    ("+17755550100", "2026-11-26 03:59+00", "2026-11-26 03:59+00"),
    ("+17755550100", "2026-11-26 04:00+00", "2026-11-26 16:00+00"),
])
def test_the_next_legal_opening_is_open_in_every_zone_of_the_number(stack, number, at, expect):
    got = stack.sql("SELECT next_legal_time(%s::jsonb, number_zones(%s), %s::timestamptz)",
                    json.dumps(LEGAL), number, at)[0][0]
    assert got == datetime.datetime.fromisoformat(expect)


def test_a_call_may_start_at_2059_local_but_not_at_2100(stack, clock):
    """The rule is about starting a call (no call initiated after 9 p.m.):
    at 20:59 in New York a recipient with a 5-minute call pending is dialed,
    though the call may run past 21:00; one reached at 21:00 waits for 08:00
    and is dialed then. Zones come from the numbers (+1 212: New York)."""
    t = stack.tenant(concurrency=5)
    policy_on(stack, t)
    clock("2026-11-26 01:59:00+00")   # Wednesday 20:59 in New York
    early = create(stack, t, ["+12125550101"], limit=1, max_call_duration_minutes=5)
    wait_until(lambda: dials(stack, early), 15, "the 20:59 recipient to be dialed")
    all_terminal(stack, early, 30)

    clock("2026-11-26 02:00:05+00")   # 21:00:05 in New York
    late = create(stack, t, ["+12125550102"], limit=1, max_call_duration_minutes=5)
    at, waiting = deferred_until(stack, late)
    assert waiting and at == datetime.datetime(2026, 11, 26, 13, 0, tzinfo=UTC)   # 08:00 New York
    assert cartesia_batch(stack, t, late)["total_calls_waiting_for_window"] == 1
    assert stack.sql("SELECT status, end_reason FROM recipients WHERE batch_id = %s", late) == \
        [("queued", None)]
    assert dials(stack, late) == []

    clock("2026-11-26 13:00:01+00")   # 08:00:01
    wait_until(lambda: dials(stack, late), 15, "the deferred recipient to be dialed at 08:00")
    all_terminal(stack, late, 30)
    assert len(dials(stack, late)) == 1


def test_a_number_where_it_is_3am_is_deferred_to_the_next_legal_opening(stack, clock):
    """+81 3: Tokyo. 18:00 UTC is 03:00 there: the recipient is not dialed
    and not failed, it waits for 08:00 Tokyo (23:00 UTC), visible as waiting
    for its window, and is dialed once the clock gets there. A New York
    number of the same batch (13:00 there) is dialed at once."""
    t = stack.tenant(concurrency=5)
    policy_on(stack, t)
    clock("2026-11-25 18:00:00+00")
    bid = create(stack, t, ["+81312340001", "+12125550201"], limit=2)
    wait_until(lambda: [d["to"] for d in dials(stack, bid)] == ["+12125550201"], 15,
               "the New York recipient to be dialed")
    at, _ = deferred_until(stack, bid)
    assert at == datetime.datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert cartesia_batch(stack, t, bid)["total_calls_waiting_for_window"] == 1
    assert "+81312340001" not in {d["to"] for d in dials(stack, bid)}
    clock("2026-11-25 23:00:01+00")
    all_terminal(stack, bid, 30)
    assert sorted(d["to"] for d in dials(stack, bid)) == ["+12125550201", "+81312340001"]


def test_an_explicit_recipient_zone_wins_over_the_numbers(stack, clock):
    """A recipient's own timezone is its local time, whatever its number's
    prefix says: a +1 212 number living in Tokyo is called in Tokyo's day."""
    t = stack.tenant(concurrency=5)
    policy_on(stack, t)
    clock("2026-11-25 03:00:00+00")   # 12:00 Tokyo, 22:00 New York
    bid = create(stack, t, [], limit=1,
                 recipients=[{"to_number": "+12125550301", "timezone": "Asia/Tokyo"}])
    all_terminal(stack, bid, 30)
    assert len(dials(stack, bid)) == 1


def test_a_tenant_with_the_policy_off_is_not_constrained(stack, clock):
    t = stack.tenant(concurrency=5)   # the test database's tenants start with it off
    assert stack.sql("SELECT legal_hours FROM tenants WHERE id = %s", t["tenant_id"]) == [(False,)]
    clock("2026-11-25 18:00:00+00")   # 03:00 in Tokyo, 13:00 in New York
    bid = create(stack, t, ["+81312340002"], limit=1)
    all_terminal(stack, bid, 30)
    assert len(dials(stack, bid)) == 1
    # And a tenant that turns it off again is not constrained either.
    t2 = stack.tenant(concurrency=5)
    policy_on(stack, t2)
    stack.cli("tenant-legal-hours", "--tenant", t2["tenant_id"], "--legal-hours", "off")
    bid2 = create(stack, t2, ["+81312340003"], limit=1)
    all_terminal(stack, bid2, 30)
    assert len(dials(stack, bid2)) == 1


def test_tz_load_is_idempotent(stack, tmp_path):
    src = tmp_path / "tz.txt"
    with open(src, "w") as f:
        subprocess.run(["python3", os.path.join(ROOT, "deploy", "tz-prefixes.py")], stdout=f,
                       check=True, timeout=60)
    out = stack.cli("tz-load", "--file", str(src))
    assert out["changed"] == 0 and out["removed"] == 0 and out["prefixes"] > 3000
    bad = tmp_path / "bad.txt"
    bad.write_text("12x|America/New_York\n")
    r = subprocess.run([stack.bin("batchcall"), "tz-load", "--file", str(bad)], env=stack.env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "line 1" in r.stderr
    assert stack.sql("SELECT count(*) FROM tz_prefixes")[0][0] == out["prefixes"]



def test_an_empty_time_zone_map_is_reported_and_warned_about(tmp_path):
    """An install that never ran tz-load calls every number on its batch's
    time zone: the scheduler says so, scheduler_tz_prefixes 0 and a
    warning while a tenant has legal hours on, until the map is loaded
    (by loads running together, as the API pods' init containers do).
    A database of its own: the session's has the map, and other tests
    read it."""
    s = Stack(tmp_path)
    try:
        s.create_bare_db()
        t = s.cli("tenant-create", "--name", "no map")   # legal hours on, the default
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        sched = s.start("scheduler", "batchcall-scheduler", {
            "BC_SCHEDULER_PORT": str(port), "BC_SCHEDULER_TICK_MS": "50", "BC_WEBHOOKS": "0"})
        s.wait_ready(url)
        (warn,) = wait_until(lambda: sched.events("tz.map_empty"), 15, "the empty map warning")
        assert warn["level"] == "warn" and warn["prefixes"] == 0
        assert warn["legal_hours_tenants"] == 1, (warn, t)
        assert scrape(url)["scheduler_tz_prefixes"] == 0
        # Loaded as the API pods' init containers load it: three at once,
        # each all or nothing, taking turns; one writes the map.
        tz = tmp_path / "tz-prefixes.txt"
        with open(tz, "w") as f:
            subprocess.run([sys.executable, TZ_PREFIXES], stdout=f, check=True, timeout=60)
        loads = [subprocess.Popen([s.bin("batchcall"), "tz-load", "--file", str(tz)], env=s.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        outs = [p.communicate(timeout=60) for p in loads]
        assert [p.returncode for p in loads] == [0, 0, 0], outs
        answers = [json.loads(o) for o, _ in outs]
        loaded = answers[0]["prefixes"]
        assert loaded > 3000 and s.sql("SELECT count(*) FROM tz_prefixes")[0][0] == loaded
        assert sorted(a["changed"] for a in answers) == [0, 0, loaded], answers
        # Rechecked every 5 s while empty.
        wait_until(lambda: scrape(url)["scheduler_tz_prefixes"] == loaded, 15,
                   "scheduler_tz_prefixes to count the loaded map")
        assert len(sched.events("tz.map_empty")) == 1
        assert s.stop_all() == {"scheduler": 0}
    finally:
        s.stop_all()
        s.drop_db()
        s.drop_topics()


def test_tz_load_leaves_out_the_zones_postgresql_does_not_know(stack, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("1201|America/New_York&Mars/Olympus_Mons&America/Chicago\n"
                     "1202|Mars/Tharsis\n"
                     "81|Asia/Tokyo\n")
    full = tmp_path / "full.txt"
    with open(full, "w") as f:
        subprocess.run(["python3", os.path.join(ROOT, "deploy", "tz-prefixes.py")], stdout=f,
                       check=True, timeout=60)
    try:
        out = stack.cli("tz-load", "--file", str(small))
        # The map is the file's: a prefix whose zones are all unknown is
        # left out, and the unknown zones are named.
        assert out["prefixes"] == 2
        assert sorted(out["unknown_zones"].split(",")) == ["Mars/Olympus_Mons", "Mars/Tharsis"]
        assert [tuple(r) for r in stack.sql("SELECT prefix, zones FROM tz_prefixes ORDER BY 1")] == [
            ("1201", ["America/Chicago", "America/New_York"]), ("81", ["Asia/Tokyo"])]
    finally:
        stack.cli("tz-load", "--file", str(full))
    assert stack.sql("SELECT count(*) FROM tz_prefixes")[0][0] > 3000
