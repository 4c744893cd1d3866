-- params: status minutes price hold
-- Cents a call costs (SQL text): an answered call (the carrier's
-- 'completed') its billed minutes (credits_minutes.sql) x price, capped at
-- its hold; any other outcome 0. As bc_credits_cost() in C.
(CASE WHEN :status = 'completed' THEN least(:hold, :minutes::bigint * (:price)) ELSE 0 END)
