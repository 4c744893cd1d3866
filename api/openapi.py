"""Writes api/openapi.json, the one OpenAPI document of all three surfaces.
Run: python3 api/openapi.py > api/openapi.json (a test checks they agree)."""
import json

def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def obj(props, req=(), extra=True):
    o = {"type": "object", "properties": props}
    if req: o["required"] = list(req)
    if not extra: o["additionalProperties"] = False
    return o
S = {"type": "string"}
SN = {"type": "string", "nullable": True}
I = {"type": "integer"}
IN = {"type": "integer", "nullable": True}
B = {"type": "boolean"}
ANYOBJ = {"type": "object", "additionalProperties": True}
ANYOBJN = {"type": "object", "additionalProperties": True, "nullable": True}
E164 = {"type": "string", "pattern": r"^\+[1-9][0-9]{7,14}$", "example": "+14155559876"}
HOURS = {"type": "object", "description": "batchcall extension: calling hours in the batch's timezone; "
                                          "start and end differ (400)",
         "properties": {"start": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                        "end": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                        "days": {"type": "array", "minItems": 1, "maxItems": 7,
                                 "items": {"type": "integer", "minimum": 1, "maximum": 7}}},
         "required": ["start", "end"]}
# An IANA zone's name as the server reads it (bc_recipient_timezone); that the
# zone exists is checked against the database (400).
def TZNAME(desc, example="America/New_York"):
    return {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9/_+-]+$",
            "description": desc + "; one PostgreSQL knows (400)", "example": example}
TZ = TZNAME("IANA time zone (default UTC)")
RTZ = TZNAME("batchcall extension: this recipient's IANA time zone; calling hours apply in it",
             "Asia/Tokyo")
POOL = {"type": "object", "description": "batchcall extension: dial in turn from several of the "
        "tenant's numbers, each within its own caps",
        "properties": {"numbers": {"type": "array", "minItems": 1, "maxItems": 50, "uniqueItems": True,
                                   "items": {"type": "string", "minLength": 1, "maxLength": 64},
                                   "description": "phone number ids or E.164 numbers of the tenant"},
                       "calls_per_second": {"type": "integer", "minimum": 1, "maximum": 1000},
                       "max_concurrent_per_number": {"type": "integer", "minimum": 1, "maximum": 100000}},
        "required": ["numbers"]}
WAIT = {"type": "integer", "description": "batchcall extension: recipients deferred until their calling hours open"}
# batchcall extension: why a batch is not dialing (absent when nothing holds it).
WAITING_FOR = {"type": "string", "enum": ["concurrency", "region"],
               "description": "batchcall extension: why the batch is not dialing: its tenant's slots are "
                              "reserved by other batches, or its region has no live worker"}
# batchcall extension on Rymi and batch-call: the batch's concurrency, as Cartesia names it.
TCL = {"target_concurrency_limit": {"type": "integer", "minimum": 1, "maximum": 100000,
       "description": "batchcall extension: calls of this batch live at once, at most the tenant's "
                      "limit (default half of it); the batch reserves min(this, recipients left)"}}
# batchcall extension: retry policies (docs/api.md, "Retry policies"), on a
# batch and, as overrides, on each recipient.
OUTCOME = {"type": "string", "enum": ["busy", "no_answer", "failed", "voicemail"]}
RETRY = {
    "max_retries": {"type": "integer", "minimum": 0, "maximum": 10,
                    "description": "batchcall extension: automatic retries after the first attempt (default 0)"},
    "retry_on": {"type": "array", "items": OUTCOME,
                 "description": "batchcall extension: outcomes retried (default busy, no_answer, failed); "
                                "repeats count once"},
    "retry_intervals_s": {"type": "array", "minItems": 1, "maxItems": 10,
                          "items": {"type": "integer", "minimum": 1, "maximum": 86400},
                          "description": "batchcall extension: seconds before retry 1, 2, ...; the last repeats; not with retry_backoff (400)"},
    "retry_backoff": {"type": "object", "additionalProperties": False, "required": ["base_s"],
                      "description": "batchcall extension: wait before retry k = min(max_s, base_s * factor^(k-1)); "
                                     "max_s at least base_s; give retry_intervals_s or retry_backoff, not both (400)",
                      "properties": {"base_s": {"type": "integer", "minimum": 1, "maximum": 86400},
                                     "factor": {"type": "number", "minimum": 1, "maximum": 10},
                                     "max_s": {"type": "integer", "minimum": 1, "maximum": 86400}}},
}
ATTEMPTS = {"attempts": {"type": "integer", "description": "batchcall extension: calls placed so far"}}

EXPIRY = {"latest_at": {"type": "string", "format": "date-time",
                        "description": "batchcall extension: recipients not dialed by then end as expired; "
                                       "ahead of now and of scheduled_at; not with ttl (400)"},
          "ttl": {"type": "integer", "minimum": 1, "maximum": 2592000,
                  "description": "batchcall extension: latest_at as seconds after the batch's start; "
                                 "not with latest_at (400)"}}
EXPIRY_MS = {**EXPIRY, "latest_timestamp": {"type": "number", "minimum": 1,
                                             "description": "batchcall extension: latest_at in Unix ms; "
                                                            "at most one of latest_at, latest_timestamp and ttl (400)"}}
# The rules across fields the server checks (each a 400), on every schema
# that has both sides: one retry schedule, one expiry.
EXCLUSIVE = (("retry_intervals_s", "retry_backoff"), ("latest_at", "ttl"),
             ("latest_at", "latest_timestamp"), ("latest_timestamp", "ttl"), ("to", "recipients"))

def exclusive(schema):
    props = schema.get("properties", {})
    pairs = [{"required": list(p)} for p in EXCLUSIVE if p[0] in props and p[1] in props]
    if pairs:
        schema["not"] = {"anyOf": pairs}
    return schema
EXPIRED = {"type": "integer", "description": "batchcall extension: recipients that expired undialed"}
BLOCKED = {"type": "object", "additionalProperties": {"type": "integer"},
           "description": "batchcall extension: recipients the tenant's policy stopped undialed, by reason "
                          "(dnc_blocked: the number is on the tenant's do-not-call list, Rymi calls it dnc_listed; "
                          "outside_legal_hours: the tenant's legal calling hours held it until the batch expired; "
                          "insufficient_credits: its batch was paused for credits until it expired)"}
# A URL the server fetches or posts to: http(s), a host written out (no user or
# password), the characters RFC 3986 allows, one fragment (bc_url_check).
URICHAR = r"([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})"
HOSTPART = r"://[A-Za-z0-9._-]+(:[1-9][0-9]{0,3})?([/?]" + URICHAR + "*)?(#" + URICHAR + "*)?"
def url(schemes):
    return {"type": "string", "format": "uri", "maxLength": 2048, "pattern": "^" + schemes + HOSTPART + "$"}
