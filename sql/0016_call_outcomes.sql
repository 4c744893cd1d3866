-- What comes back from a call beyond its status: who answered (async
-- answering-machine detection) and what the batch's voicemail policy did,
-- a hang-up we asked of the carrier, the recording, and the agent's own
-- end-of-call report (docs/agents.md).

-- Recording: asked of the carrier when the batch says so, else its agent.
ALTER TABLE agents ADD COLUMN record boolean NOT NULL DEFAULT false;
ALTER TABLE batches ADD COLUMN record boolean;
-- What to do when a machine answers: {"action": "hangup" | "message" |
-- "agent", "text": ..., "audio_url": ...}; NULL is "agent".
ALTER TABLE batches ADD COLUMN voicemail jsonb;

ALTER TABLE calls ADD COLUMN agent_id text;
ALTER TABLE calls ADD COLUMN amd_at timestamptz;
ALTER TABLE calls ADD COLUMN voicemail_action text;
ALTER TABLE calls ADD COLUMN hangup_requested_at timestamptz;
ALTER TABLE calls ADD COLUMN recording_sid text;
ALTER TABLE calls ADD COLUMN recording_url text;
ALTER TABLE calls ADD COLUMN recording_duration_s integer;
ALTER TABLE calls ADD COLUMN report jsonb;
ALTER TABLE calls ADD COLUMN disposition text;
ALTER TABLE calls ADD COLUMN reported_at timestamptz;
