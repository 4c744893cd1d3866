-- The recipients of a batch that a release deferred to their calling
-- hours' next opening (window_wait), found without reading the batch's
-- other rows. A create answers from the batch row alone when its policy
-- stopped no recipient (batch_get_new in api/bc_api_main.c: 5,000 rows
-- read back were 5-7 ms of the answer, B1); but an immediate batch's first
-- release, in the same transaction, may defer recipients outside their
-- hours (the tenant's legal hours are on by default), and the answer must
-- count them. Rows enter this index only while they wait, so the COPY of a
-- new batch does not touch it.
CREATE INDEX recipients_window_wait ON recipients (batch_id) WHERE window_wait;