AGENT_IN = {"name": {"type": "string", "minLength": 1, "maxLength": 255},
            "region": {"type": "string", "enum": ["us", "eu", "apac"]},
            "endpoint": {"type": "string", "maxLength": 1024, "pattern": "^((wss|https?)" + HOSTPART +
                         r"|sips?:[^\x00-\x20\x7f?<>@]+@[^\x00-\x20\x7f?<>]+)$",
                         "description": "batchcall extension: how the agent's calls reach it: a Media "
                         "Streams WebSocket (wss://), a URL that answers with TwiML (https://) or a SIP "
                         "URI (sip:); a batch for an agent without one is refused (docs/agents.md)",
                         "example": "wss://agent.example.com/stream"},
            "record": {"type": "boolean", "description": "batchcall extension: record this agent's calls"}}
WEBHOOK_IN = {"url": {**url("https?"),
                      "description": "https (http only where BC_WEBHOOK_REQUIRE_HTTPS is off); no user or password; not a loopback, private or link-local address (unless BC_WEBHOOK_ALLOW_PRIVATE)"},
              "enabled": B, "events": {"type": "array", "minItems": 1, "maxItems": 16,
                  "items": {"type": "string", "enum": ["call.completed", "call.failed", "batch.completed",
                                                         "call.report", "call.recording", "batch.paused"]}}}
# An agent's transcript as it posted it: a list of turns or a text; null without a report.
TRANSCRIPT = {"nullable": True, "description": "a list of {role, text, at?} turns, or a text, as the agent posted it"}

def jresp(desc, schema): return {"description": desc, "content": {"application/json": {"schema": schema}}}

NAMES = {400: "Invalid request", 401: "Missing or invalid API key", 402: "Insufficient credits",
             403: "Not allowed for this key", 404: "Not found", 405: "Method not allowed",
             409: "Conflict with the resource's state", 413: "Body too large",
             422: "Number or agent not found under this key",
             429: "Rate limit exceeded (see Retry-After)", 500: "Internal error", 503: "Unavailable; retry"}
PAUSE_REASON = {"type": "string", "enum": ["insufficient_credits"],
                "description": "batchcall extension: why the batch paused itself (while it is paused "
                               "for that reason); it resumes when its tenant can pay a call again "
                               "(docs/api.md, Credits)"}
ERRSCH = {"cartesia": "CartesiaError", "rymi": "RymiError", "batchcall": "BatchCallError",
          "retell": "RetellError"}
RESPONSES = {f"{s}{c}": jresp(NAMES[c], ref(ERRSCH[s])) for s in ERRSCH for c in NAMES}

def errs(surface, codes):
    return {str(c): {"$ref": f"#/components/responses/{surface}{c}"} for c in codes}

COMMON = [400, 401, 403, 404, 405, 429, 500, 503]
CREATE = COMMON + [402, 409, 413]

VM_MESSAGE = {"type": "string", "enum": ["message"]}
VOICEMAIL = {"type": "object", "nullable": True,
             "description": "batchcall extension: what to do when a machine answers (docs/agents.md): "
             "hang up, leave a message (text or audio_url, once, after the beep), or let the agent handle it",
             "oneOf": [obj({"action": {"type": "string", "enum": ["hangup", "agent"]}}, ["action"], extra=False),
                       obj({"action": VM_MESSAGE, "text": {"type": "string", "minLength": 1, "maxLength": 1000}},
                           ["action", "text"], extra=False),
                       obj({"action": VM_MESSAGE, "audio_url": url("https")}, ["action", "audio_url"], extra=False)]}
AGENTLEG = {"voicemail": VOICEMAIL,
            "record": {"type": "boolean", "description": "batchcall extension: record the calls "
                       "(default: the agent's setting)"}}

