"""The Cartesia and batch-call creates read their recipients while they
store them (the COPY runs beside the parse, B1): a plainly valid request is
streamed and stores what the whole parse would; any other is read whole,
so every refusal is the whole parse's, in its order, and stores nothing."""
import datetime
import json

import pytest
import requests

from conftest import batchcall_headers, cartesia_headers, scrape, statement_pages, statements_reset

URL = "/agents/calls/batches"


def reads(stack, surface="cartesia"):
    m = scrape(stack.api)
    return tuple(m.get(f'api_batch_create_reads_total{{surface="{surface}",read="{how}"}}', 0)
                 for how in ("streamed", "whole"))


def stored(stack):
    return stack.sql("SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM recipients)")[0]


def fields(demo, agent=None):
    return (f'"name": "s", "agent_id": {json.dumps(agent or demo["agent_id"])}, '
            f'"from_number_id": {json.dumps(demo["from_number_id"])}, '
            f'"scheduled_at": "{tomorrow()}"')


def tomorrow():
    """Scheduled a day ahead: nothing is dialed while the test looks."""
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def post(stack, demo, text):
    return requests.post(stack.api + URL, headers=cartesia_headers(demo["api_key"]),
                         data=text.encode(), timeout=30)


def rows_of(stack, batch):
    return [tuple(x) for x in stack.sql(
        "SELECT seq, to_number, from_number, metadata::text, variables::text, timezone,"
        " max_retries, retry_policy::text, status FROM recipients WHERE batch_id = %s"
        " ORDER BY seq", batch)]


def test_a_plain_create_is_streamed_and_stores_what_the_whole_parse_stores(stack, demo):
    # The array first and the fields after it, odd whitespace, brackets and
    # commas inside strings: the scan must find the member, not the text.
    text = ('{ "KEY" : [\n'
            '  {"to_number": "+14155550101", "metadata": {"note": "a, [b]", "n": [1, {"x": "}"}]}},\n'
            '  {"to_number": "+14155550102", "dynamic_variables": {"name": "Ann \\"Q\\""},'
            '   "timezone": "Europe/Paris"} ,\t'
            '  {"to_number": "+14155550103", "from_number": "+14155550100", "max_retries": 2,'
            '   "retry_policy": {"retry_on": ["busy"]}}\r\n'
            '], "metadata": {"recipients": [1]}, ' + fields(demo) + ' }')
    s0, w0 = reads(stack)
    streamed = post(stack, demo, text.replace("KEY", "recipients"))
    assert streamed.status_code == 201, streamed.text
    assert reads(stack) == (s0 + 1, w0)
    # The same document with its key escaped, which the scan declines: the
    # whole parse reads it, and must store the same rows.
    whole = post(stack, demo, text.replace("KEY", "recipient\\u0073"))
    assert whole.status_code == 201, whole.text
    assert reads(stack) == (s0 + 1, w0 + 1)
    rows = rows_of(stack, streamed.json()["id"])
    assert rows == rows_of(stack, whole.json()["id"])
    assert [r[:3] for r in rows] == [(0, "+14155550101", None), (1, "+14155550102", None),
                                     (2, "+14155550103", "+14155550100")]
    assert json.loads(rows[0][3]) == {"note": "a, [b]", "n": [1, {"x": "}"}]}
    assert json.loads(rows[1][4]) == {"name": 'Ann "Q"'} and rows[1][5] == "Europe/Paris"
    assert rows[2][6] == 2
    for b in (streamed, whole):
        assert stack.sql("SELECT total FROM batches WHERE id = %s", b.json()["id"])[0][0] == 3


def recipients(n, bad_at=None, bad='{"to_number": "415"}'):
    items = [f'{{"to_number": "+1415555{i:04d}"}}' for i in range(n)]
    if bad_at is not None:
        items[bad_at] = bad
    return ", ".join(items)


