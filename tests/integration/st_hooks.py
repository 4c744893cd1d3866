"""Schemathesis hooks for the run in test_openapi.py (loaded through
SCHEMATHESIS_HOOKS): what a well-behaved client does that a generator
reading only the OpenAPI document cannot know.

- Idempotency-Key: a fresh key for every request. The server replays the
  answer to a repeated key and body and refuses the key with another body
  (400 on Cartesia and batch-call, 409 on Rymi; docs/api.md), and the
  generator draws the same few keys ("0", "00") for different bodies.
- A valid body (positive generation) is made to keep the rules the document
  states in words because JSON Schema cannot state them: times ahead of now
  (scheduled_at, latest_at and their millisecond forms), a retry backoff
  whose max_s is at least its base_s, calling hours whose start and end
  differ, a Retell window that starts before it ends, a time zone that
  exists, a batch's concurrency within its tenant's limit
  (BC_ST_CONCURRENCY, the tenant test_openapi.py makes), and integers
  within 64 bits (RFC 8259 lets a parser limit them; free-form objects
  cannot say so in OpenAPI 3.0). An invalid body is sent as drawn; the
  server must refuse it.
- Retell's tasks name one agent: override_agent_id on every task or on
  none, the same on each and as agent_id (docs/retell.md; 400 else).
- A schema-valid create may still be refused for the state of what it names
  (docs/api.md, agents.md, retell.md), which no schema can state: an agent
  without an endpoint (400; Retell 422), a tenant whose default number the
  run deleted (Rymi 400), a from_number or agent not the account's (Retell
  422, its document's "Cannot find requested asset": other surfaces' 404).
  Those answers, and only those, do not fail positive_data_acceptance
  (filter_failure below)."""
import datetime
import itertools
import os
import secrets
import zoneinfo

import schemathesis

_keys = itertools.count(1)
_RUN = secrets.token_hex(4)     # keys are the tenant's: another run's are taken
ZONES = zoneinfo.available_timezones()
ISO_FIELDS = {"scheduled_at": 1, "latest_at": 2}          # days ahead
MS_FIELDS = {"trigger_timestamp": 1, "latest_timestamp": 2}
CONCURRENCY = int(os.environ.get("BC_ST_CONCURRENCY", "4"))


def _fresh_key(key):
    """A key of the same validity, never sent before: the generator's 1 to
    255 characters become a unique one of at least 16."""
    if not isinstance(key, str) or not 1 <= len(key) <= 255:
        return key
    tag = f"st{_RUN}{next(_keys):06d}"
    return tag + key[len(tag):] if len(key) > len(tag) else tag


def _ahead(days):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)


def _int64(x):
    if isinstance(x, int) and not isinstance(x, bool):
        return max(-(1 << 63), min((1 << 63) - 1, x))
    return x


def _keep_rules(v):
    if isinstance(v, list):
        for i, x in enumerate(v):
            v[i] = _int64(x)
            _keep_rules(x)
        return
    if not isinstance(v, dict):
        return
    for k in v:
        v[k] = _int64(v[k])
    for k, days in ISO_FIELDS.items():
        if isinstance(v.get(k), str):
            v[k] = _ahead(days).strftime("%Y-%m-%dT%H:%M:%SZ")
    for k, days in MS_FIELDS.items():
        if isinstance(v.get(k), (int, float)) and not isinstance(v.get(k), bool):
            v[k] = int(_ahead(days).timestamp() * 1000)
    bo = v.get("retry_backoff")
    if isinstance(bo, dict) and all(isinstance(bo.get(k), int) for k in ("max_s", "base_s")):
        bo["max_s"] = max(bo["max_s"], bo["base_s"])
    hours = v.get("calling_hours")
    if isinstance(hours, dict) and hours.get("start") == hours.get("end") == "00:00":
        hours["end"] = "23:59"
    elif isinstance(hours, dict) and hours.get("start") == hours.get("end"):
        hours["start"] = "00:00"
    for w in v.get("windows", []) if isinstance(v.get("windows"), list) else []:
        if (isinstance(w, dict) and isinstance(w.get("start"), (int, float))
                and isinstance(w.get("end"), (int, float)) and w["start"] >= w["end"]):
            w["start"], w["end"] = 0, 1440
    if isinstance(v.get("target_concurrency_limit"), int):
        v["target_concurrency_limit"] = min(v["target_concurrency_limit"], CONCURRENCY)
    if isinstance(v.get("reserved_concurrency"), int):
        v["reserved_concurrency"] = min(v["reserved_concurrency"], CONCURRENCY - 1)
    tasks = v.get("tasks") if isinstance(v.get("tasks"), list) else []
    agents = [t["override_agent_id"] for t in tasks
              if isinstance(t, dict) and isinstance(t.get("override_agent_id"), str)]
    if agents:
        agent = v["agent_id"] if isinstance(v.get("agent_id"), str) else agents[0]
        for t in tasks:
            if isinstance(t, dict):
                t["override_agent_id"] = agent
    tz = v.get("timezone")
    if isinstance(tz, str) and tz not in ZONES:
        v["timezone"] = "America/New_York"
    for x in v.values():
        _keep_rules(x)


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = _fresh_key(headers[name])
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and isinstance(case.body, (dict, list)):
        _keep_rules(case.body)


# The refusals a create owes to the state of what it names: (status, words
# of its message).
STATE_REFUSALS = ((400, "has no endpoint"), (422, "has no endpoint"),
                  (400, "the tenant has no default number"),
                  (422, "is not a number of this account"), (422, "is not bound to an agent"),
                  # Retell's 404: an agent_id (or override) not the account's
                  (422, "Cannot find requested asset"))


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if getattr(failure, "code", None) != "ST202":
        return True
    try:
        body = response.json()
    except ValueError:
        return True
    if not isinstance(body, dict):
        return True
    words = " ".join(str(body.get(k, "")) for k in ("error", "message"))
    return not any(response.status_code == st and w in words for st, w in STATE_REFUSALS)