schemas = {
  "CartesiaError": obj({"error": S, "code": S}, ["error"]),
  "RymiError": obj({"error": S, "code": S, "detail": S}, ["error"]),
  "BatchCallError": obj({"message": S, "status": {"type": "string", "enum": ["error"]},
                          "error": obj({"code": S, "details": S}), "data": {"nullable": True}},
                         ["message", "status", "error", "data"]),
  "RetellError": obj({"status": {"type": "string", "enum": ["error"]}, "message": S},
                     ["status", "message"]),
  "RetellTimeWindow": obj({"start": {"type": "number", "minimum": 0, "maximum": 1440},
                           "end": {"type": "number", "minimum": 0, "maximum": 1440}}, ["start", "end"]),
  "RetellCallTimeWindow": obj({
      "windows": {"type": "array", "minItems": 1, "items": ref("RetellTimeWindow"),
                  "description": "[start, end) in minutes since local midnight; batchcall takes one "
                                 "window per batch (shows a window across midnight as two)"},
      "timezone": {"type": "string", "description": "IANA time zone (default America/Los_Angeles)"},
      "day": {"type": "array", "items": {"type": "string", "enum": ["Monday", "Tuesday", "Wednesday",
              "Thursday", "Friday", "Saturday", "Sunday"]}}}, ["windows"]),
  # What a create takes: one window of whole minutes, start before end (a
  # rule JSON Schema cannot state; 400), and a zone name.
  "RetellCallTimeWindowIn": obj({
      "windows": {"type": "array", "minItems": 1, "maxItems": 1, "items": obj(
                      {"start": {"type": "number", "minimum": 0, "maximum": 1439, "multipleOf": 1},
                       "end": {"type": "number", "minimum": 1, "maximum": 1440, "multipleOf": 1}},
                      ["start", "end"]),
                  "description": "[start, end) in whole minutes since local midnight, start before end; "
                                 "batchcall takes one window per batch"},
      "timezone": TZNAME("IANA time zone (default America/Los_Angeles)"),
      "day": {"type": "array", "items": {"type": "string", "enum": ["Monday", "Tuesday", "Wednesday",
              "Thursday", "Friday", "Saturday", "Sunday"]}}}, ["windows"]),
  "RetellBatchCallTask": obj({
      "to_number": E164, "ignore_e164_validation": B,
      "override_agent_id": {"type": "string", "minLength": 1, "maxLength": 64,
                            "description": "one agent per batch: on every task or none, the same on each "
                                           "and as agent_id (400)"},
      "override_agent_version": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]},
      "agent_override": {**ANYOBJ, "description": "accepted; not applied (docs/retell.md)"},
      "retell_llm_dynamic_variables": {"type": "object", "additionalProperties": {"type": "string"}},
      "metadata": ANYOBJ,
      "custom_sip_headers": {"type": "object", "additionalProperties": {"type": "string"},
                             "description": "accepted; not sent (docs/retell.md)"}}, ["to_number"]),
  "RetellBatchCallRequest": obj({
      "from_number": E164, "name": {"type": "string", "maxLength": 255},
      "tasks": {"type": "array", "minItems": 1, "maxItems": 5000, "items": ref("RetellBatchCallTask")},
      "trigger_timestamp": {"type": "number", "minimum": 0,
                            "description": "Unix milliseconds; ahead of now, within 30 days (400)"},
      "reserved_concurrency": {"type": "integer", "minimum": 0, "maximum": 100000,
                               "description": "less than the account's concurrency limit (400)"},
      "call_time_window": ref("RetellCallTimeWindowIn"),
      "agent_id": {"type": "string", "minLength": 1, "maxLength": 64,
                   "description": "batchcall extension: the agent, when the number is bound to none"},
      **EXPIRY_MS, **AGENTLEG},
      ["from_number", "tasks"]),
  "RetellBatchCall": obj({
      "batch_call_id": S, "name": S, "from_number": S,
      "scheduled_timestamp": {"type": "number", "description": "Unix milliseconds"},
      "total_task_count": {"type": "number"}, "call_time_window": ref("RetellCallTimeWindow"),
      "status": {"type": "string", "description": "batchcall extension", "enum": [
          "draft", "scheduled", "pending", "in_progress", "paused", "completed", "cancelled"]},
      "paused_timestamp": I, "tenant_paused_timestamp": I, "latest_timestamp": I, "expired": EXPIRED,
      "pause_reason": PAUSE_REASON,
      "blocked": BLOCKED,
      "created_timestamp": I, "sent": I, "completed": I, "failed": I, "cancelled": I, "queued": I,
      "live": I, "waiting_for_window": I, "waiting_for": WAITING_FOR},
      ["batch_call_id", "name", "from_number", "scheduled_timestamp", "total_task_count"]),
  "AgentOutboundCallItem": obj({"to_number": E164, "metadata": ANYOBJN,
      "from_number": {**E164, "description": "batchcall extension: this recipient's caller ID"},
      "dynamic_variables": {**ANYOBJN, "description": "batchcall extension: variables for the agent"},
      "timezone": RTZ, **RETRY},
      ["to_number"]),
  "AgentCallBatchRequest": obj({
      "name": {"type": "string", "minLength": 1, "maxLength": 255},
      "agent_id": {"type": "string", "minLength": 1, "maxLength": 64},
      "from_number_id": {"type": "string", "minLength": 1, "maxLength": 64},
      "recipients": {"type": "array", "minItems": 1, "maxItems": 5000, "items": ref("AgentOutboundCallItem")},
      "target_concurrency_limit": {"type": "integer", "minimum": 1, "maximum": 100000,
                                   "description": "at most the organization's limit (400)"},
      "ringing_timeout_seconds": {"type": "integer", "minimum": 5, "maximum": 80},
      "max_call_duration_minutes": {"type": "integer", "minimum": 1, "maximum": 480},
      "scheduled_at": {"type": "string", "format": "date-time",
                       "description": "ahead of now, within 30 days (400)"},
      "region": {"type": "string", "enum": ["US", "EU", "APAC"], "description": "batchcall extension"},
      "timezone": TZ, "calling_hours": HOURS, "caller_id_pool": POOL, **RETRY, **EXPIRY, **AGENTLEG},
      ["name", "agent_id", "from_number_id", "recipients"]),
  "AgentCallBatchRecipient": obj({
      "id": S, "to_number": S,
      "status": {"type": "string", "enum": ["queued", "dispatched", "started", "completed", "failed", "cancelled",
                                            "expired"],
                 "description": "expired (batchcall extension): not dialed by the batch's latest_at"},
      "agent_call_id": S,
      "end_reason": {"type": "string", "enum": ["agent_hangup", "client_hangup", "api_cancelled",
          "max_duration", "inactivity", "client_disconnected", "dial_busy", "dial_failed",
          "dial_no_answer", "error", "voicemail", "expired", "dnc_blocked", "outside_legal_hours",
          "insufficient_credits"],
          "description": "voicemail (batchcall extension): an answering machine took the call; "
                         "expired (batchcall extension): not dialed by the batch's latest_at; "
                         "dnc_blocked (batchcall extension): not dialed, the number is on the tenant's "
                         "do-not-call list (status failed; error_message says so); "
                         "outside_legal_hours, insufficient_credits (batchcall extensions): not dialed, "
                         "the tenant's legal calling hours, or its batch's pause for credits, held it until "
                         "the batch expired (status failed; error_message says so)"},
      "error_message": S, "metadata": ANYOBJN, "created_at": {"type": "string", "format": "date-time"},
      "from_number": {"type": "string", "description": "batchcall extension: the recipient's own caller ID"},
      **ATTEMPTS, **RETRY},
      ["id", "to_number", "status", "created_at"]),
  "AgentCallBatch": obj({
      "id": S, "name": S, "agent_id": S, "from_number_id": SN,
      "region": {"type": "string", "enum": ["US", "EU", "APAC"]},
      "target_concurrency_limit": I,
      "status": {"type": "string", "enum": ["pending", "in_progress", "completed", "failed", "cancelled",
                                            "paused"],
                 "description": "paused (extension): held by a pause, with recipients waiting"},
      "paused_at": {"type": "string", "format": "date-time", "description": "batchcall extension: when the batch was paused (while it is)"},
      "tenant_paused_at": {"type": "string", "format": "date-time", "description": "batchcall extension: when its whole tenant was paused (while it is)"},
      "pause_reason": PAUSE_REASON,
      "total_calls_scheduled": I, "total_calls_dispatched": I, "total_calls_finished": I,
      "total_calls_waiting_for_window": WAIT, "waiting_for": WAITING_FOR,
      "latest_at": {"type": "string", "format": "date-time", "description": "batchcall extension"},
      "total_calls_expired": EXPIRED,
      "total_calls_blocked": {"type": "integer", "description": "batchcall extension: recipients the tenant's "
                              "policy stopped undialed (their end_reason says why: dnc_blocked, outside_legal_hours "
                              "or insufficient_credits)"},
      "retry_count": I, "created_at": {"type": "string", "format": "date-time"},
      "last_updated_at": {"type": "string", "format": "date-time"},
      "scheduled_at": {"type": "string", "format": "date-time"},
      "admitted_at": {"type": "string", "format": "date-time"},
      "recipients": {"type": "array", "items": ref("AgentCallBatchRecipient")}, **RETRY},
      ["id", "name", "agent_id", "from_number_id", "region", "target_concurrency_limit", "status",
       "total_calls_scheduled", "total_calls_dispatched", "total_calls_finished", "retry_count",
       "created_at", "last_updated_at"]),
  "AgentCallBatchList": obj({"data": {"type": "array", "items": ref("AgentCallBatch")}, "has_more": B},
                            ["data", "has_more"]),
  "TenantPause": obj({"paused": B, "paused_at": SN,
                      "batches": {"type": "integer", "description": "batches this call paused or resumed"}},
                     ["paused", "paused_at", "batches"]),
  "ProgressTenant": obj({"live_calls": I, "concurrency_limit": I}, ["live_calls", "concurrency_limit"]),
  "BatchProgress": obj({
      "id": S, "name": S, "agent_id": S, "region": S,
      "status": {"type": "string", "enum": ["draft", "scheduled", "pending", "in_progress", "paused",
                                            "completed", "failed", "cancelled"]},
      "done": B, "total": I, "target_concurrency_limit": I,
      "counts": obj({"queued": I, "live": I, "completed": I, "failed": I, "cancelled": I, "expired": I},
                    ["queued", "live", "completed", "failed", "cancelled"]),
      "outcomes": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "recipients that ended, by end_reason"},
      "rate_per_min": {"type": "number", "description": "recipients ended per minute, last 60 s"},
      "eta_seconds": IN, "retry_count": I,
      "created_at": S, "scheduled_at": SN, "admitted_at": SN, "updated_at": S,
      "tenant": ref("ProgressTenant")},
      ["id", "status", "done", "total", "target_concurrency_limit", "counts", "outcomes",
       "rate_per_min", "eta_seconds"]),
  "BatchProgressList": obj({"data": {"type": "array", "items": ref("BatchProgress")}, "has_more": B,
                            "tenant": ref("ProgressTenant")}, ["data", "has_more", "tenant"]),
  "RymiRecipient": {**obj({"to": E164, "identity": E164, "from_number": E164, "metadata": ANYOBJ,
                           "timezone": RTZ, **RETRY}),
                    "description": "to, or identity as Rymi's participants name it (to wins)",
                    "anyOf": [{"required": ["to"]}, {"required": ["identity"]}]},
  "RymiBatchRequest": {**obj({
      "agent_id": {"type": "string", "minLength": 1, "maxLength": 64},
      "to": {"type": "array", "items": E164, "minItems": 1, "maxItems": 500},
      "recipients": {"type": "array", "items": ref("RymiRecipient"), "minItems": 1, "maxItems": 500},
      "from_number": E164, "batch_id": {"type": "string", "maxLength": 128},
      "metadata": ANYOBJ, "variables": ANYOBJ, "post_call": ANYOBJ, "timezone": TZ,
      "calling_hours": HOURS, "caller_id_pool": POOL, **TCL, **RETRY, **EXPIRY, **AGENTLEG}, ["agent_id"]),
      "description": "to (numbers) or recipients (objects), one of them",
      "anyOf": [{"required": ["to"]}, {"required": ["recipients"]}]},
  "RymiParticipantIn": obj({"transport": {"type": "string", "enum": ["pstn"]}, "identity": E164,
                            "from_number": E164, "metadata": ANYOBJ, **RETRY}, ["identity"]),
  "RymiCallRequest": obj({"agent_id": {"type": "string", "minLength": 1, "maxLength": 64},
                          "participants": {"type": "array", "items": ref("RymiParticipantIn"),
                                           "minItems": 1, "maxItems": 500},
                          "from_number": E164, "metadata": ANYOBJ, "variables": ANYOBJ, **TCL,
                          **RETRY, **EXPIRY, **AGENTLEG},
                         ["agent_id", "participants"]),
  "RymiParticipant": obj({"id": S, "transport": S, "identity": S,
      "status": {"type": "string", "enum": ["queued", "dialing", "in_progress", "completed", "failed",
                                            "expired"]},
      "telephony_leg_id": S, "job_id": S, "call_id": SN, "end_reason": SN, "metadata": ANYOBJN,
      "from_number": SN, **ATTEMPTS, **RETRY}, ["id", "transport", "identity", "status"]),
  "RymiCall": obj({"id": S, "room_name": S,
      "status": {"type": "string", "enum": ["queued", "in_progress", "completed", "failed", "paused"],
                 "description": "paused (extension): held by a pause, with participants waiting"},
      "paused_at": SN, "tenant_paused_at": SN, "latest_at": SN, "expired": EXPIRED, "blocked": BLOCKED,
      "pause_reason": PAUSE_REASON, "batch_id": S, "agent_id": S, "from_number": SN, "queued": I,
      "total": I, "waiting_for_window": WAIT, "waiting_for": WAITING_FOR,
      "metadata": ANYOBJN, "variables": ANYOBJN, "post_call": ANYOBJN, "created_at": S, "updated_at": S,
      "participants": {"type": "array", "items": ref("RymiParticipant")}, **RETRY},
      ["id", "room_name", "status", "batch_id", "queued"]),
  "RymiCallList": obj({"calls": {"type": "array", "items": ref("RymiCall")}, "total": I, "limit": I,
                       "offset": I, "next_cursor": SN}, ["calls", "total"]),
  "RymiEvents": obj({"call_id": S, "events": {"type": "array", "items": obj(
      {"participant_id": S, "leg_id": S, "status": S, "at": S})}}, ["events"]),
  "QueueStats": obj({"waiting": I, "active": I, "completed": I, "failed": I,
                     "paused": {"type": "boolean", "description": "batchcall extension: the queue is paused"},
                     "paused_at": SN, "expired": EXPIRED},
                    ["waiting", "active", "completed", "failed"]),
  "Agent": obj({"id": S, "name": S, "region": SN, "endpoint": SN, "record": B,
                "endpoint_kind": {"type": "string", "enum": ["stream", "twiml", "sip"], "nullable": True},
                "config": ANYOBJN, "created_at": S, "updated_at": S},
               ["id", "name"]),
  "AgentIn": obj(AGENT_IN),
  "AgentCreate": obj(AGENT_IN, ["name"]),
  "AgentContext": obj({"call_id": S, "batch_id": S, "tenant_id": S, "agent_id": S, "recipient_id": S,
                       "to": S, "from": S, "attempt": I, "status": S, "answered_by": SN, "batch_name": S,
                       "variables": ANYOBJ, "metadata": ANYOBJN, "post_call": ANYOBJN},
                      ["call_id", "batch_id", "tenant_id", "agent_id", "to", "from", "attempt", "variables"]),
  "AgentReportIn": obj({
      "transcript": {"description": "The conversation: a list of turns, or its text",
                     "oneOf": [{"type": "string"},
                               {"type": "array", "maxItems": 5000, "items": obj(
                                   {"role": {"type": "string", "enum": ["agent", "user"]}, "text": S,
                                    "at": {"description": "RFC 3339 time or seconds into the call",
                                           "oneOf": [{"type": "string", "maxLength": 64},
                                                     {"type": "number", "minimum": 0}]}},
                                   ["role", "text"], extra=False)}]},
      "summary": S,
      "disposition": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"},
      "data": ANYOBJ}, extra=False),
  "AgentReport": obj({"call_id": S, "transcript": TRANSCRIPT, "summary": SN, "disposition": SN,
                      "data": ANYOBJN, "reported_at": SN},
                     ["call_id", "transcript", "summary", "disposition", "data", "reported_at"]),
  "RymiSummary": obj({"call_id": S, "summary": SN, "disposition": SN, "data": ANYOBJN,
      "participants": {"type": "array", "items": obj(
          {"participant_id": S, "leg_id": S, "attempt": I, "summary": SN, "disposition": SN,
           "data": ANYOBJN, "reported_at": SN},
          ["participant_id", "leg_id", "summary", "disposition", "data", "reported_at"])}},
      ["call_id", "summary", "disposition", "data", "participants"]),
  "RymiTranscript": obj({"call_id": S, "transcript": TRANSCRIPT,
      "participants": {"type": "array", "items": obj(
          {"participant_id": S, "leg_id": S, "attempt": I, "transcript": TRANSCRIPT, "reported_at": SN},
          ["participant_id", "leg_id", "transcript", "reported_at"])}},
      ["call_id", "transcript", "participants"]),
  "RymiRecording": obj({"call_id": S, "recording_url": SN, "duration_s": IN,
      "recordings": {"type": "array", "items": obj(
          {"participant_id": S, "leg_id": S, "attempt": I, "recording_sid": SN, "recording_url": SN,
           "duration_s": IN}, ["participant_id", "leg_id", "recording_url"])}},
      ["call_id", "recording_url", "recordings"]),
  "AgentCall": obj({"id": S, "agent_id": SN, "batch_id": S, "recipient_id": S, "attempt": I,
      "status": {"type": "string", "enum": ["queued", "ringing", "in_progress", "completed", "failed", "cancelled"]},
      "telephony_params": obj({"to": S, "from": S}, ["to", "from"]),
      "start_time": SN, "answered_at": SN, "end_time": SN, "end_reason": SN, "answered_by": SN,
      "duration_s": IN, "transcript": TRANSCRIPT, "summary": SN, "disposition": SN, "data": ANYOBJN,
      "reported_at": SN, "recording_url": SN, "recording_duration_s": IN},
      ["id", "status", "telephony_params", "transcript", "summary"]),
  "AgentList": obj({"agents": {"type": "array", "items": ref("Agent")}, "total": I, "limit": I, "offset": I},
                   ["agents", "total", "limit", "offset"]),
  "Number": obj({"id": S, "number": S, "provider": S, "agent_id": SN, "is_default": B, "created_at": S},
                ["id", "number"]),
  "NumberIn": obj({"number": E164, "provider": {"type": "string", "enum": ["twilio", "plivo", "vonage"]},
                   "agent_id": S}, ["number"]),
  "NumberList": obj({"numbers": {"type": "array", "items": ref("Number")}, "total": I, "limit": I, "offset": I},
                    ["numbers"]),
  "Deleted": obj({"deleted": B}, ["deleted"]),
  "DncEntry": obj({"number": S, "reason": SN, "created_at": SN, "blocked": B}, ["number"]),
  "DncList": obj({"dnc": {"type": "array", "items": ref("DncEntry")}, "total": I, "limit": I, "offset": I},
                 ["dnc"]),
  "DncCheck": obj({"number": S, "blocked": B, "results": {"type": "array", "items": obj({"number": S, "blocked": B})}}),
  "Webhook": obj({"id": S, "url": S, "events": {"type": "array", "items": S}, "enabled": B,
                  "secret": S, "created_at": S, "updated_at": S}, ["id", "url", "events", "enabled"]),
  "WebhookIn": obj(WEBHOOK_IN),
  "WebhookCreate": obj(WEBHOOK_IN, ["url", "events"]),
  "WebhookDelivery": obj({"id": S, "event_id": S, "event_type": S,
      "status": {"type": "string", "enum": ["pending", "delivered", "dead"]},
      "attempts": I, "next_attempt_at": SN, "last_status_code": IN, "last_error": SN,
      "created_at": S, "delivered_at": SN, "payload": ANYOBJN},
      ["id", "event_id", "event_type", "status", "attempts"]),
  "WebhookDeliveryList": obj({"deliveries": {"type": "array", "items": ref("WebhookDelivery")},
      "total": I, "limit": I, "offset": I}, ["deliveries", "total", "limit", "offset"]),
  "KeyIssued": obj({"id": S, "type": S, "key": S, "api_key": S, "note": S}, ["id", "type"]),
  "KeyList": obj({"keys": {"type": "array", "items": obj({"id": S, "prefix": S, "created_at": S})}}, ["keys"]),
  "AuditLog": obj({"id": S, "created_at": {"type": "string", "format": "date-time"},
      "actor": obj({"type": {"type": "string", "enum": ["api_key", "admin"]}, "key_id": S,
                    "ip": {"type": "string", "description": "the client address of the request"}},
                   ["type"]),
      "action": {"type": "string", "example": "batch.cancel"},
      "target_id": SN, "detail": ANYOBJ},
      ["id", "created_at", "actor", "action", "target_id", "detail"]),
  "AuditLogList": obj({"audit_logs": {"type": "array", "items": ref("AuditLog")}, "total": I,
                       "limit": I, "offset": I}, ["audit_logs", "total", "limit", "offset"]),
  "Me": obj({"tenant": ANYOBJ, "key": ANYOBJ, "limits": ANYOBJ, "credits_cents": I}, ["tenant", "key", "limits"]),
  "Spend": obj({"currency": S,
                "calls": {"type": "integer", "description": "answered calls billed (settled)"},
                "minutes": {"type": "integer", "description": "started minutes billed"},
                "total_cents": {"type": "integer", "description": "the sum of settled call costs: the credit ledger's settle rows (docs/api.md, Credits)"},
                "days": {"type": "array", "items": ANYOBJ}},
               ["currency", "total_cents", "days"]),
  "BatchCallTask": obj({"to_number": E164, "dynamic_variables": ANYOBJ,
                        **RETRY, "max_retries": {"type": "integer", "minimum": 0, "maximum": 10},
                        "timezone": RTZ}, ["to_number"]),
  "BatchCallRequest": obj({"from_number": E164,
      "tasks": {"type": "array", "minItems": 1, "maxItems": 1000, "items": ref("BatchCallTask")},
      "name": {"type": "string", "maxLength": 255},
      "trigger_timestamp": {"type": "integer", "minimum": 0,
                            "description": "Unix milliseconds; ahead of now, within 30 days (400)"},
      "agent_id": {"type": "string", "minLength": 1, "maxLength": 64}, "timezone": TZ,
      "status": {"type": "string", "enum": ["draft", "scheduled", "sent"]}, "send_now": B,
      "calling_hours": HOURS, "caller_id_pool": POOL, **TCL, **RETRY, **EXPIRY_MS, **AGENTLEG},
      ["from_number", "tasks", "agent_id"]),
  "BatchCall": obj({"batch_call_id": S, "name": S, "from_number": S, "scheduled_timestamp": IN,
      "total_task_count": I, "total": I, "sent": I, "picked_up": I, "completed": I, "agent_id": S,
      "waiting_for_window": WAIT, "waiting_for": WAITING_FOR,
      "organization_id": S, "status": {"type": "string", "enum": ["draft", "scheduled", "sent", "cancelled", "paused"]},
      "paused_timestamp": {**IN, "description": "batchcall extension: when it was paused (ms)"},
      "pause_reason": PAUSE_REASON,
      "latest_timestamp": {**IN, "description": "batchcall extension: its latest_at (ms)"},
      "expired": EXPIRED, "blocked": BLOCKED,
      "tenant_paused_timestamp": {**IN, "description": "batchcall extension: when the account was paused (ms)"},
      "timezone": S, "last_sent_timestamp": IN, "tasks_url": S, "created_timestamp": IN, "access_info": ANYOBJ,
      **RETRY},
      ["batch_call_id", "status", "total"]),
}

