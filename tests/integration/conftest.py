"""Fixtures that run batchcall for real: our binaries against the project's
PostgreSQL and Kafka broker (started by deploy/local/infra.sh; tests/run.sh
exports BC_PG_DSN and BC_KAFKA_BROKERS). Each test session gets its own
database and its own topic prefix, so runs never see each other's data."""
import contextlib
import ctypes
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

import psycopg2
import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BC_BUILD_DIR", os.path.join(ROOT, "build"))
# The reference AI agent every answered call is connected to (tests/agent/),
# and its certificate, made by deploy/local/install-deps.sh.
REF_AGENT = os.path.join(ROOT, "tests", "agent", "ref_agent.py")
TZ_PREFIXES = os.path.join(ROOT, "deploy", "tz-prefixes.py")
AGENT_CERT = os.path.join(ROOT, ".local", "tls", "agent.crt")
AGENT_KEY = os.path.join(ROOT, ".local", "tls", "agent.key")


def build_is_sanitized():
    """True when BUILD was configured with a sanitizer: -DBC_SANITIZE=ON
    (ASan+UBSan) or -DBC_TSAN=ON."""
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            cache = f.read()
        return "BC_SANITIZE:BOOL=ON" in cache or "BC_TSAN:BOOL=ON" in cache
    except OSError:
        return False


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "plain_build: runs only on an unsanitized build; tests/run.sh runs"
                   " the integration suite sanitized, then these on the plain build")


def plain_build(test):
    """Marks a test that cannot run on a sanitized build (valgrind, the
    libraries a binary links): skipped there, selected by -m plain_build."""
    return pytest.mark.plain_build(
        pytest.mark.skipif(build_is_sanitized(), reason="needs the plain build")(test))


_PORTS_GIVEN = set()
_RNG = random.SystemRandom()   # a test's random.seed must not make two runs agree


