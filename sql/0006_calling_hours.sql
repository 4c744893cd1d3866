-- Optional calling hours per batch, read in the batch's timezone:
-- {"days": [1..7, ISO Monday=1], "start": "HH:MM", "end": "HH:MM"}. An end
-- before the start crosses midnight (22:00-06:00); days name the day the
-- local time falls on. NULL means any time.
ALTER TABLE batches ADD COLUMN calling_hours jsonb;

CREATE FUNCTION in_calling_hours(w jsonb, tz text, t timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT w IS NULL OR (
        (NOT (w ? 'days') OR extract(isodow FROM t AT TIME ZONE tz)::int
                             IN (SELECT jsonb_array_elements_text(w->'days')::int))
        AND CASE WHEN (w->>'start')::time <= (w->>'end')::time
                 THEN (t AT TIME ZONE tz)::time >= (w->>'start')::time
                      AND (t AT TIME ZONE tz)::time < (w->>'end')::time
                 ELSE (t AT TIME ZONE tz)::time >= (w->>'start')::time
                      OR (t AT TIME ZONE tz)::time < (w->>'end')::time END)
$$;
