-- The elements of a JSON array, for the statements that take a turn's list
-- (claims, ends, progress, ...) as one parameter and join it to tables by
-- key. jsonb_to_recordset tells the planner 100 rows whatever the list
-- holds, and the lists are short (a turn of B3 carries 1-5), so with a
-- table of a few thousand rows the planner judged one pass over the whole
-- table cheaper than 100 index lookups: the generic plans of the claim and
-- the ends scanned every recipient to find two (4-5 ms of a 5-7 ms
-- statement, bench/RESULTS.md). This says 8 rows. It must not be inlined
-- (the estimate would be jsonb_array_elements' 100 again): STRICT keeps
-- PostgreSQL from inlining a set-returning SQL function. Used as
--   FROM list_rows($1::jsonb) AS x, jsonb_to_record(x) AS e(id text, ...)
CREATE FUNCTION list_rows(list jsonb) RETURNS SETOF jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 8
    AS $$ SELECT jsonb_array_elements(list) $$;
