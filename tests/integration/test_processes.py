"""Every process: --help with env names, health, readiness and metrics
endpoints, JSON log lines, a clean exit on SIGTERM."""
import json
import os
import subprocess
import sys

import pytest
import requests

from conftest import BUILD, Proc, free_port, plain_build, wait_until

BINARIES = {
    "batchcall-api": ("BC_API_PORT", "BC_PG_DSN"),
    "batchcall-worker": ("BC_WORKER_PORT", "BC_CARRIER_URL"),
    "batchcall-scheduler": ("BC_SCHEDULER_PORT", "BC_REGION"),
    "batchcall-carrier-sim": ("BC_SIM_PORT", "BC_SIM_MS_PER_SECOND"),
}


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_help_lists_flags_and_their_environment_variables(binary):
    out = subprocess.run([os.path.join(BUILD, binary), "--help"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0
    for env in BINARIES[binary]:
        assert env in out.stdout
    assert "--log-level" in out.stdout


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_bad_config_value_fails_fast_naming_the_variable(binary):
    port_env = BINARIES[binary][0]
    env = dict(os.environ, **{port_env: "eighty"})
    out = subprocess.run([os.path.join(BUILD, binary)], capture_output=True, text=True,
                         env=env, timeout=10)
    assert out.returncode != 0
    assert port_env in out.stderr


@pytest.mark.parametrize("binary,port_env", [
    ("batchcall-worker", "BC_WORKER_PORT"), ("batchcall-scheduler", "BC_SCHEDULER_PORT")])
def test_health_ready_metrics_and_sigterm(stack, tmp_path, binary, port_env):
    port = free_port()
    p = Proc(binary, [os.path.join(BUILD, binary)], dict(stack.env, **{port_env: str(port)}),
             str(tmp_path))
    try:
        stack.wait_ready(f"http://127.0.0.1:{port}")
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
        m = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert m.status_code == 200 and m.headers["Content-Type"].startswith("text/plain")
        assert "# TYPE " in m.text
    finally:
        assert p.stop() == 0
    lines = p.log_lines()
    assert lines, "the process logged nothing"
    for line in lines:
        j = json.loads(line)   # every line is one JSON object
        assert {"ts", "level", "svc", "event"} <= set(j)


def test_api_serves_health_and_metrics(stack):
    assert requests.get(stack.api + "/healthz", timeout=5).status_code == 200
    assert requests.get(stack.api + "/readyz", timeout=5).status_code == 200
    text = requests.get(stack.api + "/metrics", timeout=5).text
    assert "http_requests_total" in text


VALGRIND_PORTS = {"batchcall-api": "BC_API_PORT", "batchcall-worker": "BC_WORKER_PORT",
                  "batchcall-scheduler": "BC_SCHEDULER_PORT", "batchcall-carrier-sim": "BC_SIM_PORT"}


# Valgrind cannot run binaries built with a sanitizer; tests/run.sh runs
# this test on the plain build.
@plain_build
@pytest.mark.parametrize("binary", sorted(VALGRIND_PORTS))
def test_start_serve_sigterm_cycle_leaks_nothing_under_valgrind(stack, tmp_path, binary):
    import shutil
    import signal
    assert shutil.which("valgrind"), "valgrind is installed by deploy/local/install-deps.sh"
    port = free_port()
    log = tmp_path / "valgrind.log"
    env = dict(stack.env, **{VALGRIND_PORTS[binary]: str(port)})
    p = subprocess.Popen(["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                          "--error-exitcode=9", f"--log-file={log}", os.path.join(BUILD, binary)],
                         env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.log", "wb"))
    try:
        stack.wait_ready(f"http://127.0.0.1:{port}", timeout=90)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(120)
    text = log.read_text()
    assert "definitely lost: 0 bytes" in text or "All heap blocks were freed" in text, text[-2000:]
    assert "ERROR SUMMARY: 0 errors" in text, text[-3000:]
    assert rc == 0, (tmp_path / "stderr.log").read_text()[-3000:]


def test_each_process_looks_up_the_topics_it_publishes_to_before_serving(stack):
    # Else the first messages of a new producer waited about 1 s for the
    # lookup: a new API held its first carrier callbacks that long
    # (bench/RESULTS.md, fifteenth session). The API publishes to every
    # region's carrier events and jobs and to call-results; a worker and a
    # scheduler to their region's jobs and to call-results, and the
    # scheduler also to its region's carrier events (hang-ups it relays).
    for name, n in (("api", 1 + 2 * 3), ("worker", 2), ("scheduler", 3)):
        seen = stack.procs[name].events("kafka.topics_looked_up")
        assert seen, f"{name} logged no lookup"
        assert (seen[0]["looked_up"], seen[0]["topics"]) == (n, n), (name, seen[0])
        assert not stack.procs[name].events("kafka.lookup_failed"), name


PUBLISHERS = {"batchcall-api": "BC_API_PORT", "batchcall-worker": "BC_WORKER_PORT",
              "batchcall-scheduler": "BC_SCHEDULER_PORT"}


def test_every_producer_lingers_as_its_process_was_told(stack, tmp_path):
    # The stack's own processes run with the default, which the log reads
    # back from the client: 5 ms (librdkafka's) on the batched producer,
    # and in the API 0 on the prompt one beside it (bc_publisher.h). The
    # stack's scheduler delivers no webhooks: one publisher, the relay's.
    for name, want in (("api", ["0", "5"]), ("worker", ["5"]), ("scheduler", ["5"])):
        seen = [e["linger_ms"] for e in stack.procs[name].events("kafka.producer_ready")]
        assert sorted(seen) == want, (name, seen)
    # A worker told 0 makes one producer that sends at once (bench/RESULTS.md,
    # seventeenth session: the trade between an end's hop and B2's CPU); one
    # told --kafka-prompt-below 1000 the prompt one beside the batched one.
    for env, want in (({"BC_KAFKA_LINGER_MS": "0"}, ["0"]),
                      ({"BC_KAFKA_PROMPT_BELOW": "1000"}, ["5", "0"])):
        port = free_port()
        p = Proc("worker-linger", [os.path.join(BUILD, "batchcall-worker")],
                 dict(stack.env, BC_WORKER_PORT=str(port), **env), str(tmp_path))
        try:
            stack.wait_ready(f"http://127.0.0.1:{port}")
            assert [e["linger_ms"] for e in p.events("kafka.producer_ready")] == want, env
        finally:
            assert p.stop() == 0


@pytest.mark.parametrize("binary", sorted(PUBLISHERS))
@pytest.mark.parametrize("flag,var,value", [
    ("kafka-linger-ms", "BC_KAFKA_LINGER_MS", v) for v in ("-1", "900001", "soon")] + [
    ("kafka-prompt-below", "BC_KAFKA_PROMPT_BELOW", v) for v in ("-1", "10000001", "often")])
def test_a_kafka_flag_out_of_range_stops_the_start_naming_it(stack, binary, flag, var, value):
    env = dict(stack.env, **{PUBLISHERS[binary]: str(free_port()), var: value})
    out = subprocess.run([os.path.join(BUILD, binary)], capture_output=True, text=True,
                         env=env, timeout=30)
    assert out.returncode != 0
    assert (flag in out.stderr) or (var in out.stderr), out.stderr


def gone(pid):
    """The process exited (a zombie not yet reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_test_run_killed_outright_leaves_no_process_behind(tmp_path):
    """A process the tests start (conftest.Proc) gets SIGTERM when the test
    process dies, even by SIGKILL, which no fixture's teardown survives."""
    here = os.path.dirname(os.path.abspath(__file__))
    script = (f"import sys, time; sys.path.insert(0, {here!r}); from conftest import Proc; "
              f"p = Proc('sleeper', ['sleep', '120'], None, {str(tmp_path)!r}); "
              "print(p.p.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert not gone(child)
    parent.kill()
    parent.wait()
    wait_until(lambda: gone(child), 10, "the child to die with the test process", interval=0.02)