def env(data): return obj({"message": S, "status": {"type": "string", "enum": ["success"]},
                           "error": {"nullable": True}, "data": data}, ["message", "status", "error", "data"])

def op(tag, summary, security, responses, body=None, params=None, opid=None):
    o = {"tags": [tag], "summary": summary, "operationId": opid, "security": security, "responses": responses}
    if body: o["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params: o["parameters"] = params
    return o

def qp(name, schema, desc=""): return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}
def pp(name): return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_+]+$"}}
VER = {"name": "Cartesia-Version", "in": "header", "required": True,
       "schema": {"type": "string", "enum": ["2026-03-01"]}}
IDEM = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
CART = [{"APIKeyAuth": []}, {"CartesiaKey": []}]
RYMI = [{"APIKeyAuth": []}]
BCS = [{"BatchCallKey": [], "BatchCallSecret": []}, {"APIKeyAuth": []}]
LIMIT = qp("limit", {"type": "integer", "minimum": 1, "maximum": 200})
OFFSET = qp("offset", {"type": "integer", "minimum": 0, "maximum": 1000000000})

paths = {}
def add(path, method, o): paths.setdefault(path, {})[method] = o

# Cartesia
add("/agents/calls/batches", "post", op("Cartesia", "Create Call Batch", CART,
    {"201": jresp("The created batch", ref("AgentCallBatch")), **errs("cartesia", CREATE)},
    ref("AgentCallBatchRequest"), [VER, IDEM], "agents_create-call-batch"))
