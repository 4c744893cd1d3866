-- Caller-ID pools: a batch may dial from several of its tenant's numbers.
-- Its lease slots are dealt out over the numbers (slot s belongs to
-- from_pool[s mod n]), so a call takes a slot of the number it dials from
-- and each number's live calls are capped by its slots, as exactly as the
-- batch's; pool_cps caps each number's calls started per second. A
-- recipient keeps the number of its first attempt (recipients.from_number).
ALTER TABLE batches ADD COLUMN from_pool text[];
ALTER TABLE batches ADD COLUMN pool_cps integer;
ALTER TABLE leases ADD COLUMN number text;
-- Calls started per second by caller number.
CREATE INDEX calls_from_recent ON calls (from_number, created_at);
