"""The status callbacks the worker asks of the carrier (Twilio's
StatusCallbackEvent): only those it uses, each one a signed request through
the API and Kafka. The simulator sends what was asked, as Twilio does, and
only the final status when nothing was."""
import os
import signal
import subprocess

import requests

from conftest import BUILD, cartesia_headers, statements_reset, wait_until
from test_dispatch import Extra, all_terminal, metric


def sim_metric(port, name, labels):
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run_region(stack, tmp_path, events, n):
    """A batch of n recipients in a region of its own (its carrier, scheduler
    and worker), every call answered; returns its id, the calls' histories
    and the callbacks the carrier sent."""
    extra = Extra(stack, tmp_path)
    try:
        sim = extra.start("sim-ev", "batchcall-carrier-sim", {
            "BC_SIM_MS_PER_SECOND": "10", "BC_SIM_RING_SECONDS": "1", "BC_SIM_TALK_SECONDS": "2",
            "BC_SIM_MIX": "completed=1"})
        env = {"BC_REGION": "apac", "BC_CARRIER_URL": f"http://127.0.0.1:{sim.port}"}
        if events is not None:
            env["BC_CARRIER_EVENTS"] = events
        extra.start("sched-ev", "batchcall-scheduler", dict(env, BC_SCHEDULER_TICK_MS="50"))
        extra.start("w-ev", "batchcall-worker", env)
        t = stack.tenant(concurrency=n)
        body = {"name": "events", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                "target_concurrency_limit": n, "region": "APAC",
                "recipients": [{"to_number": f"+1426{i:07d}"} for i in range(n)]}
        r = requests.post(stack.api + "/agents/calls/batches", json=body,
                          headers=cartesia_headers(t["api_key"]), timeout=60)
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        all_terminal(stack, bid, 60)
        # The final callback is answered before the call ends in PostgreSQL.
        sent = wait_until(lambda: sim_metric(sim.port, "sim_callbacks_total", 'result="ok"') or None,
                          10, "the carrier's count of callbacks")
        hist = stack.sql("SELECT history, status, answered_at IS NOT NULL, duration_s FROM calls"
                         " WHERE batch_id = %s", bid)
        # The answer's time never after the end, nor before the dial.
        bad = stack.sql("SELECT id, created_at, answered_at, ended_at FROM calls"
                        " WHERE batch_id = %s AND answered_at IS NOT NULL"
                        "   AND NOT answered_at BETWEEN created_at AND ended_at", bid)
        assert bad == [], bad
        return bid, hist, sent
    finally:
        extra.stop()


def statuses(history):
    return [h["status"] for h in history]


def test_by_default_ringing_answered_and_completed_are_asked_not_initiated(stack, tmp_path):
    bid, calls, sent = run_region(stack, tmp_path, None, 6)
    assert len(calls) == 6
    assert sent == 6 * 3            # ringing, in-progress, completed; no initiated
    for history, status, answered, dur in calls:
        assert status == "completed"
        assert statuses(history) == ["claimed", "dialing", "queued", "ringing", "in-progress",
                                     "completed"]
        assert answered and dur == 2
    rec = stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s GROUP BY 1", bid)
    assert rec == [("completed", 6)]