add("/agents/calls/batches", "get", op("Cartesia", "List Call Batches", CART,
    {"200": jresp("Batches, newest first", ref("AgentCallBatchList")), **errs("cartesia", COMMON)},
    None, [VER, qp("agent_id", S), qp("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
           qp("starting_after", S)], "agents_list-call-batches"))
add("/agents/calls/batches/{batch_id}", "get", op("Cartesia", "Get Call Batch", CART,
    {"200": jresp("The batch with its recipients", ref("AgentCallBatch")), **errs("cartesia", COMMON)},
    None, [VER, pp("batch_id")], "agents_get-call-batch"))
add("/agents/calls/{agent_call_id}", "get", op("Cartesia", "Get Call", CART,
    {"200": jresp("One call attempt, with its agent's report and recording", ref("AgentCall")),
     **errs("cartesia", COMMON)}, None,
    [VER, {"name": "agent_call_id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^ac_[A-Za-z0-9]+$"}}], "agents_get-call"))
PAUSE_DESC = {"pause": "Pause (batchcall extension): no new call after it returns; live calls finish",
              "resume": "Resume (batchcall extension): continues where it stopped, in order"}
for verb in ("pause", "resume"):
    add(f"/agents/calls/batches/{verb}", "post", op("Cartesia", f"{verb.title()} every batch (extension)", CART,
        {"200": jresp(PAUSE_DESC[verb] + "; while paused, new batches wait too", ref("TenantPause")),
         **errs("cartesia", COMMON)}, None, [VER, IDEM], f"agents_{verb}-all-call-batches"))
