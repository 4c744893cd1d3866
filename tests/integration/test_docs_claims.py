"""The docs say what the code does, where a test can tell: the message
versions the docs name are the ones the code writes (each with its JSON
Schema), and every webhook event type the docs list is one a tenant can
subscribe to. (Settings are test_config_doc.py's.)"""
import glob
import os
import re

import requests

from conftest import ROOT, bearer

SCHEMA = re.compile(r"batchcall\.call-result/v(\d+)")


def read(paths):
    out = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            out[os.path.relpath(p, ROOT)] = f.read()
    return out


def code_versions():
    """The call-result versions a statement of ours writes."""
    srcs = read(glob.glob(os.path.join(ROOT, "sql", "*.sql"))
                + [p for d in ("worker", "scheduler", "common")
                   for ext in ("*.[ch]", "*.sql")
                   for p in glob.glob(os.path.join(ROOT, d, "**", ext), recursive=True)])
    return {v for text in srcs.values()
            for v in re.findall(r"'batchcall\.call-result/v(\d+)'", text)}


def test_the_call_result_versions_the_docs_name_are_the_ones_written():
    written = code_versions()
    assert written, "no call-result schema found in sql/, worker/, scheduler/ or common/"
    docs = read(glob.glob(os.path.join(ROOT, "docs", "*.md")) + [os.path.join(ROOT, "README.md")])
    for path, text in docs.items():
        named = set(SCHEMA.findall(text))
        assert named <= written, f"{path} names call-result versions {named - written} nobody writes"
    for v in written:
        assert os.path.exists(os.path.join(ROOT, "docs", "schemas", f"call-result.v{v}.json")), v


def test_every_webhook_event_the_docs_list_can_be_subscribed_to(stack):
    with open(os.path.join(ROOT, "docs", "webhooks.md"), encoding="utf-8") as f:
        text = f.read()
    # The event table: rows that start with an event type in backquotes.
    listed = set(re.findall(r"^\|\s*`((?:call|batch)\.[a-z_]+)`", text, re.M))
    assert len(listed) >= 3, listed
    t = stack.tenant()
    for ev in sorted(listed):
        r = requests.post(stack.api + "/v1/webhooks", headers=bearer(t["api_key"]),
                          json={"url": "https://hooks.example.com/docs", "events": [ev]},
                          timeout=10)
        assert r.status_code == 201, (ev, r.text)
    r = requests.post(stack.api + "/v1/webhooks", headers=bearer(t["api_key"]),
                      json={"url": "https://hooks.example.com/docs", "events": ["call.nonesuch"]},
                      timeout=10)
    assert r.status_code == 400, r.text
