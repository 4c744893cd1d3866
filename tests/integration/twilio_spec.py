"""What we send the carrier, checked against Twilio's own contract.

Twilio publishes an OpenAPI description of its 2010 REST API (on npm, inside
@twilio/cli-core; deploy/local/install-deps.sh puts it in
.local/twilio/twilio_api_v2010.json). check_create() and check_update() take
the form fields of a call create (POST .../Calls.json) or update
(POST .../Calls/{Sid}.json), as the simulator or a test captured them, and
return every way they break that description, plus the rules Twilio
documents in prose that the schema cannot say. An empty list means valid.

params: {field: str or [str, ...]} (a list for a field sent more than once).
"""
import functools
import json
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.environ.get("BC_TWILIO_SPEC",
                           os.path.join(ROOT, ".local", "twilio", "twilio_api_v2010.json"))

CREATE_PATH = "/2010-04-01/Accounts/{AccountSid}/Calls.json"
UPDATE_PATH = "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"
FORM = "application/x-www-form-urlencoded"

TWIML_MAX = 4000    # characters; Twilio refuses a longer Twiml (error 21232)

# Values Twilio's reference lists in the fields' descriptions, where the
# schema itself only says "string".
DOCUMENTED_VALUES = {
    "StatusCallbackEvent": {"initiated", "ringing", "answered", "completed"},
    "MachineDetection": {"Enable", "DetectMessageEnd"},
    "RecordingChannels": {"mono", "dual"},
    "RecordingTrack": {"inbound", "outbound", "both"},
    "Trim": {"trim-silence", "do-not-trim"},
    "AsyncAmd": {"true", "false"},
}
DOCUMENTED_RANGES = {"Timeout": (0, 600)}   # "the maximum is 600 seconds"


class SpecMissing(RuntimeError):
    pass


@functools.lru_cache(maxsize=None)
def load_spec(path=SPEC_PATH):
    if not os.path.exists(path):
        raise SpecMissing(f"{path} is missing: deploy/local/install-deps.sh fetches it")
    with open(path) as f:
        return json.load(f)


def resolve(schema, spec=None):
    """Follows local $refs (#/components/schemas/...) to the schema itself."""
    spec = spec or load_spec()
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"not a local $ref: {ref}")
        node = spec
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
        seen += 1
        if seen > 32:
            raise ValueError(f"$ref loop at {ref}")
    return schema


def form_schema(path, method="post"):
    spec = load_spec()
    op = spec["paths"][path][method]
    return resolve(op["requestBody"]["content"][FORM]["schema"], spec)


def _is_absolute_url(v):
    if any(c.isspace() for c in v):
        return False
    u = urllib.parse.urlsplit(v)
    return u.scheme in ("http", "https") and bool(u.hostname)


def check_value(name, schema, value):
    """Errors for one form value (always a string on the wire)."""
    schema = resolve(schema)
    errs = []
    t = schema.get("type", "string")
    if t == "integer":
        if not re.fullmatch(r"[+-]?[0-9]+", value):
            return [f"{name}: {value!r} is not an integer"]
        n = int(value)
        if "minimum" in schema and n < schema["minimum"]:
            errs.append(f"{name}: {n} is below the minimum {schema['minimum']}")
        if "maximum" in schema and n > schema["maximum"]:
            errs.append(f"{name}: {n} is above the maximum {schema['maximum']}")
        if schema.get("format") == "int32" and not -2**31 <= n < 2**31:
            errs.append(f"{name}: {n} does not fit int32")
    elif t == "number":
        try:
            float(value)
        except ValueError:
            return [f"{name}: {value!r} is not a number"]
    elif t == "boolean":
        if value.lower() not in ("true", "false"):
            return [f"{name}: {value!r} is not a boolean (true or false)"]
    elif t == "string":
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append(f"{name}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append(f"{name}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{name}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "uri" and not _is_absolute_url(value):
            errs.append(f"{name}: {value!r} is not an absolute http(s) URL")
    else:
        errs.append(f"{name}: a form field cannot carry a value of type {t}")
    if "enum" in schema and value not in [str(e) for e in schema["enum"]]:
        errs.append(f"{name}: {value!r} is not one of {schema['enum']}")
    return errs


def check_form(params, schema):
    """Errors for a whole form against an object schema."""
    props = schema.get("properties", {})
    errs = []
    for name, value in params.items():
        if name not in props:
            errs.append(f"{name}: not a field of {schema.get('title', 'this request')}")
            continue
        ps = resolve(props[name])
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values:
            errs.append(f"{name}: sent with no value")
            continue
        if any(not isinstance(v, str) for v in values):
            errs.append(f"{name}: form values are strings, got {value!r}")
            continue
        if ps.get("type") == "array":
            item = ps.get("items", {"type": "string"})
            for v in values:
                errs += check_value(name, item, v)
        else:
            if len(values) > 1:
                errs.append(f"{name}: sent {len(values)} times but it is not an array field")
            errs += check_value(name, ps, values[0])
        allowed = DOCUMENTED_VALUES.get(name)
        if allowed:
            errs += [f"{name}: {v!r} is not one of {sorted(allowed)} (Twilio's documented values)"
                     for v in values if v not in allowed]
        rng = DOCUMENTED_RANGES.get(name)
        if rng and re.fullmatch(r"[+-]?[0-9]+", values[0]) and not rng[0] <= int(values[0]) <= rng[1]:
            errs.append(f"{name}: {values[0]} is outside {rng[0]}..{rng[1]} (Twilio's documented range)")
    for name in schema.get("required", []):
        if name not in params:
            errs.append(f"{name}: required but missing")
    return errs


def check_twiml(twiml):
    """Twilio's prose rules for the Twiml field."""
    errs = []
    if len(twiml) > TWIML_MAX:
        errs.append(f"Twiml: {len(twiml)} characters, more than Twilio's {TWIML_MAX}")
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as e:
        return errs + [f"Twiml: not well-formed XML ({e})"]
    if root.tag != "Response":
        errs.append(f"Twiml: the root element is <{root.tag}>, not <Response>")
    return errs


def _single(params, name):
    v = params.get(name)
    if isinstance(v, (list, tuple)):
        return v[0] if v else None
    return v


def check_create(params):
    """POST /2010-04-01/Accounts/{AccountSid}/Calls.json"""
    errs = check_form(params, form_schema(CREATE_PATH))
    given = [f for f in ("Url", "Twiml", "ApplicationSid") if f in params]
    if len(given) != 1:
        errs.append("a create carries exactly one of Url, Twiml or ApplicationSid "
                    f"(Twilio's rule), got {given or 'none'}")
    tw = _single(params, "Twiml")
    if isinstance(tw, str):
        errs += check_twiml(tw)
    return errs


def check_update(params):
    """POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json"""
    errs = check_form(params, form_schema(UPDATE_PATH))
    tw = _single(params, "Twiml")
    if isinstance(tw, str):
        errs += check_twiml(tw)
    return errs


def parse_form(body):
    """A captured application/x-www-form-urlencoded body as check_* takes it."""
    if isinstance(body, bytes):
        body = body.decode()
    out = {}
    for k, v in urllib.parse.parse_qsl(body, keep_blank_values=True):
        if k in out:
            out[k] = (out[k] if isinstance(out[k], list) else [out[k]]) + [v]
        else:
            out[k] = v
    return out