def _port_range():
    """Where free_port draws from: below the kernel's ephemeral ports (or
    above them, if too few are below)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    return (max(1024, lo - 12000), lo) if lo - 1024 >= 4000 else (hi + 1, 65536)


def free_port():
    """A port nobody listens on, for a process to bind next. Not bind(0):
    that port comes from the ephemeral range, where every outgoing
    connection takes its local port, so one could take it before the
    process binds it ("http: cannot listen on 127.0.0.1:58743", a bench run
    of the twenty-ninth session). Outside that range only a listener can,
    and the bind below rules those out; a port is given once a process."""
    lo, hi = _port_range()
    for _ in range(1000):
        port = _RNG.randrange(lo, hi)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


@contextlib.contextmanager
def calls_update_fails_once(stack, name, when, *params, cond="true", errcode="raise_exception"):
    """A trigger on calls that makes one statement fail: the first row it
    updates where the trigger's WHEN clause `when` (over OLD and NEW, with
    %s for params) and the PL/pgSQL condition `cond` (which may read
    tables) hold raises errcode. Yields reached(): how many rows met both,
    the failing one included. Dropped on the way out."""
    stack.sql(f"""CREATE SEQUENCE {name};
                  CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN
                      IF ({cond}) AND nextval('{name}') = 1 THEN
                          RAISE EXCEPTION '{name}: refused by the test'
                              USING ERRCODE = '{errcode}';
                      END IF;
                      RETURN NEW;
                  END $$;
                  CREATE TRIGGER {name} BEFORE UPDATE ON calls FOR EACH ROW
                  WHEN ({when}) EXECUTE FUNCTION {name}()""", *params)
    try:
        yield lambda: stack.sql(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                                f" FROM {name}")[0][0]
    finally:
        stack.sql(f"DROP TRIGGER {name} ON calls; DROP FUNCTION {name}(); DROP SEQUENCE {name}")


def sim_map_hash(s):
    """The carrier simulator's sim_map_hash (tests/sim/sim_map.c): FNV-1a,
    64 bits. BC_SIM_KEEP_ONE_IN=N keeps the calls of the batches whose id
    hashes to 0 mod N (test_sim_strict.py, bench/soak.py)."""
    h = 14695981039346656037
    for b in str(s).encode():
        h = ((h ^ b) * 1099511628211) & (2 ** 64 - 1)
    return h


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def scrape(url):
    """{series: value} of one /metrics: a series is its name and its labels
    as the text shows them (`kafka_consumer_lag{topic="jobs"}`). One scrape
    is one snapshot: the processes render it under one lock."""
    out = {}
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def scheduler_ticked(url, timeout=15):
    """Barrier: the scheduler at url, its region's leader, has run a whole
    tick (admission, expiry, top-ups) that began after this call."""
    start = scrape(url).get("scheduler_ticks_total", 0)
    wait_until(lambda: scrape(url).get("scheduler_ticks_total", 0) >= start + 2, timeout,
               f"two ticks of the scheduler at {url}", interval=0.02)


def worker_caught_up(stack, worker, region="us", timeout=15):
    """Barrier: the worker (a Proc with its port) has taken every job on its
    region's jobs topic that was there before this call and offered each
    to a claim (claimed it, dropped it, put it back for its hours, or found
    its batch without a free slot), and has no carrier request in flight
    and no paced dial held. Whatever it would do with those jobs is done: a
    test may assert that nothing happened. A marker job goes to every
    partition, behind the rest; the worker logs each (it names no
    recipient) as it takes it. Not worker_jobs_in_hand: one job another
    test left waiting for a slot holds every later offset of its partition
    in hand."""
    url = f"http://127.0.0.1:{worker.port}"
    topic = f"{stack.prefix}.jobs.{region}"
    marks, since = set(), os.path.getsize(worker.log_path)
    p = stack.producer()
    parts = p.list_topics(topic, timeout=10).topics[topic].partitions

    def sent(err, msg):
        assert err is None, err
        marks.add((msg.partition(), msg.offset()))
    for part in parts:
        p.produce(topic, value=json.dumps({"v": 1, "batch_id": "barrier"}).encode(),
                  partition=part, on_delivery=sent)
    assert p.flush(10) == 0 and len(marks) == len(parts), "marker jobs not acknowledged"
    wait_until(lambda: marks <= {(e["partition"], e["offset"])
                                 for e in worker.events("job.malformed", since)},
               timeout, f"{worker.name} to take the marker jobs", interval=0.02)
    turns, last = scrape(url)["worker_loop_turns_total"], {}

    def idle():
        last.update(scrape(url))
        return (last["worker_loop_turns_total"] > turns and last["worker_jobs_untried"] == 0
                and last["worker_carrier_requests_in_flight"] == 0
                and last["worker_dials_paced_waiting"] == 0)
    try:
        wait_until(idle, timeout, f"{worker.name} to offer every job it took to a claim",
                   interval=0.02)
    except AssertionError as e:
        raise AssertionError(f"{e}: " + ", ".join(f"{k} {v:g}" for k, v in sorted(last.items())
                                                  if k.startswith("worker_"))) from None


def system_settled(stack, scheduler=None, worker=None, region="us", timeout=15):
    """Barrier for a quiet window: the region's scheduler leader ran a whole
    tick since this call, the jobs it released are in Kafka (their outbox
    rows go once the broker has them), then the worker took and settled
    every job there (worker_caught_up). The stack's own scheduler and
    worker (region us) unless others are named."""
    scheduler = scheduler or stack.procs["scheduler"]
    scheduler_ticked(f"http://127.0.0.1:{scheduler.port}", timeout)
    wait_until(lambda: stack.sql("SELECT count(*) FROM outbox WHERE topic = %s",
                                 f"{stack.prefix}.jobs.{region}")[0][0] == 0, timeout,
               "the released jobs to reach Kafka", interval=0.02)
    worker_caught_up(stack, worker or stack.procs["worker"], region, timeout)


def die_with_parent():
    """Runs in a child before its exec: it gets SIGTERM when the process
    that started it dies. A test run killed outright otherwise left its
    whole stack running (a scheduler, two workers, a simulator, an API and
    their PostgreSQL sessions, found half an hour later taking CPU from the
    benchmarks beside them)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


