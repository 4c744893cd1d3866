"""The tenant's CLI, `batchcall batches ...`, driven as a person drives it: in
a real terminal (tmux), typing commands with send-keys and reading the screen
with capture-pane, against the real stack. Bad input is checked by exit
status and stderr as a script would see them."""
import csv
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import BUILD, ROOT, wait_until

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(not TMUX, reason="tmux is installed by deploy/local/install-deps.sh")

BUSY = "0486"   # the simulator's forced outcome: numbers ending so are busy


class Terminal:
    """A tmux server of our own (its own socket), one 120x40 window running
    a plain bash with the tenant's key in its environment."""

    def __init__(self, tmp, env):
        # `batchcall` on PATH, typed as a person types it.
        self.sock = os.path.join(str(tmp), "tmux.sock")
        self.raw = os.path.join(str(tmp), "pane.raw")
        env = dict(env, HISTFILE="/dev/null", PATH=BUILD + os.pathsep + env["PATH"])
        subprocess.run([TMUX, "-S", self.sock, "-f", "/dev/null", "new-session", "-d", "-s", "t",
                        "-x", "120", "-y", "40", "PS1='$ ' exec bash --norc --noprofile"],
                       env=env, check=True, timeout=10)
        try:
            wait_until(lambda: "$" in self.screen(), 10, "the shell prompt")
        except AssertionError:
            self.close()   # no fixture teardown runs for a failed set-up
            raise

    def tmux(self, *args):
        return subprocess.run([TMUX, "-S", self.sock, *args], check=True, capture_output=True,
                              text=True, timeout=10).stdout

    def type(self, line):
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.tmux("send-keys", "-t", "t", "Enter")

    def screen(self, history=False):
        return self.tmux("capture-pane", "-p", "-t", "t", *(["-S", "-"] if history else []))

    def fresh(self):
        self.type("clear")
        wait_until(lambda: self.screen().strip() == "$", 10, "a cleared screen")
        self.tmux("clear-history", "-t", "t")

    def run(self, cmd, timeout=60):
        """Types cmd on a clear screen; returns (screen, exit status)."""
        self.fresh()
        self.type(cmd + '; echo "__rc=$?__"')
        pat = re.compile(r"__rc=(\d+)__")
        wait_until(lambda: pat.search(self.screen(history=True)), timeout, f"'{cmd}' to end")
        scr = self.screen(history=True)
        return scr, int(pat.search(scr).group(1))

    def record(self):
        """Everything the pane gets from now on, escape sequences and all."""
        self.tmux("pipe-pane", "-t", "t", "-o", f"cat >> {self.raw}")

    def recorded(self):
        self.tmux("pipe-pane", "-t", "t")
        with open(self.raw, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        subprocess.run([TMUX, "-S", self.sock, "kill-server"], timeout=10)


@pytest.fixture(scope="module")
def tenant(stack):
    return stack.tenant(concurrency=10)


@pytest.fixture(scope="module")
def term(stack, tenant, tmp_path_factory):
    env = dict(os.environ, BC_API_URL=stack.api, BC_API_KEY=tenant["api_key"])
    t = Terminal(tmp_path_factory.mktemp("tmux"), env)
    yield t
    t.close()


def cli(stack, tenant, *args, key=None, timeout=60):
    env = dict(os.environ, BC_API_URL=stack.api, BC_API_KEY=key or tenant["api_key"])
    return subprocess.run([stack.bin("batchcall"), "batches", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def write_csv(path, rows, extra=("first_name", "plan")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phone_number", "from_number", *extra])
        for r in rows:
            w.writerow(r)
    return str(path)


def people(n, busy_every=0, start=0, pad=""):
    rows = []
    for i in range(start, start + n):
        num = f"+1415{(i % 10000):04d}{BUSY}" if busy_every and i % busy_every == 0 \
            else f"+1628{i:07d}"
        rows.append([num, "+14155550199" if i % 5 == 0 else "", f"Person {i}{pad}", "gold"])
    return rows


def counts_in_pg(stack, batch):
    rows = stack.sql("SELECT status, count(*) FROM recipients WHERE batch_id = %s GROUP BY 1", batch)
    return {k: v for k, v in rows}


FRAME = re.compile(r"progress\s+\[[=> ]+\]\s+(\d+)%\s+(\d+) of (\d+) finished")
COUNTS = re.compile(r"counts\s+queued (\d+)\s+live (\d+)\s+completed (\d+)\s+failed (\d+)"
                    r"\s+cancelled (\d+)")
LIVE = re.compile(r"live\s+(\d+)/(\d+) calls \(batch limit\)\s+(\d+)/(\d+) \(tenant limit\)")


def update_doc_capture(mid, final):
    """BC_UPDATE_DOCS=1: docs/cli.md shows this run's screen, mid-run and at
    the end, between its capture markers."""
    def clean(scr):
        return "\n".join(l.rstrip() for l in scr.strip().splitlines()
                         if "__rc" not in l and l.strip() != "$")
    cmd = next(l for l in final.splitlines() if "batches watch" in l)
    cmd = cmd.replace('; echo "__rc=$?__"', "")
    text = f"{cmd}\n{clean(mid)}\n\n# ... and when it is done:\n{clean(final)}\n"
    path = os.path.join(ROOT, "docs", "cli.md")
    with open(path) as f:
        doc = f.read()
    doc = re.sub(r"(<!-- watch-capture -->\n```\n).*?(```\n<!-- /watch-capture -->)",
                 lambda m: m.group(1) + text + m.group(2), doc, flags=re.S)
    with open(path, "w") as f:
        f.write(doc)


def test_create_from_csv_draws_upload_progress_then_cancel_stops_it(stack, tenant, term, tmp_path):
    # 3,000 rows with padding make a body of several hundred KiB; capped at
    # 150 KiB/s the upload takes seconds, so the bar has frames to show.
    path = write_csv(tmp_path / "big people.csv", people(3000, pad=" " + "x" * 60))
    term.record()
    scr, rc = term.run(f"batchcall batches create --file '{path}' "
                       f"--name big --concurrency 2 --limit-rate 150000", timeout=60)
    raw = term.recorded()
    assert rc == 0, scr
    m = re.search(r"created batch (acb_\w+) \"big\": 3000 recipients", scr)
    assert m, scr
    batch = m.group(1)
    # The bar was redrawn in place (carriage returns), through several
    # percentages, and ended at 100%.
    pcts = [int(p) for p in re.findall(r"uploading .*?\]\s+(\d+)%", raw)]
    assert len(set(pcts)) >= 3 and pcts[-1] == 100 and pcts == sorted(pcts), pcts
    assert "\r" in raw
    assert re.search(r"uploading .* 100% .* of .*, waiting for the API", scr), scr

    # What the CSV said is what PostgreSQL holds: numbers, per-row caller
    # IDs, the other columns as variables.
    (total,) = stack.sql("SELECT total FROM batches WHERE id = %s", batch)[0]
    assert total == 3000
    r0, r1 = stack.sql("SELECT to_number, from_number, variables FROM recipients"
                       " WHERE batch_id = %s AND seq IN (0, 1) ORDER BY seq", batch)
    assert r0[0] == "+16280000000" and r0[1] == "+14155550199"
    assert r0[2] == {"first_name": "Person 0 " + "x" * 60, "plan": "gold"}
    assert r1[1] is None

    scr, rc = term.run(f"batchcall batches cancel {batch}")
    assert rc == 0, scr
    m = re.search(r"cancelled batch (\S+): (\d+) recipients will not be called, (\d+) live", scr)
    assert m and m.group(1) == batch, scr
    pg = counts_in_pg(stack, batch)
    assert pg["cancelled"] == int(m.group(2)) and pg["cancelled"] > 2900
    # Cancel means stop: nothing queued is left to dial.
    assert pg.get("queued", 0) == 0


def test_watch_redraws_live_progress_in_place_until_done(stack, tenant, term, tmp_path):
    path = write_csv(tmp_path / "people.csv", people(80, busy_every=8))
    out = cli(stack, tenant, "create", "--file", path, "--concurrency", "2", "--json")
    assert out.returncode == 0, out.stderr
    batch = json.loads(out.stdout)["id"]

    term.fresh()
    term.type(f"batchcall batches watch {batch} --interval-ms 200; "
              'echo "__rc=$?__"')
    seen, frames = [], []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        scr = term.screen(history=True)
        m = FRAME.search(scr)
        if m:
            frames.append(scr)
            seen.append(int(m.group(2)))
            c, live = COUNTS.search(scr), LIVE.search(scr)
            assert c and live, scr
            # Live calls never shown above the batch's limit of 2.
            assert int(live.group(1)) <= int(live.group(2)) == 2, scr
            assert sum(int(x) for x in c.groups()) == 80, scr
        if "__rc=" in scr and re.search(r"__rc=\d+__", scr):
            break
        time.sleep(0.15)
    final = term.screen(history=True)
    assert re.search(r"__rc=0__", final), final
    # Redrawn in place: one frame on the whole screen and its history, not
    # a scroll of frames.
    assert final.count("progress  [") == 1, final
    # The finished count moved while we watched, and only forward.
    assert len(set(seen)) >= 3, seen
    assert seen == sorted(seen), seen
    assert re.search(r"status\s+completed", final), final
    assert "done: watched for" in final
    assert re.search(r"rate\s+\d+\.\d calls/min\s+eta done", final), final
    # The last frame is PostgreSQL's truth.
    c = COUNTS.search(final)
    pg = counts_in_pg(stack, batch)
    assert int(c.group(3)) == pg.get("completed", 0)
    assert int(c.group(4)) == pg.get("failed", 0) >= 10   # every 8th number is busy
    assert FRAME.search(final).group(2) == "80"
    reasons = dict(stack.sql("SELECT end_reason, count(*) FROM recipients WHERE batch_id = %s"
                             " GROUP BY 1", batch))
    assert f"dial_busy {reasons['dial_busy']}" in final
    if os.environ.get("BC_UPDATE_DOCS") == "1":
        update_doc_capture(frames[len(frames) // 2], final)
    test_watch_redraws_live_progress_in_place_until_done.batch = batch


def test_list_shows_the_batches_and_json_parses(stack, tenant, term):
    batch = getattr(test_watch_redraws_live_progress_in_place_until_done, "batch", None)
    assert batch, "runs after the watch test"
    scr, rc = term.run(f"batchcall batches list")
    assert rc == 0, scr
    assert re.search(r"ID\s+NAME\s+STATUS\s+FINISHED", scr), scr
    row = next(l for l in scr.splitlines() if l.startswith(batch))
    assert re.search(r"\bpeople\s+completed\s+80/80\s+100%\s+0/2\b", row), row
    assert re.search(r"\bbig\s+cancelled\b", scr), scr
    assert re.search(r"tenant: \d+ of 10 live calls", scr)

    out = cli(stack, tenant, "list", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    ids = [b["id"] for b in doc["data"]]
    assert batch in ids and len(ids) == 2
    assert doc["tenant"]["concurrency_limit"] == 10

    # watch --json: one object per line, every line JSON, the last one done.
    out = cli(stack, tenant, "watch", batch, "--json")
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and lines, out.stderr
    docs = [json.loads(l) for l in lines]
    assert docs[-1]["done"] is True and docs[-1]["counts"]["completed"] + \
        docs[-1]["counts"]["failed"] == 80
    out = cli(stack, tenant, "show", batch, "--json")
    assert json.loads(out.stdout)["status"] == "completed"


def test_retry_queues_the_failed_again(stack, tenant, term):
    batch = getattr(test_watch_redraws_live_progress_in_place_until_done, "batch", None)
    assert batch, "runs after the watch test"
    failed = [r[0] for r in stack.sql("SELECT id FROM recipients WHERE batch_id = %s"
                                      " AND status = 'failed'", batch)]
    scr, rc = term.run(f"batchcall batches retry {batch}")
    assert rc == 0, scr
    assert f"retried batch {batch} (retry 1): {len(failed)} failed recipients queued again" \
        in scr, scr
    assert stack.sql("SELECT retry_count FROM batches WHERE id = %s", batch)[0][0] == 1
    # Each failed recipient gets a second attempt, and only they do.
    wait_until(lambda: stack.sql("SELECT count(*) FROM recipients WHERE id = ANY(%s)"
                                 " AND attempts = 2 AND status IN ('completed', 'failed')",
                                 failed)[0][0] == len(failed),
               60, "the retried recipients to end again")
    assert stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s AND attempts > 1",
                     batch)[0][0] == len(failed)
    # Busy numbers stay busy.
    assert stack.sql("SELECT count(*) FROM recipients WHERE batch_id = %s AND to_number LIKE %s"
                     " AND status <> 'failed'", batch, "%" + BUSY)[0][0] == 0
    # A cancelled batch cannot be retried: the API's words, exit 1.
    big = stack.sql("SELECT id FROM batches WHERE name = 'big' AND tenant_id = %s",
                    tenant["tenant_id"])[0][0]
    scr, rc = term.run(f"batchcall batches retry {big}")
    assert rc == 1
    assert "batchcall: a cancelled batch cannot be retried (HTTP 409 conflict)" in scr, scr


def test_bad_input_gets_a_clear_message_and_a_failing_exit(stack, tenant, tmp_path):
    before = stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s",
                       tenant["tenant_id"])[0][0]

    out = cli(stack, tenant, "create", "--file", str(tmp_path / "nope.csv"))
    assert out.returncode == 2
    assert "batchcall: cannot read " in out.stderr and "No such file or directory" in out.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("number,first_name\n+14155550101,Ann\n555-0102,Bob\n")
    out = cli(stack, tenant, "create", "--file", str(bad))
    assert out.returncode == 2
    assert f"batchcall: {bad}: line 3: number is not a phone number in E.164 form" in out.stderr

    noheader = tmp_path / "noheader.csv"
    noheader.write_text("first_name\nAnn\n")
    out = cli(stack, tenant, "create", "--file", str(noheader))
    assert out.returncode == 2 and "line 1: no number column" in out.stderr

    good = write_csv(tmp_path / "good.csv", people(2))
    out = cli(stack, tenant, "create", "--file", good, key="bc_sk_0123456789abcdef_" + "0" * 32)
    assert out.returncode == 1
    assert "batchcall: the API key was refused: check BC_API_KEY or --api-key (HTTP 401" \
        in out.stderr

    out = cli(stack, tenant, "create", "--file", good, "--from", "+14155550999")
    assert out.returncode == 2
    assert "--from +14155550999 is not a number registered to this tenant" in out.stderr

    out = cli(stack, tenant, "watch", "acb_doesnotexist")
    assert out.returncode == 1 and "batch not found (HTTP 404 not_found)" in out.stderr
    out = cli(stack, tenant, "cancel")
    assert out.returncode == 2 and "needs a batch id" in out.stderr
    out = cli(stack, tenant, "list", "--colour")
    assert out.returncode == 2 and "unknown flag '--colour'" in out.stderr

    # None of it made a batch.
    assert stack.sql("SELECT count(*) FROM batches WHERE tenant_id = %s",
                     tenant["tenant_id"])[0][0] == before
