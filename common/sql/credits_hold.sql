-- params: price max_min
-- Cents held for a call of at most max_min minutes at price cents a minute
-- (SQL text), as bc_credits_hold() counts them in C.
((:price)::bigint * (:max_min))