class Proc:
    """One of our binaries, its JSON log kept in a file. It dies with the
    test process (die_with_parent)."""

    def __init__(self, name, args, env, logdir):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                  preexec_fn=die_with_parent)

    def log_lines(self, since=0):
        """The log's lines from byte offset since."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace").splitlines()

    def events(self, event, since=0):
        out, key = [], f'"{event}"'
        for line in self.log_lines(since):
            if key not in line:
                continue
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("event") == event:
                out.append(j)
        return out

    def stop(self, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


class Stack:
    def __init__(self, tmpdir):
        self.pg_admin = os.environ.get("BC_PG_DSN")
        self.brokers = os.environ.get("BC_KAFKA_BROKERS")
        if not self.pg_admin or not self.brokers:
            pytest.exit("BC_PG_DSN and BC_KAFKA_BROKERS must be set: run tests/run.sh", 2)
        self.tmp = str(tmpdir)
        tag = secrets.token_hex(4)
        self.db = f"bct_{tag}"
        self.prefix = f"bct{tag}"
        u = urllib.parse.urlparse(self.pg_admin)
        self.dsn = urllib.parse.urlunparse(u._replace(path="/" + self.db))
        self.procs = {}
        self._producer = None
        self.sim_port = free_port()
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.sim = f"http://127.0.0.1:{self.sim_port}"
        # One reference agent per Stack, started by start_agent() (create_db()
        # calls it); its ports are fixed now so self.env can name them.
        self.agent_port = free_port()
        self.agent_control_port = free_port()
        self.agent_url = f"wss://127.0.0.1:{self.agent_port}/stream"
        self.agent_control = f"http://127.0.0.1:{self.agent_control_port}"
        self.env = dict(os.environ, BC_PG_DSN=self.dsn, BC_KAFKA_BROKERS=self.brokers,
                        BC_TOPIC_PREFIX=self.prefix, BC_REGIONS="us,eu,apac",
                        BC_PUBLIC_URL=self.api, BC_CARRIER_URL=self.sim,
                        BC_LOG_LEVEL="info",
                        # Test receivers listen on loopback, in plain http.
                        BC_WEBHOOK_REQUIRE_HTTPS="0", BC_WEBHOOK_ALLOW_PRIVATE="1",
                        # The simulator dials agents over wss:// trusting this
                        # CA; `batchcall demo` gives its agent this endpoint.
                        BC_SIM_AGENT_CA=AGENT_CERT, BC_AGENT_ENDPOINT=self.agent_url)

    def producer(self):
        """One Kafka producer for the session's test messages."""
        if self._producer is None:
            from confluent_kafka import Producer
            self._producer = Producer({"bootstrap.servers": self.brokers, "linger.ms": 0})
        return self._producer

    def bin(self, name):
        return os.path.join(BUILD, name)

    def cli(self, *args):
        out = subprocess.run([self.bin("batchcall"), *args], env=self.env, check=True,
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)

    def create_bare_db(self):
        """This Stack's database, migrated and nothing more: no time zone
        map, production's defaults. create_db() goes on from here."""
        conn = psycopg2.connect(self.pg_admin)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{self.db}"')
        # A test setting: bc_now() follows clock_offset only where this is
        # on (sql/0025_test_clock.sql), here for every session of the test
        # database, so tests move the clock calling hours are read on.
        conn.cursor().execute(f'ALTER DATABASE "{self.db}" SET batchcall.test_clock = \'on\'')
        conn.close()
        self.cli("migrate")

    def tz_load(self):
        """Loads libphonenumber's prefix-to-zone map, as production loads
        it: deploy/tz-prefixes.py's output, then `batchcall tz-load`."""
        tz = os.path.join(self.tmp, "tz-prefixes.txt")
        with open(tz, "w") as f:
            subprocess.run([sys.executable, TZ_PREFIXES], stdout=f, check=True, timeout=60)
        return self.cli("tz-load", "--file", tz)

    def create_db(self, partitions=3, events_partitions=None):
        self.create_bare_db()
        self.tz_load()
        # A test setting: tenants of the test database start with the legal
        # calling hours policy off (production's default is on), so tests
        # that dial US numbers pass at any real time of day. Tests of the
        # policy turn it on (test_legal_hours.py); the default it replaces
        # is kept here for the test that checks it.
        self.legal_hours_default = self.sql(
            "SELECT column_default FROM information_schema.columns"
            " WHERE table_name = 'tenants' AND column_name = 'legal_hours'")[0][0]
        self.sql("ALTER TABLE tenants ALTER COLUMN legal_hours SET DEFAULT false")
        ev = () if events_partitions is None else ("--events-partitions", str(events_partitions))
        self.cli("topics", "--partitions", str(partitions), *ev)
        self.start_agent()

    def start_agent(self):
        """Starts this Stack's reference agent (once) and waits for it."""
        p = self.procs.get("agent")
        if p is not None and p.p.poll() is None:
            return p
        if not os.path.exists(AGENT_CERT) or not os.path.exists(AGENT_KEY):
            raise AssertionError(f"{AGENT_CERT} is missing: run deploy/local/infra.sh up")
        p = Proc("agent", [sys.executable, REF_AGENT, "--host", "127.0.0.1",
                           "--port", str(self.agent_port),
                           "--control-port", str(self.agent_control_port),
                           "--cert", AGENT_CERT, "--key", AGENT_KEY, "--api", self.api],
                 self.env, self.tmp)
        self.procs["agent"] = p

        def up():
            if p.p.poll() is not None:
                raise AssertionError("the reference agent exited:\n" + "\n".join(p.log_lines()))
            try:
                return requests.get(self.agent_control + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_until(up, 30, "the reference agent's /healthz")
        return p

    def agent_starts(self):
        """Every `start` the agent received: call_sid, stream_sid,
        custom_parameters, at, media (frames), stop (bool), ..."""
        return requests.get(self.agent_control + "/starts", timeout=10).json()["starts"]

    def agent_stats(self):
        return requests.get(self.agent_control + "/stats", timeout=10).json()

    def agent_reset(self):
        requests.post(self.agent_control + "/reset", timeout=10).raise_for_status()

    def agent_behavior(self, **kw):
        """hangup_after_start=bool, fetch_context=bool, report=dict|None, for
        streams from now on; returns the whole behaviour."""
        r = requests.post(self.agent_control + "/behavior", json=kw, timeout=10)
        r.raise_for_status()
        return r.json()

    def drop_db(self):
        conn = psycopg2.connect(self.pg_admin)
        conn.autocommit = True
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        conn.close()

    def drop_topics(self):
        """Deletes the topics this stack's processes made (its prefix). Left
        behind, a day of test runs had given the local broker 514 topics and
        1,604 partitions (bench/RESULTS.md, eleventh and twenty-first
        sessions)."""
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.brokers})
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix + ".")]
        for f in admin.delete_topics(names, operation_timeout=30).values() if names else ():
            f.result()

    def start(self, name, binary, extra_env=None, args=()):
        env = dict(self.env, **(extra_env or {}))
        env.setdefault("PGAPPNAME", name)   # names its backends in pg_stat_activity
        p = Proc(name, [self.bin(binary), *args], env, self.tmp)
        self.procs[name] = p
        return p

    def wait_ready(self, url, timeout=30):
        def ok():
            try:
                return requests.get(url + "/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ok, timeout, url + "/readyz")

    def sql(self, query, *params):
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None

    def tenant(self, concurrency=20, rate_per_min=0, burst=0, credits=None):
        """A tenant with a key, an agent and a default number. Request rate
        limits are off unless asked for, so tests do not trip over them."""
        t = self.cli("demo", "--concurrency", str(concurrency))
        self.cli("tenant-limits", "--tenant", t["tenant_id"], "--plan", "custom",
                 "--concurrency", str(concurrency), "--rate-per-min", str(rate_per_min),
                 "--burst", str(burst))
        if credits is not None:
            self.sql("UPDATE tenants SET credits_cents = %s WHERE id = %s", credits, t["tenant_id"])
        return t

    def stop_all(self):
        codes = {}
        for name, p in reversed(list(self.procs.items())):
            codes[name] = p.stop()
        return codes


@pytest.fixture(scope="session")
def stack(tmp_path_factory, request):
    s = Stack(tmp_path_factory.mktemp("stack"))
    # A set-up that fails part way still stops what it started (the agent
    # from create_db() first of all), instead of leaving it running.
    set_up = []
    request.addfinalizer(lambda: set_up or s.stop_all())
    s.create_db()
    s.start("sim", "batchcall-carrier-sim", {
        "BC_SIM_PORT": str(s.sim_port), "BC_SIM_MS_PER_SECOND": "5",
        "BC_SIM_RING_SECONDS": "1-4", "BC_SIM_TALK_SECONDS": "5-40", "BC_SIM_SEED": "7"})
    s.start("api", "batchcall-api", {"BC_API_PORT": str(s.api_port)})
    sched_port, worker_port = free_port(), free_port()
    # Webhooks are delivered by schedulers that test_webhooks.py starts (and
    # kills) itself, with fast retries; this one leaves them alone.
    s.start("scheduler", "batchcall-scheduler", {"BC_SCHEDULER_PORT": str(sched_port),
                                                 "BC_SCHEDULER_TICK_MS": "50",
                                                 "BC_WEBHOOKS": "0"})
    s.start("worker", "batchcall-worker", {"BC_WORKER_PORT": str(worker_port),
                                           "BC_RETRY_BASE_MS": "200"})
    s.procs["scheduler"].port, s.procs["worker"].port = sched_port, worker_port
    for url in (s.sim, s.api, f"http://127.0.0.1:{sched_port}", f"http://127.0.0.1:{worker_port}"):
        s.wait_ready(url)
    set_up.append(True)
    yield s
    codes = s.stop_all()
    failed = request.session.testsfailed
    if failed:
        for name, p in s.procs.items():
            print(f"\n===== last lines of {name} log =====")
            print("\n".join(p.log_lines()[-40:]))
    s.drop_db()
    s.drop_topics()
    assert all(c == 0 for c in codes.values()), f"a process did not drain cleanly: {codes}"


@pytest.fixture(scope="session")
def demo(stack):
    return stack.tenant(concurrency=20)


def api_proc(stack, tmp_path, name, **env):
    """A batchcall-api of a test's own on a free port, the stack's settings
    with env over them, once ready: (its Proc, port, URL). Caller stops it."""
    port = free_port()
    p = Proc(name, [os.path.join(BUILD, "batchcall-api")],
             dict(stack.env, BC_API_PORT=str(port), **env), str(tmp_path))
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_ready(url)
    except BaseException:
        p.stop()
        raise
    return p, port, url


def consume_from_start(stack, name, group, conf=None):
    """A consumer of the session's topic <prefix>.<name>, assigned every
    partition from offset 0 (its group commits nothing: each read is of the
    whole topic). conf: more settings. Caller closes it."""
    from confluent_kafka import Consumer, TopicPartition
    topic = f"{stack.prefix}.{name}"
    c = Consumer(dict({"bootstrap.servers": stack.brokers, "group.id": group,
                       "auto.offset.reset": "earliest", "enable.auto.commit": False}, **(conf or {})))
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    return c


def statements_reset(stack):
    """Forgets pg_stat_statements' counts for the stack's database alone
    (the local cluster loads it: deploy/local/pg.sh)."""
    stack.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    stack.sql("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
              "  WHERE datname = current_database()), 0)")


def statement_pages(stack, like):
    """[(calls, pages read)] of the stack database's statements whose text
    is LIKE like."""
    return [tuple(r) for r in stack.sql(
        "SELECT s.calls, s.shared_blks_hit + s.shared_blks_read"
        "  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database() AND s.query LIKE %s", like)]


def statement_pages_over(stack, like, n, timeout=15):
    """(calls, pages read) of the stack database's statements LIKE like
    over their next n calls, counted from now."""
    def now():
        rows = statement_pages(stack, like)
        return tuple(map(sum, zip(*rows))) if rows else (0, 0)
    c0, p0 = now()
    wait_until(lambda: now()[0] >= c0 + n, timeout, f"{n} more calls of {like}")
    c, p = now()
    return c - c0, p - p0


def vacuum(stack, table):
    """VACUUM table in the stack's database: before counting pages, so the
    dead rows earlier tests left are not read whatever the scan's bound."""
    conn = psycopg2.connect(stack.dsn)
    conn.autocommit = True   # VACUUM runs outside a transaction
    try:
        conn.cursor().execute(f"VACUUM {table}")
    finally:
        conn.close()


def cartesia_headers(key):
    return {"X-API-Key": key, "Cartesia-Version": "2026-03-01",
            "Content-Type": "application/json"}


def cartesia_batch(stack, t, bid):
    """Tenant t's batch bid as Cartesia's Get Batch answers it (asserting 200)."""
    r = requests.get(f"{stack.api}/agents/calls/batches/{bid}",
                     headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(key):
    return {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def batchcall_headers(t):
    return {"X-API-KEY": t["x_api_key"], "X-API-SECRET": t["x_api_secret"],
            "Content-Type": "application/json"}