HANGUP = qp("hangup", {"type": "string", "enum": ["true", "false"]},
            "batchcall extension: true also ends the batch's live calls at the carrier")
for verb in ("retry", "cancel", "pause", "resume"):
    add(f"/agents/calls/batches/{{batch_id}}/{verb}", "post", op("Cartesia", f"{verb.title()} Call Batch", CART,
        {"200": jresp("The batch", ref("AgentCallBatch")), **errs("cartesia", COMMON + [409])},
        None, [VER, pp("batch_id"), IDEM] + ([HANGUP] if verb == "cancel" else []),
        f"agents_{verb}-call-batch"))

# batchcall's own read routes for watching batches (the CLI's watch, /dashboard)
PROG = [{"APIKeyAuth": []}, {"CartesiaKey": []}]
add("/progress/batches", "get", op("Progress", "Progress of the newest batches", PROG,
    {"200": jresp("Batches, newest first, and the tenant's live calls", ref("BatchProgressList")),
     **errs("cartesia", COMMON)}, None,
    [qp("limit", {"type": "integer", "minimum": 1, "maximum": 100}), qp("starting_after", S)],
    "progress_list"))
add("/progress/batches/{batch_id}", "get", op("Progress", "Progress of one batch", PROG,
    {"200": jresp("Counts, live calls against the limits, outcomes, rate and ETA", ref("BatchProgress")),
     **errs("cartesia", COMMON)}, None, [pp("batch_id")], "progress_get"))

# Rymi
add("/v1/calls/batch", "post", op("Rymi", "Queue Batch", RYMI,
    {"202": jresp("Accepted: queued", ref("RymiCall")), **errs("rymi", CREATE)}, ref("RymiBatchRequest"),
    [IDEM], "rymi_queue_batch"))
add("/v1/calls", "post", op("Rymi", "Create call with PSTN participants", RYMI,
    {"201": jresp("Created", ref("RymiCall")), **errs("rymi", CREATE)}, ref("RymiCallRequest"), [IDEM], "rymi_create_call"))
add("/v1/calls", "get", op("Rymi", "List calls", RYMI,
    {"200": jresp("Calls", ref("RymiCallList")), **errs("rymi", COMMON)}, None,
    [LIMIT, OFFSET, qp("cursor", S), qp("status", {"type": "string", "enum": ["queued", "ringing", "in_progress", "completed", "failed", "paused"]})],
    "rymi_list_calls"))
add("/v1/calls/active", "get", op("Rymi", "Active calls", RYMI,
    {"200": jresp("Calls with live legs", obj({"calls": {"type": "array", "items": ref("RymiCall")}, "total": I}, ["calls"])),
     **errs("rymi", COMMON)}, None, None, "rymi_active_calls"))
add("/v1/calls/queue/stats", "get", op("Rymi", "Queue stats", RYMI,
    {"200": jresp("Counts", ref("QueueStats")), **errs("rymi", COMMON)}, None, None, "rymi_queue_stats"))
for verb in ("pause", "resume"):
    add(f"/v1/calls/queue/{verb}", "post", op("Rymi", f"{verb.title()} every call (extension)", RYMI,
        {"200": jresp(PAUSE_DESC[verb] + "; while paused, new calls wait too", ref("TenantPause")),
         **errs("rymi", COMMON + [409])}, None, [IDEM], f"rymi_{verb}_queue"))
    add(f"/v1/calls/{{id}}/{verb}", "post", op("Rymi", f"{verb.title()} call (extension)", RYMI,
        {"200": jresp(PAUSE_DESC[verb], ref("RymiCall")), **errs("rymi", COMMON + [409])}, None,
        [pp("id"), IDEM], f"rymi_{verb}_call"))
add("/v1/calls/{id}", "get", op("Rymi", "Get call", RYMI,
    {"200": jresp("The call and its participants", ref("RymiCall")), **errs("rymi", COMMON)}, None, [pp("id")], "rymi_get_call"))
add("/v1/calls/{id}/events", "get", op("Rymi", "Call events", RYMI,
    {"200": jresp("Status history", ref("RymiEvents")), **errs("rymi", COMMON)}, None, [pp("id")], "rymi_call_events"))
add("/v1/calls/{id}/end", "post", op("Rymi", "End call", RYMI,
    {"200": jresp("The ended call", ref("RymiCall")), **errs("rymi", COMMON + [409])}, None, [pp("id"), IDEM], "rymi_end_call"))
add("/v1/calls/{id}/context", "get", op("Agent", "The call's context, for its agent (extension)",
    [{"CallToken": []}],
    {"200": jresp("What the agent needs of this call (docs/agents.md)", ref("AgentContext")),
     **errs("rymi", [401, 404, 405, 500])}, None, [pp("id")], "agent_call_context"))
