-- The agent leg: how an answered call reaches the tenant's AI agent. The
-- scheme says the kind (common/bc_agent.h): wss:// a Media Streams
-- WebSocket, https:// (or http://) a URL that answers with TwiML, sip: or
-- sips: a SIP URI. NULL: the agent has no endpoint yet, and a batch for it
-- is refused at creation (a call nobody would hear is worth nothing).
ALTER TABLE agents ADD COLUMN endpoint text
    CHECK (endpoint ~ '^(wss://|https?://|sips?:)' AND length(endpoint) <= 1024);
