-- Legal calling hours (docs/api.md, "Tenant policy"): a tenant policy, on
-- by default, that no call is started outside 08:00-21:00 in the
-- recipient's local time (US telemarketing rules: no call initiated before
-- 8 a.m. or after 9 p.m. at the called party's location). It sits on top of
-- each batch's own calling_hours: a recipient is called only when both are
-- open, and one outside either is deferred (next_attempt_at, window_wait),
-- not failed. Release (BC_SQL_RELEASE) and the worker's claim apply it.
--
-- The rule is about starting a call: at 20:59 a call is placed even if its
-- max duration runs past 21:00; at 21:00:00 it waits for the next opening.

ALTER TABLE tenants
    ADD COLUMN legal_hours boolean NOT NULL DEFAULT true,
    ADD COLUMN legal_start time    NOT NULL DEFAULT '08:00',
    ADD COLUMN legal_end   time    NOT NULL DEFAULT '21:00',
    ADD CONSTRAINT tenants_legal_window CHECK (legal_start < legal_end);

-- libphonenumber's prefix-to-time-zone map (E.164 digits without '+', the
-- zones of the numbers starting with them). Loaded by `batchcall tz-load`
-- from deploy/tz-prefixes.py's output (docs/operations.md), never by hand:
-- a migration cannot read the package's data.
CREATE TABLE tz_prefixes (
    prefix text PRIMARY KEY CHECK (prefix ~ '^[0-9]{1,15}$'),
    zones  text[] NOT NULL CHECK (cardinality(zones) >= 1)
);

-- A tenant's legal window as calling hours ({"start","end"}), NULL when its
-- policy is off.
CREATE FUNCTION tenant_legal_hours(tenant text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN legal_hours
                THEN jsonb_build_object('start', legal_start::text, 'end', legal_end::text) END
      FROM tenants WHERE id = tenant
$$;

-- The zones of a number by its longest prefix in tz_prefixes, as
-- libphonenumber looks them up; NULL if no prefix is known. One scan of
-- the primary key for every candidate prefix at once. PL/pgSQL, like the
-- per-recipient functions below: release and claim call them per row, and
-- cached plans cost far less than SQL functions that cannot be inlined
-- (measured: 30 us a number here, 120 us as SQL).
CREATE FUNCTION number_zones(number text) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    d text := regexp_replace(number, '[^0-9]', '', 'g');
    a text[] := '{}';
    zs text[];
BEGIN
    FOR n IN 1..least(length(d), 15) LOOP
        a := a || left(d, n);
    END LOOP;
    SELECT p.zones INTO zs FROM tz_prefixes p
     WHERE p.prefix = ANY(a) ORDER BY length(p.prefix) DESC LIMIT 1;
    RETURN zs;
END
$$;

-- The zones legal hours are read in: the recipient's own time zone if it
-- has one; else those its number's prefix spans; else the batch's.
CREATE FUNCTION legal_zones(rtz text, number text, btz text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN rtz IS NOT NULL THEN ARRAY[rtz]
                ELSE coalesce(number_zones(number), ARRAY[btz]) END
$$;

-- Conservative: inside legal hours only if inside them in every zone.
-- The window never crosses midnight (tenants_legal_window).
CREATE FUNCTION in_legal_hours(w jsonb, zones text[], t timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    z text;
    lt time;
BEGIN
    IF w IS NULL THEN
        RETURN true;
    END IF;
    FOREACH z IN ARRAY zones LOOP
        lt := (t AT TIME ZONE z)::time;
        IF lt < (w->>'start')::time OR lt >= (w->>'end')::time THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- The first moment at or after t inside legal hours in every zone. No
-- common moment comes before the latest of each zone's own next opening
-- (or t, where it is open), so that is the next candidate; a candidate
-- open everywhere is the answer. Zones with no common hour (none known
-- today: libphonenumber's widest prefix, +1, from Guam to St John's, still
-- shares one) are looked at again a day later rather than never.
CREATE FUNCTION next_legal_time(w jsonb, zones text[], t timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s time := (w->>'start')::time;
    e time := (w->>'end')::time;
    c timestamptz := t;
    nxt timestamptz;
    o timestamptz;
    z text;
    lt timestamp;
BEGIN
    FOR i IN 1..32 LOOP
        nxt := c;
        FOREACH z IN ARRAY zones LOOP
            lt := c AT TIME ZONE z;
            IF lt::time < s THEN
                o := (lt::date + s) AT TIME ZONE z;
            ELSIF lt::time >= e THEN
                o := (lt::date + 1 + s) AT TIME ZONE z;
            ELSE
                o := c;
            END IF;
            nxt := greatest(nxt, o);
        END LOOP;
        IF nxt = c THEN
            RETURN c;
        END IF;
        c := nxt;
    END LOOP;
    RETURN t + interval '1 day';
END
$$;

-- Whether a recipient may be called at t: inside its batch's calling hours
-- (read in its own zone, else the batch's) and inside the tenant's legal
-- window lw (NULL: policy off) in every zone legal_zones() gives. The
-- legal window never crosses midnight (tenants_legal_window).
CREATE FUNCTION recipient_open(hours jsonb, lw jsonb, rtz text, btz text, number text,
                               t timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF hours IS NOT NULL AND NOT in_calling_hours(hours, coalesce(rtz, btz), t) THEN
        RETURN false;
    END IF;
    IF lw IS NULL THEN
        RETURN true;
    END IF;
    RETURN in_legal_hours(lw, legal_zones(rtz, number, btz), t);
END
$$;

-- When a recipient outside recipient_open() is looked at again: the later
-- of its batch hours' and its legal hours' next opening. Both may not be
-- open then (each opening was found apart); the release checks again and
-- defers once more, so it never calls early.
CREATE FUNCTION recipient_opens(hours jsonb, lw jsonb, rtz text, btz text, number text,
                                t timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT greatest(next_calling_time(hours, coalesce(rtz, btz), t),
                    CASE WHEN lw IS NOT NULL
                         THEN next_legal_time(lw, legal_zones(rtz, number, btz), t) END)
$$;
