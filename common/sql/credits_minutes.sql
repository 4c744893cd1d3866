-- params: dur
-- Minutes billed for a call the carrier says lasted dur seconds (SQL
-- text): every started minute, 0 for none, as bc_credits_minutes() in C.
(ceil(greatest(coalesce(:dur, 0), 0) / 60.0)::int)
