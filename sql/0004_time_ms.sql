-- Call status history needs millisecond times: several statuses of one
-- call often land within the same second, and their order must survive.
CREATE FUNCTION rfc3339_ms(t timestamptz) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
