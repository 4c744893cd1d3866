"""The route table: a path that is a route's under other methods answers 405
with an Allow header, in the body shape of the surface it belongs to (after
the key, as every answer of a surface); a path that is no route's stays 404
in that shape. Hole 6 of issue 16: TRACE on /v1/*, /batch-call and
/progress/* answered 404, and no 405 named the methods allowed."""
import pytest
import requests

from conftest import batchcall_headers, bearer, cartesia_headers


def allow(r):
    return {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}


def dict_error(body):
    return body["code"]


def batchcall_error(body):
    assert body["status"] == "error" and body["data"] is None
    assert body["message"] == body["error"]["details"]
    return body["error"]["code"]


def retell_error(body):
    assert body["status"] == "error" and set(body) == {"status", "message"}
    return None   # Retell's errors carry no code


# (surface, path of a route, its methods, headers for the tenant t, error shape)
ROUTES = [
    ("rymi", "/v1/calls", {"GET", "POST"}, lambda t: bearer(t["api_key"]), dict_error),
    ("rymi", "/v1/agents/agent_x", {"GET", "PUT", "DELETE"}, lambda t: bearer(t["api_key"]),
     dict_error),
    ("rymi outcomes", "/v1/calls/acb_x/summary", {"GET"}, lambda t: bearer(t["api_key"]),
     dict_error),
    ("agent routes", "/v1/calls/ac_x/context", {"GET"}, lambda t: {}, dict_error),
    ("cartesia", "/agents/calls/batches", {"GET", "POST"},
     lambda t: cartesia_headers(t["api_key"]), dict_error),
    ("cartesia", "/agents/calls/batches/acb_x/cancel", {"POST"},
     lambda t: cartesia_headers(t["api_key"]), dict_error),
    ("batch-call", "/batch-call", {"GET", "POST"}, batchcall_headers, batchcall_error),
    ("batch-call", "/batch-call/acb_x", {"GET"}, batchcall_headers, batchcall_error),
    ("retell", "/create-batch-call", {"POST"}, lambda t: bearer(t["api_key"]), retell_error),
    ("retell", "/get-batch-call/acb_x", {"GET"}, lambda t: bearer(t["api_key"]), retell_error),
    ("progress", "/progress/batches", {"GET"}, lambda t: bearer(t["api_key"]), dict_error),
    ("progress", "/progress/batches/acb_x", {"GET"}, lambda t: bearer(t["api_key"]),
     dict_error),
]


@pytest.fixture(scope="module")
def t(stack):
    return stack.tenant(concurrency=2)


@pytest.mark.parametrize("surface,path,methods,headers,shape", ROUTES,
                         ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_trace_on_a_route_is_405_naming_the_methods_allowed(stack, t, surface, path, methods,
                                                            headers, shape):
    r = requests.request("TRACE", stack.api + path, headers=headers(t), timeout=10)
    assert r.status_code == 405, (surface, path, r.status_code, r.text)
    assert allow(r) == methods, r.headers
    code = shape(r.json())
    assert code in ("method_not_allowed", None), r.text


def test_another_method_on_a_route_is_405_too(stack, t):
    r = requests.delete(stack.api + "/v1/calls", headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code == 405 and allow(r) == {"GET", "POST"}
    assert r.json()["code"] == "method_not_allowed"
    r = requests.get(stack.api + "/create-batch-call", headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code == 405 and allow(r) == {"POST"}


# (path of a literal route, its methods, a method it has not, headers, error shape):
# each path is also one a pattern of another method would take as an id.
LITERALS = [
    ("/v1/calls/batch", {"POST"}, "GET", lambda t: bearer(t["api_key"]), dict_error),
    ("/v1/dnc/check", {"POST"}, "DELETE", lambda t: bearer(t["api_key"]), dict_error),
    ("/agents/calls/batches/pause", {"POST"}, "GET", lambda t: cartesia_headers(t["api_key"]),
     dict_error),
    ("/batch-call/resume", {"POST"}, "OPTIONS", batchcall_headers, batchcall_error),
]


@pytest.mark.parametrize("path,methods,method,headers,shape", LITERALS,
                         ids=[f"{r[2]} {r[0]}" for r in LITERALS])
def test_a_literal_routes_path_is_its_alone(stack, t, path, methods, method, headers, shape):
    """GET /v1/calls/batch is not the call "batch" (a 404 of Get call): the
    path is Queue Batch's, so another method is a 405 naming POST, as the
    OpenAPI document has it (hole 6 of issue 16: schemathesis's OPTIONS
    found Allow naming GET there)."""
    r = requests.request(method, stack.api + path, headers=headers(t), timeout=10)
    assert r.status_code == 405, (path, r.status_code, r.text)
    assert allow(r) == methods, r.headers
    assert shape(r.json()) in ("method_not_allowed", None), r.text


def test_a_pattern_still_takes_every_other_segment(stack, t):
    r = requests.get(stack.api + "/v1/calls/acb_batch", headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    r = requests.delete(stack.api + "/v1/dnc/+14155550123", headers=bearer(t["api_key"]),
                        timeout=10)
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text


def test_the_key_is_checked_before_the_method(stack):
    """An unauthenticated caller learns nothing of a surface's routes."""
    for path in ("/v1/calls", "/batch-call", "/progress/batches", "/create-batch-call"):
        r = requests.request("TRACE", stack.api + path, timeout=10)
        assert r.status_code == 401 and "Allow" not in r.headers, (path, r.text)


def test_a_path_no_route_has_stays_404_in_the_surfaces_shape(stack, t):
    r = requests.get(stack.api + "/v1/nope", headers=bearer(t["api_key"]), timeout=10)
    assert r.status_code == 404 and r.json() == {"error": "No such route", "code": "not_found"}
    r = requests.get(stack.api + "/batch-call/acb_x/nope", headers=batchcall_headers(t),
                     timeout=10)
    assert r.status_code == 404 and batchcall_error(r.json()) == "not_found"
    r = requests.get(stack.api + "/progress/batches/acb_x/nope", headers=bearer(t["api_key"]),
                     timeout=10)
    assert r.status_code == 404 and r.json() == {"error": "no such route", "code": "not_found"}
    r = requests.get(stack.api + "/agents/calls/batches/acb_x/nope",
                     headers=cartesia_headers(t["api_key"]), timeout=10)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = requests.request("TRACE", stack.api + "/nowhere", timeout=10)
    assert r.status_code == 404 and r.json() == {"error": "not found", "code": "not_found"}
    assert "Allow" not in r.headers
