-- The data of a batch.completed webhook event: the batch and its
-- recipients counted by outcome. Two places queue that event (the webhook
-- intake, after a batch's last call, and the expiry sweep, when latest_at
-- ended the rest); both take its body from here, so it is one shape.
-- ended_at: the event's moment, as the RFC 3339 string the body carries.
CREATE FUNCTION batch_completed_data(bid text, ended_at jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('batch_id', b.id, 'name', b.name, 'total', b.total,
                              'completed', c.completed, 'failed', c.failed,
                              'cancelled', c.cancelled, 'expired', c.expired,
                              'retry_count', b.retry_count, 'ended_at', ended_at)
      FROM batches b,
           LATERAL (SELECT count(*) FILTER (WHERE r.status = 'completed') AS completed,
                           count(*) FILTER (WHERE r.status = 'failed') AS failed,
                           count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
                           count(*) FILTER (WHERE r.status = 'expired') AS expired
                      FROM recipients r WHERE r.batch_id = b.id) c
     WHERE b.id = bid
$$;
