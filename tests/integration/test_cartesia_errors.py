"""Bad input on the Cartesia create path gets the documented status and a
JSON error body, and changes nothing."""
import pytest
import requests

from conftest import cartesia_headers

URL = "/agents/calls/batches"


def good_body(demo, n=2):
    return {"name": "b", "agent_id": demo["agent_id"], "from_number_id": demo["from_number_id"],
            "recipients": [{"to_number": f"+1415555{i:04d}"} for i in range(n)]}


def count_batches(stack):
    return stack.sql("SELECT count(*) FROM batches")[0][0]


def post(stack, headers, data=None, json_body=None):
    return requests.post(stack.api + URL, headers=headers, data=data, json=json_body, timeout=30)


def assert_error(r, status, code=None):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    if code:
        assert body["code"] == code


def test_malformed_json_is_400(stack, demo):
    before = count_batches(stack)
    r = post(stack, cartesia_headers(demo["api_key"]), data='{"name": "x", ')
    assert_error(r, 400, "invalid_request")
    assert "malformed JSON" in r.json()["error"]
    assert count_batches(stack) == before


def test_malformed_json_quoting_half_a_character_still_gets_a_json_error(stack, demo):
    # Found by tests/fuzz/fuzz_cartesia: jansson's message quoted a lone UTF-8
    # lead byte and the 400 went out with an empty body.
    r = post(stack, cartesia_headers(demo["api_key"]), data='{"na\\\u022bme": "x"}'.encode())
    assert_error(r, 400, "invalid_request")
    assert "malformed JSON" in r.json()["error"]


@pytest.mark.parametrize("field", ["name", "agent_id", "from_number_id", "recipients"])
def test_missing_required_field_is_400(stack, demo, field):
    before = count_batches(stack)
    body = good_body(demo)
    del body[field]
    r = post(stack, cartesia_headers(demo["api_key"]), json_body=body)
    assert_error(r, 400, "invalid_request")
    assert field in r.json()["error"]
    assert count_batches(stack) == before


@pytest.mark.parametrize("number", ["4155559876", "+0415555", "+1415555abcd", "", 14155559876])
def test_invalid_phone_number_is_400(stack, demo, number):
    before = count_batches(stack)
    body = good_body(demo)
    body["recipients"].append({"to_number": number})
    r = post(stack, cartesia_headers(demo["api_key"]), json_body=body)
    assert_error(r, 400, "invalid_request")
    assert "recipients[2].to_number" in r.json()["error"]
    assert count_batches(stack) == before


def test_more_than_5000_recipients_is_400(stack, demo):
    before = count_batches(stack)
    r = post(stack, cartesia_headers(demo["api_key"]), json_body=good_body(demo, 5001))
    assert_error(r, 400, "invalid_request")
    assert "5000" in r.json()["error"]
    assert count_batches(stack) == before


@pytest.mark.parametrize("field,value", [
    ("ringing_timeout_seconds", 4), ("ringing_timeout_seconds", 81),
    ("max_call_duration_minutes", 0), ("max_call_duration_minutes", 481),
    ("target_concurrency_limit", 0), ("target_concurrency_limit", 21),
    ("scheduled_at", "2020-01-01T00:00:00Z"), ("scheduled_at", "tomorrow"),
    ("scheduled_at", "2099-01-01T00:00:00Z"), ("scheduled_at", "2026-06-15T16:00:00"),
])
def test_out_of_range_fields_are_400(stack, demo, field, value):
    before = count_batches(stack)
    body = good_body(demo)
    body[field] = value
    r = post(stack, cartesia_headers(demo["api_key"]), json_body=body)
    assert_error(r, 400, "invalid_request")
    assert count_batches(stack) == before


def test_oversized_metadata_is_400(stack, demo):
    body = good_body(demo)
    body["recipients"][0]["metadata"] = {"blob": "x" * 5000}
    r = post(stack, cartesia_headers(demo["api_key"]), json_body=body)
    assert_error(r, 400, "invalid_request")
    assert "metadata" in r.json()["error"]


@pytest.mark.parametrize("headers", [
    {"Cartesia-Version": "2026-03-01"},
    {"Cartesia-Version": "2026-03-01", "X-API-Key": "bc_sk_nope"},
    {"Cartesia-Version": "2026-03-01",
     "X-API-Key": "bc_sk_0123456789abcdef_0123456789abcdef0123456789abcdef"},
    {"Cartesia-Version": "2026-03-01", "Authorization": "Basic Zm9vOmJhcg=="},
])
def test_missing_or_wrong_key_is_401(stack, demo, headers):
    before = count_batches(stack)
    r = post(stack, headers, json_body=good_body(demo))
    assert_error(r, 401, "unauthorized")
    assert count_batches(stack) == before


def test_tampered_key_is_401(stack, demo):
    key = demo["api_key"]
    bad = key[:-1] + ("a" if key[-1] != "a" else "b")
    r = post(stack, cartesia_headers(bad), json_body=good_body(demo))
    assert_error(r, 401, "unauthorized")


def test_bearer_key_works(stack, demo):
    h = {"Authorization": "Bearer " + demo["api_key"], "Cartesia-Version": "2026-03-01"}
    r = post(stack, h, json_body=good_body(demo, 1))
    assert r.status_code == 201, r.text


def test_missing_version_header_is_400(stack, demo):
    r = post(stack, {"X-API-Key": demo["api_key"]}, json_body=good_body(demo))
    assert_error(r, 400, "invalid_request")
    assert "Cartesia-Version" in r.json()["error"]


def test_unknown_agent_or_number_is_404(stack, demo):
    before = count_batches(stack)
    body = good_body(demo)
    body["agent_id"] = "agent_doesnotexist"
    assert_error(post(stack, cartesia_headers(demo["api_key"]), json_body=body), 404, "not_found")
    body = good_body(demo)
    body["from_number_id"] = "ap_doesnotexist"
    assert_error(post(stack, cartesia_headers(demo["api_key"]), json_body=body), 404, "not_found")
    assert count_batches(stack) == before


def test_another_tenants_objects_are_404(stack, demo):
    other = stack.tenant(concurrency=4)
    body = good_body(demo)
    body["agent_id"] = other["agent_id"]   # exists, but not ours
    assert_error(post(stack, cartesia_headers(demo["api_key"]), json_body=body), 404)
    r = post(stack, cartesia_headers(other["api_key"]), json_body=good_body(other, 1))
    assert r.status_code == 201, r.text
    g = requests.get(f"{stack.api}{URL}/{r.json()['id']}", headers=cartesia_headers(demo["api_key"]),
                     timeout=10)
    assert_error(g, 404, "not_found")


def test_oversized_body_is_413(stack, demo):
    before = count_batches(stack)
    r = post(stack, cartesia_headers(demo["api_key"]), data="x" * (9 * 1024 * 1024))
    assert_error(r, 413)
    assert count_batches(stack) == before


def test_default_concurrency_is_half_the_tenant_limit(stack, demo):
    r = post(stack, cartesia_headers(demo["api_key"]), json_body=good_body(demo, 1))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["target_concurrency_limit"] == 10
    assert b["region"] == "US"
    assert b["retry_count"] == 0
    assert "recipients" not in b
