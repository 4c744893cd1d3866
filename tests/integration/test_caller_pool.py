"""Caller-ID pools: a batch dials from several of the tenant's numbers, in
turn, each within its own live-call and calls-per-second caps, and a
recipient's retries keep the caller ID of its first attempt."""
import secrets
from collections import Counter, defaultdict

import requests

from conftest import wait_until
from test_dispatch import all_terminal, cartesia_headers, create, dials

URL = "/agents/calls/batches"


def max_overlap(intervals):
    """Most intervals open at one instant (an end frees before a start)."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                   key=lambda x: (x[0], x[1]))
    live = peak = 0
    for _, d in edges:
        live += d
        peak = max(peak, live)
    return peak


def test_a_pool_spreads_dials_within_each_numbers_caps(stack):
    t = stack.tenant(concurrency=20)
    nums = [f"+1557{secrets.randbelow(10**7):07d}" for _ in range(3)]
    ids = [stack.cli("number-create", "--tenant", t["tenant_id"], "--number", n)["from_number_id"]
           for n in nums]
    # By id or by number, as the tenant likes.
    pool = {"numbers": [ids[0], nums[1], ids[2]], "max_concurrent_per_number": 2,
            "calls_per_second": 4}
    # Numbers ending in 0486 are busy at the simulator: retried by hand below.
    numbers = [f"+1558{i:03d}{'0486' if i % 6 == 0 else f'{i:04d}'}" for i in range(36)]
    bid = create(stack, t, numbers, limit=10, caller_id_pool=pool)
    # Three numbers, two live calls each: the batch's limit becomes 6.
    assert stack.sql("SELECT target_concurrency_limit, from_pool FROM batches WHERE id = %s",
                     bid)[0] == (6, nums)
    all_terminal(stack, bid, 90)

    d = dials(stack, bid)
    per_from = Counter(x["from"] for x in d)
    assert set(per_from) == set(nums)
    assert min(per_from.values()) >= 6, per_from       # spread, not piled on one
    # Live calls per number, by our own records (claim to end covers the
    # carrier's live call), never above 2.
    spans = defaultdict(list)
    for f, s, e in stack.sql("SELECT from_number, created_at, ended_at FROM calls WHERE batch_id = %s",
                             bid):
        spans[f].append((s, e))
    for f, iv in spans.items():
        assert max_overlap(iv) <= 2, f
    # Dials per number in any one second, by the carrier's clock, at most 4.
    at = defaultdict(list)
    for x in d:
        at[x["from"]].append(x["at_ms"])
    for f, ts in at.items():
        ts.sort()
        for i in range(len(ts)):
            in_window = sum(1 for u in ts[i:] if u - ts[i] < 1000)
            assert in_window <= 4, (f, in_window)

    # A retry keeps the caller ID of the first attempt. The busy numbers
    # failed for sure; the simulator's mix may have failed a few more.
    failed = {r for (r,) in stack.sql("SELECT id FROM recipients WHERE batch_id = %s"
                                      " AND status = 'failed'", bid)}
    busy = {r for (r,) in stack.sql("SELECT id FROM recipients WHERE batch_id = %s"
                                    " AND to_number LIKE '%%0486'", bid)}
    assert len(busy) == 6 and busy <= failed
    r = requests.post(f"{stack.api}{URL}/{bid}/retry", headers=cartesia_headers(t["api_key"]),
                      timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s AND attempt = 2"
                                 " AND ended_at IS NOT NULL", bid)[0][0] == len(failed), 60,
               "the retried calls to end")
    rows = stack.sql("SELECT recipient_id, array_agg(DISTINCT from_number), count(*) FROM calls"
                     " WHERE batch_id = %s GROUP BY 1", bid)
    assert len(rows) == 36
    for rid, froms, n in rows:
        assert len(froms) == 1, (rid, froms)
        assert n == (2 if rid in failed else 1)


def test_a_pool_must_name_the_tenants_own_numbers(stack):
    t = stack.tenant()
    other = stack.tenant()
    base = {"name": "pool", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
            "recipients": [{"to_number": "+14155550000"}]}
    for pool, status, word in (
            ({"numbers": []}, 400, "caller_id_pool"),
            ({"numbers": ["+14155550100", "+14155550100"]}, 400, "repeats"),
            ({"numbers": [t["from_number_id"]], "calls_per_second": 0}, 400, "calls_per_second"),
            ({"numbers": [other["from_number_id"]]}, 404, "caller_id_pool"),
            ("three numbers", 400, "caller_id_pool")):
        r = requests.post(stack.api + URL, json=dict(base, caller_id_pool=pool),
                          headers=cartesia_headers(t["api_key"]), timeout=10)
        assert r.status_code == status and word in r.text, (pool, r.text)
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s", t["tenant_id"])[0][0] == 0


def test_a_retry_is_dialed_from_its_number_however_far_its_batch_drained(stack):
    """A recipient that keeps a pool number (its first attempt's, here its
    own from_number) waits for a slot of that number, so its batch must
    hold one for it however far the batch has drained: while its automatic
    retry waits out its interval as the other calls end, and when a manual
    retry admits the finished batch again for it alone."""
    t = stack.tenant(concurrency=20)
    nums = [f"+1557{secrets.randbelow(10**7):07d}" for _ in range(3)]
    for n in nums:
        stack.cli("number-create", "--tenant", t["tenant_id"], "--number", n)
    # One slot per number: slot s is nums[s mod 3]. The recipient keeps the
    # last number, whose slot is the first a draining batch gives back.
    pool = {"numbers": nums, "max_concurrent_per_number": 1}
    busy = f"+1559{secrets.randbelow(1000):03d}0486"
    recipients = [{"to_number": busy, "from_number": nums[2]}] + \
        [{"to_number": f"+1559{secrets.randbelow(1000):03d}{i:04d}"} for i in (1, 2)]
    # The retry waits 2 s: the other two calls end well before.
    bid = create(stack, t, [], limit=3, caller_id_pool=pool, recipients=recipients,
                 max_retries=1, retry_on=["busy"], retry_intervals_s=[2])
    assert stack.sql("SELECT target_concurrency_limit FROM batches WHERE id = %s", bid)[0][0] == 3

    def busy_calls():
        return stack.sql("SELECT c.attempt, c.from_number, c.ended_at IS NOT NULL FROM calls c"
                         " JOIN recipients r ON r.id = c.recipient_id"
                         " WHERE c.batch_id = %s AND r.to_number = %s ORDER BY 1", bid, busy)

    all_terminal(stack, bid, 30)
    assert busy_calls() == [(1, nums[2], True), (2, nums[2], True)]
    r = requests.post(f"{stack.api}{URL}/{bid}/retry", headers=cartesia_headers(t["api_key"]),
                      timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: len(busy_calls()) == 3 and busy_calls()[2][2], 30,
               "the manual retry's call to end")
    assert busy_calls() == [(1, nums[2], True), (2, nums[2], True), (3, nums[2], True)]
