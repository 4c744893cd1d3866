-- When a deferred recipient may next be called: the first moment open in
-- both its batch's calling hours and the tenant's legal hours, found by
-- stepping from one's next opening to the other's until they agree. Until
-- now it was the later of the two openings found apart, which need not be
-- open in both (batch hours 20:00-23:00 under legal 08:00-21:00 at 21:30
-- gave 08:00, not 20:00 the next day): the recipient was never called
-- early, the release deferred it again, but its next_attempt_at, which the
-- surfaces show as when it will be called, was wrong. 16 steps cover any
-- pair of daily windows with a common hour; without one it is looked at
-- again a day later, as next_legal_time does.
CREATE OR REPLACE FUNCTION recipient_opens(hours jsonb, lw jsonb, rtz text, btz text,
                                           number text, t timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    zones text[];
    c timestamptz := t;
    nxt timestamptz;
BEGIN
    IF lw IS NULL THEN
        RETURN next_calling_time(hours, coalesce(rtz, btz), t);
    END IF;
    zones := legal_zones(rtz, number, btz);
    FOR i IN 1..16 LOOP
        nxt := next_legal_time(lw, zones, next_calling_time(hours, coalesce(rtz, btz), c));
        IF nxt = c THEN
            RETURN c;
        END IF;
        c := nxt;
    END LOOP;
    RETURN t + interval '1 day';
END
$$;