def test_a_call_answered_and_ended_in_one_turn_keeps_its_answer_and_whole_history(
        stack, tmp_path):
    """A turn writes its ends before its claims and its other writes after
    them, except a call's own earlier news, which goes first (bc_events.c).
    Here each call's answer and end reach the worker in one turn: the worker
    is stopped while the calls ring and let go once the carrier's callbacks
    are all in Kafka. Each call is answered, its history whole and in order."""
    n = 6
    extra = Extra(stack, tmp_path)
    try:
        sim = extra.start("sim-turn", "batchcall-carrier-sim", {
            "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "3",
            "BC_SIM_TALK_SECONDS": "0", "BC_SIM_MIX": "completed=1"})
        env = {"BC_REGION": "apac", "BC_CARRIER_URL": f"http://127.0.0.1:{sim.port}"}
        extra.start("sched-turn", "batchcall-scheduler", dict(env, BC_SCHEDULER_TICK_MS="50"))
        worker = extra.start("w-turn", "batchcall-worker", env)
        t = stack.tenant(concurrency=n)
        body = {"name": "one turn", "agent_id": t["agent_id"],
                "from_number_id": t["from_number_id"], "target_concurrency_limit": n,
                "region": "APAC", "recipients": [{"to_number": f"+1427{i:07d}"} for i in range(n)]}
        r = requests.post(stack.api + "/agents/calls/batches", json=body,
                          headers=cartesia_headers(t["api_key"]), timeout=60)
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        wait_until(lambda: stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s"
                                     " AND status = 'ringing'", bid)[0][0] == n, 20,
                   "every call ringing")
        os.kill(worker.p.pid, signal.SIGSTOP)
        wait_until(lambda: sim_metric(sim.port, "sim_callbacks_total", 'result="ok"') == 3 * n,
                   20, "the carrier's answers and ends acknowledged")
        os.kill(worker.p.pid, signal.SIGCONT)
        all_terminal(stack, bid, 30)
        calls = stack.sql("SELECT history, status, answered_at IS NOT NULL FROM calls"
                          " WHERE batch_id = %s", bid)
    finally:
        extra.stop()
    assert len(calls) == n
    for history, status, answered in calls:
        assert status == "completed" and answered, (status, answered)
        assert statuses(history) == ["claimed", "dialing", "queued", "ringing", "in-progress",
                                     "completed"]


def statement_calls(stack, like):
    return sum(r[0] for r in stack.sql(
        "SELECT s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database() AND s.query LIKE %s", like))


def test_an_answer_verdict_and_end_in_one_turn_are_one_write_that_reads_as_three(
        stack, tmp_path):
    """A call's answer and answering-machine verdict that reach the worker in
    the same turn as its end are written with the end, in its one statement
    (bc_ends_fold), and read as if written apart: the history whole and in
    order, the answer's time, the verdict, the batch's voicemail policy and
    the voicemail end. Neither the progress nor the verdict statement runs
    for them."""
    extra = Extra(stack, tmp_path)
    try:
        sim = extra.start("sim-fold", "batchcall-carrier-sim", {
            "BC_SIM_MS_PER_SECOND": "1000", "BC_SIM_RING_SECONDS": "3",
            "BC_SIM_TALK_SECONDS": "2", "BC_SIM_AMD_SECONDS": "1", "BC_SIM_MIX": "completed=1"})
        sim_url = f"http://127.0.0.1:{sim.port}"
        env = {"BC_REGION": "apac", "BC_CARRIER_URL": sim_url}
        extra.start("sched-fold", "batchcall-scheduler", dict(env, BC_SCHEDULER_TICK_MS="50"))
        worker = extra.start("w-fold", "batchcall-worker", env)
        people = {"+16135550071": "voicemail", "+16135550072": "completed"}
        for number, outcome in people.items():
            requests.post(sim_url + "/outcomes", params={"to": number, "outcomes": outcome},
                          timeout=10).raise_for_status()
        t = stack.tenant(concurrency=2)
        body = {"name": "fold", "agent_id": t["agent_id"], "from_number_id": t["from_number_id"],
                "target_concurrency_limit": 2, "region": "APAC", "voicemail": {"action": "hangup"},
                "recipients": [{"to_number": n} for n in people]}
        r = requests.post(stack.api + "/agents/calls/batches", json=body,
                          headers=cartesia_headers(t["api_key"]), timeout=60)
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        # No other call lives: the statements counted below are this turn's.
        # A call counts while a live worker holds its lease: one an earlier
        # test left open when it stopped its worker and simulator (run
        # after test_dispatch, two stayed open past the 60 s) sends no
        # progress or verdict, since nothing is left to call back for it.
        others = lambda: stack.sql(
            "SELECT c.id, c.status, b.region, b.name FROM calls c"
            "  JOIN batches b ON b.id = c.batch_id"
            "  JOIN leases l ON l.batch_id = c.batch_id AND l.call_id = c.id"
            "  JOIN workers w ON w.holder = l.holder AND w.expires_at > now()"
            " WHERE c.ended_at IS NULL AND c.batch_id <> %s", bid)
        try:
            wait_until(lambda: not others(), 60, "no other call live")
        except AssertionError as e:
            raise AssertionError(f"{e}: {others()}") from None
        wait_until(lambda: stack.sql("SELECT count(*) FROM calls WHERE batch_id = %s"
                                     " AND status = 'ringing'", bid)[0][0] == 2, 20,
                   "both calls ringing")
        os.kill(worker.p.pid, signal.SIGSTOP)
        # Answered, in progress, completed: and the verdict, sent before the
        # end (a second after the answer, against two).
        wait_until(lambda: sim_metric(sim.port, "sim_callbacks_total", 'result="ok"') == 6,
                   20, "the carrier's answers and ends acknowledged")
        statements_reset(stack)
        os.kill(worker.p.pid, signal.SIGCONT)
        all_terminal(stack, bid, 30)
        rows = stack.sql("SELECT to_number, answered_by, voicemail_action, end_reason,"
                         "       amd_at IS NOT NULL, answered_at IS NOT NULL, history"
                         "  FROM calls WHERE batch_id = %s", bid)
        progress = statement_calls(stack, "%e(id text, status text, sid text)%")
        verdicts = statement_calls(stack, "%e(id text, ab text, sid text)%")
        ends = statement_calls(stack, "%e(id text, status text, dur int, reason text%")
    finally:
        extra.stop()
    got = {r[0]: r[1:] for r in rows}
    assert got["+16135550071"][:5] == ("machine_end_beep", "hangup", "voicemail", True, True)
    assert got["+16135550072"][:5] == ("human", None, "agent_hangup", True, True)
    for number in people:
        assert statuses(got[number][5]) == ["claimed", "dialing", "queued", "ringing",
                                            "in-progress", "completed"], number
    assert (progress, verdicts) == (0, 0) and ends >= 1, (progress, verdicts, ends)


