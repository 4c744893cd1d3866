-- Calling hours in each recipient's own time zone, and a clock tests can move.

-- A recipient's IANA time zone; NULL means the batch's. Its calling hours
-- are the batch's, read in this zone.
ALTER TABLE recipients ADD COLUMN timezone text;
-- Deferred until its calling hours open (next_attempt_at says when), as
-- opposed to waiting out a retry back-off; counted as waiting for a window.
ALTER TABLE recipients ADD COLUMN window_wait boolean NOT NULL DEFAULT false;

-- The clock calling hours are read on. Production has no row here: it is
-- the server's clock. Tests and demos move it (batchcall clock set +SECONDS)
-- to see windows open and close without waiting for them.
CREATE TABLE clock_offset (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    offset_s double precision NOT NULL
);
CREATE FUNCTION bc_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT now() + make_interval(secs => coalesce((SELECT offset_s FROM clock_offset), 0))
$$;

-- The first moment at or after t inside calling hours w read in zone tz
-- (NULL w: t). Candidates are each local day's opening time and, for hours
-- crossing midnight, each local midnight; the earliest that is inside the
-- hours wins. A week and a day covers every day-of-week pattern.
CREATE FUNCTION next_calling_time(w jsonb, tz text, t timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN in_calling_hours(w, tz, t) THEN t ELSE (
        SELECT min(c) FROM (
            SELECT ((d + (w->>'start')::time) AT TIME ZONE tz) AS c
              FROM generate_series(date_trunc('day', t AT TIME ZONE tz),
                                   date_trunc('day', t AT TIME ZONE tz) + interval '8 days',
                                   interval '1 day') AS g(d)
            UNION ALL
            SELECT (d AT TIME ZONE tz)
              FROM generate_series(date_trunc('day', t AT TIME ZONE tz),
                                   date_trunc('day', t AT TIME ZONE tz) + interval '8 days',
                                   interval '1 day') AS g(d)
             WHERE (w->>'end')::time < (w->>'start')::time) x
         WHERE c > t AND in_calling_hours(w, tz, c)) END
$$;
