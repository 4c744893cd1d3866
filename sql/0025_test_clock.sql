-- The movable clock is a test's: bc_now() reads clock_offset only in a
-- session where the setting batchcall.test_clock is 'on'. Before this, any
-- row in clock_offset shifted the clock calling hours, legal hours,
-- retries and expiry are read on, in production too. Nothing of batchcall
-- sets it: the test fixture does, for its own database only
-- (ALTER DATABASE ... SET batchcall.test_clock = 'on'), so a production
-- database cannot turn it on by accident; a row there is ignored.
-- current_setting(..., true) is NULL where the setting was never made,
-- and the table is read only when it is on: still one cheap STABLE call
-- in the claim and release statements.
CREATE OR REPLACE FUNCTION bc_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('batchcall.test_clock', true) = 'on'
                THEN now() + make_interval(secs => coalesce((SELECT offset_s FROM clock_offset), 0))
                ELSE now() END
$$;

COMMENT ON TABLE clock_offset IS
    'A test''s clock offset: read by bc_now() only where batchcall.test_clock is on';