def test_completed_only_sends_one_callback_per_call_and_loses_nothing(stack, tmp_path):
    bid, calls, sent = run_region(stack, tmp_path, "completed", 8)
    assert len(calls) == 8
    assert sent == 8                # one callback per call
    for history, status, answered, dur in calls:
        assert status == "completed"
        assert statuses(history) == ["claimed", "dialing", "queued", "completed"]
        # The duration comes with the final status, and a completed call was
        # answered: its answer is its end less its duration (bc_ends.c).
        assert answered and dur == 2
    rec = stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s GROUP BY 1", bid)
    assert rec == [("completed", 8)]
    # Each answer is its end less the duration told, or its dial if that
    # is earlier: here a simulated second is 10 ms, so its dial.
    off = stack.sql("SELECT id FROM calls WHERE batch_id = %s AND answered_at IS DISTINCT FROM"
                    " greatest(created_at, ended_at - make_interval(secs => duration_s))", bid)
    assert off == [], off


def test_an_unknown_event_stops_the_worker_naming_the_variable(stack):
    env = dict(stack.env, BC_WORKER_PORT="0", BC_CARRIER_EVENTS="ringing hangup")
    out = subprocess.run([os.path.join(BUILD, "batchcall-worker")], capture_output=True,
                         text=True, env=env, timeout=30)
    assert out.returncode != 0
    assert "BC_CARRIER_EVENTS" in out.stderr and "hangup" in out.stderr


def test_the_carrier_refuses_an_unknown_event_as_twilio_does(stack, tmp_path):
    extra = Extra(stack, tmp_path)
    try:
        sim = extra.start("sim-bad", "batchcall-carrier-sim", {})
        r = requests.post(f"http://127.0.0.1:{sim.port}/2010-04-01/Accounts/ACsimulator/Calls.json",
                          auth=("ACsimulator", "sim-auth-token"),
                          data=[("To", "+14155550100"), ("From", "+14155550199"),
                                ("StatusCallback", "http://127.0.0.1:9/cb"),
                                ("StatusCallbackEvent", "ringing"),
                                ("StatusCallbackEvent", "hangup")], timeout=10)
        assert r.status_code == 400
        assert r.json()["code"] == 21626
        assert requests.get(f"http://127.0.0.1:{sim.port}/ledger", timeout=10).json()["dials"] == 0
    finally:
        extra.stop()
