"""The scheduler's relay reads only the outbox rows old enough to relay:
its scan of the primary key ends at the id handed out relay_after_ms ago,
before the young rows that publishers are about to delete (B2: 45-86 ms a
relay when it read them all)."""
import pytest

from conftest import (free_port, statement_pages, statement_pages_over, statements_reset,
                      vacuum, wait_until)

RELAY_AFTER_MS = 30000


# The relay's statement.
STRAGGLERS = "SELECT o.id, o.topic, o.key, o.payload FROM outbox o%"


@pytest.fixture
def relay_scheduler(stack):
    """The session stack's scheduler replaced, for one test, by one whose
    relay waits RELAY_AFTER_MS; put back afterwards as it was."""
    base = stack.procs["scheduler"]
    base.stop()
    port = free_port()
    sched = stack.start("sched-relay", "batchcall-scheduler", {
        "BC_SCHEDULER_PORT": str(port), "BC_SCHEDULER_TICK_MS": "50", "BC_WEBHOOKS": "0",
        "BC_RELAY_AFTER_MS": str(RELAY_AFTER_MS)})
    try:
        stack.wait_ready(f"http://127.0.0.1:{port}")
        wait_until(lambda: sched.events("scheduler.leading"), 15, "the scheduler to lead")
        yield sched
    finally:
        sched.stop()
        del stack.procs["sched-relay"]
        again = stack.start("scheduler", "batchcall-scheduler", {
            "BC_SCHEDULER_PORT": str(base.port), "BC_SCHEDULER_TICK_MS": "50", "BC_WEBHOOKS": "0"})
        again.port = base.port
        stack.wait_ready(f"http://127.0.0.1:{base.port}")


def test_the_relay_does_not_read_rows_younger_than_its_delay(stack, relay_scheduler):
    # The relay's delay is long enough that the rows below stay young for
    # the whole test.
    # The earlier tests' deleted rows, not yet vacuumed, would be read on
    # the way to the bound whatever it is (CI under ASan: 103 pages a
    # relay): gone first, so the count below is the young rows' alone.
    vacuum(stack, "outbox")
    # 5,000 rows a publisher has written and not yet deleted, of a topic no
    # relay sends (so nothing is published whatever happens).
    stack.sql("INSERT INTO outbox (topic, key, payload)"
              " SELECT 'unrelated', 'k' || g, repeat('x', 200) FROM generate_series(1, 5000) g")
    statements_reset(stack)
    try:
        # From the second relay on: the first also plans on a new connection.
        wait_until(lambda: statement_pages(stack, STRAGGLERS), 15, "a relay")
        calls, pages = statement_pages_over(stack, STRAGGLERS, 3)
        # Reading the 5,000 young rows cost 194 pages a relay; the bounded
        # scan and its plan read 18 (measured).
        assert pages / calls < 60, f"{pages} pages in {calls} relays"
    finally:
        stack.sql("DELETE FROM outbox WHERE topic = 'unrelated'")
