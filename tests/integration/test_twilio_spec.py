"""The checker of what we send Twilio (twilio_spec.py), tested on its own:
plain functions, no stack."""
import pytest

import twilio_spec as ts

STREAM_TWIML = ('<Response><Connect><Stream url="wss://agent.example.com/stream">'
                '<Parameter name="bc_call_id" value="ac_123"/>'
                '<Parameter name="bc_token" value="tok"/>'
                '<Parameter name="first_name" value="Zo&#235; &amp; co"/>'
                '</Stream></Connect></Response>')


@pytest.fixture(scope="module", autouse=True)
def spec():
    try:
        return ts.load_spec()
    except ts.SpecMissing as e:
        pytest.fail(str(e))


def stream_create(**kw):
    p = {"To": "+14155559876", "From": "+14155550100", "Twiml": STREAM_TWIML,
         "StatusCallback": "https://api.example.com/carrier/twilio/status?call=ac_123",
         "StatusCallbackMethod": "POST",
         "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
         "Timeout": "30", "TimeLimit": "3600", "MachineDetection": "Enable"}
    p.update(kw)
    return p


def test_a_stream_create_passes():
    assert ts.check_create(stream_create()) == []


def test_a_url_create_passes():
    p = stream_create(Url="https://agent.example.com/twiml?bc_call_id=ac_1&bc_token=t",
                      Method="GET")
    del p["Twiml"]
    assert ts.check_create(p) == []


def test_the_old_form_fails_on_url_twiml_application_sid():
    old = {"To": "+14155559876", "From": "+14155550100",
           "StatusCallback": "https://api.example.com/carrier/twilio/status",
           "StatusCallbackMethod": "POST",
           "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
           "Timeout": "30", "TimeLimit": "3600", "MachineDetection": "Enable"}
    errs = ts.check_create(old)
    assert len(errs) == 1, errs
    assert "Url" in errs[0] and "Twiml" in errs[0] and "ApplicationSid" in errs[0]


def test_two_of_url_twiml_application_sid_fail():
    errs = ts.check_create(stream_create(Url="https://agent.example.com/twiml"))
    assert any("exactly one of Url" in e for e in errs), errs


def test_an_unknown_field_fails():
    errs = ts.check_create(stream_create(AgentId="ag_1"))
    assert errs == [errs[0]] and errs[0].startswith("AgentId:"), errs


def test_a_non_integer_timeout_fails():
    errs = ts.check_create(stream_create(Timeout="abc"))
    assert any(e.startswith("Timeout:") and "integer" in e for e in errs), errs


def test_a_twiml_over_4000_characters_fails():
    pad = 4001 - len("<Response><Say></Say></Response>")
    tw = "<Response><Say>" + "a" * pad + "</Say></Response>"
    assert len(tw) == 4001
    errs = ts.check_create(stream_create(Twiml=tw))
    assert any("4000" in e for e in errs), errs
    at_limit = "<Response><Say>" + "a" * (pad - 1) + "</Say></Response>"
    assert ts.check_create(stream_create(Twiml=at_limit)) == []


def test_twiml_must_be_a_well_formed_response():
    assert any("well-formed" in e for e in
               ts.check_create(stream_create(Twiml="<Response><Connect>")))
    assert any("<Response>" in e for e in
               ts.check_create(stream_create(Twiml="<Reply/>")))


def test_schema_rules():
    # required, enum, boolean, pattern and length, uri, repeats
    errs = ts.check_create({"Twiml": "<Response/>"})
    assert "To: required but missing" in errs and "From: required but missing" in errs
    assert any(e.startswith("StatusCallbackMethod:")
               for e in ts.check_create(stream_create(StatusCallbackMethod="PUT")))
    assert any(e.startswith("Record:") for e in ts.check_create(stream_create(Record="yes")))
    assert ts.check_create(stream_create(Record="true")) == []
    assert any(e.startswith("Byoc:") for e in ts.check_create(stream_create(Byoc="BYnope")))
    assert any(e.startswith("StatusCallback:")
               for e in ts.check_create(stream_create(StatusCallback="/relative/path")))
    assert any("not an array" in e for e in ts.check_create(stream_create(Timeout=["30", "40"])))
    assert any(e.startswith("StatusCallbackEvent:")
               for e in ts.check_create(stream_create(StatusCallbackEvent=["initiated", "bogus"])))
    assert any(e.startswith("Timeout:") for e in ts.check_create(stream_create(Timeout="601")))


def test_update_status_completed_passes_and_bogus_fails():
    assert ts.check_update({"Status": "completed"}) == []
    assert ts.check_update({"Status": "canceled"}) == []
    errs = ts.check_update({"Status": "bogus"})
    assert len(errs) == 1 and errs[0].startswith("Status:"), errs
    assert ts.check_update({"Status": "completed", "To": "+1415"})[0].startswith("To:")


def test_parse_form_keeps_repeated_fields():
    p = ts.parse_form("To=%2B14155559876&StatusCallbackEvent=initiated&StatusCallbackEvent=answered")
    assert p == {"To": "+14155559876", "StatusCallbackEvent": ["initiated", "answered"]}
