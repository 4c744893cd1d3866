-- Carrier statuses arrive out of order (callbacks race, Kafka redelivers);
-- a call only ever moves forward along this rank.
CREATE FUNCTION call_status_rank(s text) RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE s WHEN 'claimed' THEN 0 WHEN 'dialing' THEN 1 WHEN 'queued' THEN 2
                  WHEN 'initiated' THEN 2 WHEN 'ringing' THEN 3
                  WHEN 'in-progress' THEN 4 ELSE 9 END
$$;

-- Live leases of a worker, renewed in one statement.
CREATE INDEX leases_holder ON leases (holder) WHERE holder IS NOT NULL;