# Each refusal, with the words the whole parse gives. The agent is unknown
# in some: streamed, the agent is looked up before a recipient is read, and
# a 404 would win over the 400 the whole parse gives first.
CASES = {
    "a bad number after an unknown agent": (
        lambda d: '{' + fields(d, "ag_nope") + ', "recipients": [' + recipients(5, 3) + ']}',
        400, "recipients[3].to_number must be an E.164"),
    "an unknown agent, the recipients fine": (
        lambda d: '{' + fields(d, "ag_nope") + ', "recipients": [' + recipients(3) + ']}',
        404, "agent 'ag_nope' not found"),
    "a bad number after the first COPY pieces are sent": (
        lambda d: '{' + fields(d) + ', "recipients": [' + recipients(1500, 1300) + ']}',
        400, "recipients[1300].to_number must be an E.164"),
    "an element cut short in the middle": (
        lambda d: '{' + fields(d) + ', "recipients": [' + recipients(4, 2, '{"to_number": }') + ']}',
        400, "malformed JSON at line 1 column"),
    "a trailing comma": (
        lambda d: '{' + fields(d) + ', "recipients": [' + recipients(2) + ', ]}',
        400, "malformed JSON"),
    "a scalar element": (
        lambda d: '{' + fields(d) + ', "recipients": [' + recipients(3, 1, '"+14155550000"') + ']}',
        400, "recipients[1] must be an object"),
    "5,001 recipients": (
        lambda d: '{' + fields(d) + ', "recipients": [' + recipients(5001) + ']}',
        400, "between 1 and 5000 items (got 5001)"),
    "no recipients": (
        lambda d: '{' + fields(d) + ', "recipients": [ ]}', 400, "(got 0)"),
    "the member twice": (
        lambda d: '{' + fields(d) + ', "recipients": [' + recipients(1) + '], "recipients": ['
        + recipients(1) + ']}', 400, "malformed JSON"),
    "a recipient's unknown time zone": (
        lambda d: '{' + fields(d) + ', "recipients": [' + recipients(
            3, 2, '{"to_number": "+14155550000", "timezone": "Mars/Olympus"}') + ']}',
        400, "timezone 'Mars/Olympus' of a recipient is not an IANA time zone"),
    "a recipient's metadata over the cap": (
        lambda d: '{' + fields(d) + ', "recipients": [' + recipients(
            3, 1, '{"to_number": "+14155550000", "metadata": {"x": "' + "y" * 5000 + '"}}') + ']}',
        400, "recipients[1].metadata"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_request_not_plainly_valid_is_read_whole_and_stores_nothing(stack, demo, case):
    make, status, words = CASES[case]
    before = stored(stack)
    s0, w0 = reads(stack)
    r = post(stack, demo, make(demo))
    assert r.status_code == status, r.text
    assert words in r.json()["error"], r.text
    assert reads(stack) == (s0, w0 + 1)
    assert stored(stack) == before


def test_a_create_of_many_copy_pieces_stores_every_recipient_in_order(stack, demo):
    # 1,500 rows are three 64 KB pieces of COPY, each sent as it is made
    # while the next recipients are parsed: all land, in order.
    s0, w0 = reads(stack)
    r = post(stack, demo, '{' + fields(demo) + ', "recipients": [' + recipients(1500) + ']}')
    assert r.status_code == 201, r.text
    assert reads(stack) == (s0 + 1, w0)
    rows = stack.sql("SELECT seq, to_number FROM recipients WHERE batch_id = %s ORDER BY seq",
                     r.json()["id"])
    assert [tuple(x) for x in rows] == [(i, f"+1415555{i:04d}") for i in range(1500)]


def test_the_create_answer_reads_the_waiting_rows_alone_not_the_batch(stack, demo):
    # The answer of a create counts its recipients waiting for their hours
    # through recipients_window_wait. For a batch the statistics have not
    # seen, the planner could read it through recipients_active instead:
    # every row of the batch (157 pages for 5,000, 1.2 ms of each create).
    statements_reset(stack)
    r = post(stack, demo, '{' + fields(demo) + ', "recipients": [' + recipients(5000) + ']}')
    assert r.status_code == 201, r.text
    assert r.json()["total_calls_waiting_for_window"] == 0
    rows = statement_pages(stack, "%b.total::bigint AS queued%")
    assert [calls for calls, _ in rows] == [1], rows
    # Planning on a connection's first use reads ~70 catalog pages; the
    # batch's rows in recipients_active are 157 more (241 measured before).
    assert rows[0][1] < 120, f"the create's answer read {rows[0][1]} pages"


def test_a_malformed_element_is_placed_in_the_whole_body(stack, demo):
    # The error's column counts from the body's start, not the element's:
    # the whole parse wrote it.
    head = '{' + fields(demo) + ', "recipients": [' + recipients(40) + ', '
    r = post(stack, demo, head + '{"to_number": }]}')
    assert r.status_code == 400, r.text
    column = int(r.json()["error"].split("column ")[1].split(":")[0])
    assert column > len(head)


# batch-call: the same path, its tasks under their own key and cap.
@pytest.fixture(scope="module")
def bt(stack):
    return stack.tenant(concurrency=10)


def batchcall_text(t, tasks, key="tasks", agent=None):
    return ('{"from_number": "+14157774444", "name": "s", "status": "draft", '
            f'"agent_id": {json.dumps(agent or t["agent_id"])}, '
            f'"{key}": [' + tasks + '], "timezone": "America/New_York"}')


def post_batchcall(stack, t, text):
    return requests.post(stack.api + "/batch-call", headers=batchcall_headers(t),
                         data=text.encode(), timeout=30)


def test_a_plain_batchcall_create_is_streamed_and_stores_what_the_whole_parse_stores(stack, bt):
    tasks = ('{"to_number": "+12137774445", "dynamic_variables": {"first_name": "Jo, [x]"},'
             ' "max_retries": 3}, {"to_number": "+12137774446", "timezone": "Europe/Paris"}')
    s0, w0 = reads(stack, "batch-call")
    streamed = post_batchcall(stack, bt, batchcall_text(bt, tasks))
    assert streamed.status_code == 201, streamed.text
    assert reads(stack, "batch-call") == (s0 + 1, w0)
    whole = post_batchcall(stack, bt, batchcall_text(bt, tasks, key="task\\u0073"))
    assert whole.status_code == 201, whole.text
    assert reads(stack, "batch-call") == (s0 + 1, w0 + 1)
    rows = rows_of(stack, streamed.json()["data"]["batch_call_id"])
    assert rows == rows_of(stack, whole.json()["data"]["batch_call_id"])
    assert [r[1] for r in rows] == ["+12137774445", "+12137774446"]
    assert json.loads(rows[0][4]) == {"first_name": "Jo, [x]"} and rows[0][6] == 3


BATCHCALL_CASES = {
    "a bad number after an unknown agent": (
        lambda t: batchcall_text(t, '{"to_number": "+12137774445"}, {"to_number": "213"}',
                                 agent="ag_nope"), 400, "tasks[1].to_number must be in E.164"),
    "an unknown agent": (
        lambda t: batchcall_text(t, '{"to_number": "+12137774445"}', agent="ag_nope"),
        404, "Agent not found"),
    "1,001 tasks": (
        lambda t: batchcall_text(t, ", ".join(f'{{"to_number": "+1213777{i:04d}"}}'
                                              for i in range(1001))),
        400, "between 1 and 1000 elements (got 1001)"),
    "a trailing comma": (
        lambda t: batchcall_text(t, '{"to_number": "+12137774445"},'), 400, None),
}


@pytest.mark.parametrize("case", list(BATCHCALL_CASES))
def test_a_batchcall_request_not_plainly_valid_is_read_whole(stack, bt, case):
    make, status, words = BATCHCALL_CASES[case]
    before = stored(stack)
    s0, w0 = reads(stack, "batch-call")
    r = post_batchcall(stack, bt, make(bt))
    assert r.status_code == status, r.text
    assert r.json()["status"] == "error" and (words is None or words in r.json()["message"]), r.text
    assert reads(stack, "batch-call") == (s0, w0 + 1)
    assert stored(stack) == before