add("/v1/calls/{id}/report", "post", op("Agent", "The agent's end-of-call report (extension)",
    [{"CallToken": []}],
    {"200": jresp("The report as stored; a later one replaces it (docs/agents.md)", ref("AgentReport")),
     **errs("rymi", [400, 401, 404, 405, 413, 500])}, ref("AgentReportIn"), [pp("id")], "agent_call_report"))
for what, sch, desc in (("summary", "RymiSummary", "Each leg's summary, disposition and data, from its agent's report"),
                        ("transcript", "RymiTranscript", "Each leg's transcript, from its agent's report"),
                        ("recording", "RymiRecording", "Each leg's recording")):
    add(f"/v1/calls/{{id}}/{what}", "get", op("Rymi", f"Call {what}", RYMI,
        {"200": jresp(desc + "; the top-level fields are the latest's", ref(sch)), **errs("rymi", COMMON)},
        None, [pp("id")], f"rymi_call_{what}"))
add("/v1/agents", "get", op("Rymi", "List agents", RYMI,
    {"200": jresp("Agents", ref("AgentList")), **errs("rymi", COMMON)}, None, [LIMIT, OFFSET], "rymi_list_agents"))
add("/v1/agents", "post", op("Rymi", "Create agent", RYMI,
    {"201": jresp("Created", ref("Agent")), **errs("rymi", COMMON + [409, 413])}, ref("AgentCreate"), [IDEM], "rymi_create_agent"))
add("/v1/agents/{id}", "get", op("Rymi", "Get agent", RYMI,
    {"200": jresp("Agent", ref("Agent")), **errs("rymi", COMMON)}, None, [pp("id")], "rymi_get_agent"))
add("/v1/agents/{id}", "put", op("Rymi", "Update agent", RYMI,
    {"200": jresp("Agent", ref("Agent")), **errs("rymi", COMMON + [413])}, ref("AgentIn"), [pp("id")], "rymi_update_agent"))
add("/v1/agents/{id}", "delete", op("Rymi", "Delete agent", RYMI,
    {"200": jresp("Deleted", ref("Deleted")), **errs("rymi", COMMON)}, None, [pp("id")], "rymi_delete_agent"))
add("/v1/agents/{id}/calls", "get", op("Rymi", "Calls of an agent", RYMI,
    {"200": jresp("Calls", ref("RymiCallList")), **errs("rymi", COMMON)}, None, [pp("id"), LIMIT, OFFSET], "rymi_agent_calls"))
add("/v1/numbers", "get", op("Rymi", "List numbers", RYMI,
    {"200": jresp("Numbers", ref("NumberList")), **errs("rymi", COMMON)}, None, [LIMIT, OFFSET], "rymi_list_numbers"))
add("/v1/numbers", "post", op("Rymi", "Register number", RYMI,
    {"201": jresp("Registered", ref("Number")), **errs("rymi", COMMON + [409, 413])}, ref("NumberIn"), [IDEM], "rymi_create_number"))
add("/v1/numbers/{number}/attach", "post", op("Rymi", "Attach number to agent", RYMI,
    {"200": jresp("Number", ref("Number")), **errs("rymi", COMMON + [409, 413])}, obj({"agent_id": S}, ["agent_id"]),
    [pp("number"), IDEM], "rymi_attach_number"))
add("/v1/numbers/{number}", "delete", op("Rymi", "Delete number", RYMI,
    {"200": jresp("Deleted", ref("Deleted")), **errs("rymi", COMMON + [409])}, None, [pp("number")], "rymi_delete_number"))
add("/v1/dnc", "get", op("Rymi", "List DNC", RYMI,
    {"200": jresp("DNC entries", ref("DncList")), **errs("rymi", COMMON)}, None, [LIMIT, OFFSET], "rymi_list_dnc"))
add("/v1/dnc", "post", op("Rymi", "Add to DNC", RYMI,
    {"201": jresp("Added", ref("DncEntry")), "200": jresp("Already listed", ref("DncEntry")), **errs("rymi", COMMON + [409, 413])},
    obj({"number": E164, "reason": {"type": "string", "maxLength": 255}}, ["number"]), [IDEM], "rymi_add_dnc"))
add("/v1/dnc/batch", "post", op("Rymi", "Bulk add to DNC", RYMI,
    {"201": jresp("Added", obj({"added": I, "received": I})), **errs("rymi", COMMON + [409, 413])},
    obj({"numbers": {"type": "array", "items": E164, "minItems": 1, "maxItems": 500000}, "reason": S}, ["numbers"]),
    [IDEM], "rymi_batch_dnc"))
add("/v1/dnc/check", "post", op("Rymi", "Check DNC", RYMI,
    {"200": jresp("Verdicts", ref("DncCheck")), **errs("rymi", COMMON + [409, 413])},
    {**obj({"number": E164, "numbers": {"type": "array", "items": E164, "minItems": 1, "maxItems": 500000}}),
     "description": "number (one verdict) or numbers (a list of them); number wins when both are given",
     "anyOf": [{"required": ["number"]}, {"required": ["numbers"]}]},
    [IDEM], "rymi_check_dnc"))
add("/v1/dnc/{number}", "delete", op("Rymi", "Remove from DNC", RYMI,
    {"200": jresp("Removed", ref("Deleted")), **errs("rymi", COMMON)}, None, [pp("number")], "rymi_delete_dnc"))
add("/v1/webhooks", "get", op("Rymi", "List webhooks", RYMI,
    {"200": jresp("Webhooks", obj({"webhooks": {"type": "array", "items": ref("Webhook")}}, ["webhooks"])),
     **errs("rymi", COMMON)}, None, None, "rymi_list_webhooks"))
add("/v1/webhooks", "post", op("Rymi", "Create webhook", RYMI,
    {"201": jresp("Created (secret shown once)", ref("Webhook")), **errs("rymi", COMMON + [409, 413])}, ref("WebhookCreate"),
    [IDEM], "rymi_create_webhook"))
add("/v1/webhooks/{id}", "get", op("Rymi", "Get webhook", RYMI,
    {"200": jresp("Webhook", ref("Webhook")), **errs("rymi", COMMON)}, None, [pp("id")], "rymi_get_webhook"))
add("/v1/webhooks/{id}", "patch", op("Rymi", "Update webhook", RYMI,
    {"200": jresp("Webhook", ref("Webhook")), **errs("rymi", COMMON + [413])}, ref("WebhookIn"), [pp("id")], "rymi_update_webhook"))
add("/v1/webhooks/{id}", "delete", op("Rymi", "Delete webhook", RYMI,
    {"200": jresp("Deleted", ref("Deleted")), **errs("rymi", COMMON)}, None, [pp("id")], "rymi_delete_webhook"))
add("/v1/webhooks/{id}/deliveries", "get", op("Rymi", "List webhook deliveries", RYMI,
    {"200": jresp("Deliveries, newest first", ref("WebhookDeliveryList")), **errs("rymi", COMMON)}, None,
    [pp("id"), LIMIT, OFFSET, qp("status", {"type": "string", "enum": ["pending", "delivered", "dead"]})],
    "rymi_list_webhook_deliveries"))
add("/v1/webhooks/{id}/deliveries/{delivery_id}/retry", "post", op("Rymi", "Send a delivery again", RYMI,
    {"202": jresp("Queued again from a first try", ref("WebhookDelivery")), **errs("rymi", COMMON + [409])},
    None, [pp("id"), pp("delivery_id"), IDEM], "rymi_retry_webhook_delivery"))
add("/v1/keys/publishable", "get", op("Rymi", "List publishable keys", RYMI,
    {"200": jresp("Keys (no secrets)", ref("KeyList")), **errs("rymi", COMMON)}, None, None, "rymi_list_pk"))
add("/v1/keys/publishable", "post", op("Rymi", "Create publishable key", RYMI,
    {"201": jresp("Created (key shown once)", ref("KeyIssued")), **errs("rymi", COMMON + [409])}, None, [IDEM], "rymi_create_pk"))
add("/v1/keys/publishable/{id}", "delete", op("Rymi", "Revoke publishable key", RYMI,
    {"200": jresp("Revoked", ref("Deleted")), **errs("rymi", COMMON)}, None, [pp("id")], "rymi_revoke_pk"))
add("/v1/auth/me", "get", op("Rymi", "Who am I", RYMI,
    {"200": jresp("Account", ref("Me")), **errs("rymi", COMMON)}, None, None, "rymi_me"))
add("/v1/auth/regenerate-key", "post", op("Rymi", "Rotate the secret key", RYMI,
    {"201": jresp("New key (shown once); the old one stops working", ref("KeyIssued")), **errs("rymi", COMMON + [409])},
    None, [IDEM], "rymi_regenerate_key"))
add("/v1/analytics/spend", "get", op("Rymi", "Spend", RYMI,
    {"200": jresp("Spend by day", ref("Spend")), **errs("rymi", COMMON)}, None,
    [qp("from", {"type": "string", "format": "date"}), qp("to", {"type": "string", "format": "date"})], "rymi_spend"))
add("/v1/audit-logs", "get", op("Rymi", "Audit log (extension)", RYMI,
    {"200": jresp("The tenant's writes, newest first: who, what, when, from where",
                  ref("AuditLogList")), **errs("rymi", COMMON)}, None,
    [LIMIT, OFFSET, qp("action", {"type": "string", "pattern": "^[a-z0-9._-]{1,64}$"},
                       "only rows of this action, e.g. batch.cancel")], "rymi_list_audit_logs"))

# batch-call
add("/batch-call", "post", op("BatchCall", "Create batch call", BCS,
    {"201": jresp("Created", env(ref("BatchCall"))), **errs("batchcall", CREATE)}, ref("BatchCallRequest"), [IDEM], "batch_call_create"))
add("/batch-call", "get", op("BatchCall", "List batch calls", BCS,
    {"200": jresp("Batch calls", env(obj({"batch_calls": {"type": "array", "items": ref("BatchCall")}, "total": I,
                                         "limit": I, "offset": I}))), **errs("batchcall", COMMON)},
    None, [LIMIT, OFFSET], "batch_call_list"))
add("/batch-call/{id}", "get", op("BatchCall", "Get batch call", BCS,
    {"200": jresp("Batch call", env(ref("BatchCall"))), **errs("batchcall", COMMON)}, None, [pp("id")], "batch_call_get"))
add("/batch-call/{id}/tasks", "get", op("BatchCall", "Tasks of a batch call", BCS,
    {"200": jresp("Tasks", env(obj({"batch_call_id": S, "tasks": {"type": "array", "items": ANYOBJ}}))),
     **errs("batchcall", COMMON)}, None, [pp("id"), qp("limit", {"type": "integer", "minimum": 1, "maximum": 1000}), OFFSET],
    "batch_call_tasks"))
for verb in ("pause", "resume"):
    add(f"/batch-call/{verb}", "post", op("BatchCall", f"{verb.title()} every batch call (extension)", BCS,
        {"200": jresp(PAUSE_DESC[verb] + "; while paused, new batch calls wait too", env(ref("TenantPause"))),
         **errs("batchcall", COMMON + [409])}, None, [IDEM], f"batch_call_{verb}_all"))
for verb in ("cancel", "send", "pause", "resume"):
    add(f"/batch-call/{{id}}/{verb}", "post", op("BatchCall", f"{verb.title()} batch call", BCS,
        {"200": jresp("Batch call", env(ref("BatchCall"))), **errs("batchcall", COMMON + [409])}, None,
        [pp("id"), IDEM], f"batch_call_{verb}"))

# Retell-compatible (create as documented; the rest are batchcall extensions)
RET = [{"APIKeyAuth": []}]
add("/create-batch-call", "post", op("Retell", "Create Batch Call", RET,
    {"201": jresp("Successfully created a batch call.", ref("RetellBatchCall")),
     **errs("retell", COMMON + [402, 413, 422])}, ref("RetellBatchCallRequest"), [IDEM], "createBatchCall"))
add("/get-batch-call/{batch_call_id}", "get", op("Retell", "Get Batch Call (extension)", RET,
    {"200": jresp("The batch call and its counts", ref("RetellBatchCall")), **errs("retell", COMMON)},
    None, [pp("batch_call_id")], "retell_get_batch_call"))
for verb in ("cancel", "pause", "resume"):
    add(f"/{verb}-batch-call/{{batch_call_id}}", "post", op("Retell", f"{verb.title()} Batch Call (extension)", RET,
        {"200": jresp(PAUSE_DESC.get(verb, "Cancel: nothing queued is dialed any more; live calls finish"),
                      ref("RetellBatchCall")), **errs("retell", COMMON + [409])},
        None, [pp("batch_call_id"), IDEM], f"retell_{verb}_batch_call"))
    if verb != "cancel":
        add(f"/{verb}-all-batch-calls", "post", op("Retell", f"{verb.title()} every batch call (extension)", RET,
            {"200": jresp(PAUSE_DESC[verb] + "; while paused, new batch calls wait too", ref("TenantPause")),
             **errs("retell", COMMON)}, None, [IDEM], f"retell_{verb}_all_batch_calls"))

for sch in schemas.values():
    exclusive(sch)

doc = {
  "openapi": "3.0.3",
  "info": {"title": "batchcall", "version": "1.0.0",
           "description": "Batch outbound calling for AI voice agents: the Cartesia-style, Rymi-style, "
                          "batch-call and Retell-compatible APIs over one core. See docs/api.md for every choice made where a "
                          "platform's own document is silent."},
  "servers": [{"url": "http://127.0.0.1:8080"}],
  "paths": paths,
  "components": {
    "schemas": schemas,
    "responses": RESPONSES,
    "securitySchemes": {
      "APIKeyAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "API key (bc_sk_...)"},
      "CartesiaKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
      "BatchCallKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
      "BatchCallSecret": {"type": "apiKey", "in": "header", "name": "X-API-SECRET"},
      "CallToken": {"type": "http", "scheme": "bearer",
                    "bearerFormat": "the call's bc_token, handed to its agent (docs/agents.md)"}}}}
print(json.dumps(doc, indent=1, sort_keys=False))
