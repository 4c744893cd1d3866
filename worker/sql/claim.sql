-- params: gate hold short
-- claim_many: the claims of one loop turn in one statement (bc_claim.c).
-- Per job: a slot is taken only if the recipient's attempt is still queued
-- and its batch admitted and in calling hours, and the recipient is
-- claimed only with a slot; the call row records our attempt id before any
-- dial. Jobs of a batch get its free slots in job order. A claimed call
-- passes the dial's gate in the same statement (gate, below) and is
-- 'dialing' when it returns. Every job gets one row back, its outcome:
--   'claimed'  with what the dial needs, and in blocked why it may not be
--              dialed (the policy's rule, or the credits' short), else NULL;
--   'noslot'   keep it, try again;
--   'hours'    outside calling hours: put back in the backlog, the
--              scheduler releases it when they open;
--   'stale'    claimed elsewhere, finished, cancelled or a later attempt:
--              drop it.
-- $1 the jobs, [{"n" index, "r" recipient, "b" batch, "a" attempt, "c" call id}]
-- $2 holder (this worker) $3 lease ttl, seconds
-- The fragment's parameters (SQL text): gate, the tenant's policy over
-- r.tenant_id and r.to_number (bc_policy.h); hold, the cents held for a
-- call at cu.price for bb.max_call_duration_min minutes (bc_credits.h);
-- short, the reason a call the balance cannot cover is not dialed.
-- In psql: PREPARE claim_many(jsonb, text, int) AS <this>; EXPLAIN EXECUTE ...
WITH jobs AS (
    SELECT j.* FROM list_rows($1::jsonb) x,
                    jsonb_to_record(x) AS j(n int, r text, b text, a int, c text)),
-- The jobs' batches, as they are now.
job_batches AS MATERIALIZED (
    SELECT id, state = 'admitted' AS admitted, calling_hours, timezone,
           from_pool, pool_cps, bc_now() AS t, tenant_legal_hours(tenant_id) AS lw
      FROM batches WHERE id IN (SELECT b FROM jobs)),
-- Those that may dial: admitted, not past latest_at, and held so (FOR
-- SHARE: a cancel or pause waits for this statement), with their dial
-- settings.
dialable_batches AS (
    SELECT id, from_number, ringing_timeout_s, max_call_duration_min, agent_id,
           variables, metadata, record
      FROM batches
     WHERE id IN (SELECT id FROM job_batches WHERE admitted)
       AND state = 'admitted' AND (latest_at IS NULL OR latest_at > bc_now())
       FOR SHARE),
-- Each job whose recipient's attempt is still queued, found by its key.
-- Given batch_id or a plain status test, the planner walked the batch's
-- whole backlog per job through the partial index recipients_active
-- whenever its statistics said few recipients were queued (measured:
-- 46 ms for 14 jobs). OFFSET 0 keeps the lookup apart, and coalesce()
-- keeps the updates' status test from matching that index's predicate. A
-- job is claimable when its attempt is still queued, its batch admitted,
-- and the recipient inside calling hours in its own time zone, the
-- batch's and the tenant's legal window (sql/0023_legal_hours.sql). The
-- hours functions run only for batches that have hours: evaluated per job
-- they were most of this statement's time (B2, 0.2 ms a job). want: the
-- pool number the recipient already has (a retry), if any.
queued_jobs AS MATERIALIZED (
    SELECT j.*, bs.id IN (SELECT id FROM dialable_batches) AS admitted,
           CASE WHEN rc.from_number = ANY(bs.from_pool) THEN rc.from_number END AS want,
           CASE WHEN bs.calling_hours IS NULL AND bs.lw IS NULL THEN true
                ELSE recipient_open(bs.calling_hours, bs.lw, rc.tz, bs.timezone,
                                    rc.to_number, bs.t)
           END AS open,
           CASE WHEN bs.calling_hours IS NOT NULL OR bs.lw IS NOT NULL
                THEN recipient_opens(bs.calling_hours, bs.lw, rc.tz, bs.timezone,
                                     rc.to_number, bs.t)
           END AS opens
      FROM jobs j JOIN job_batches bs ON bs.id = j.b,
      LATERAL (SELECT batch_id, status, attempts, timezone AS tz, from_number, to_number
                 FROM recipients
                WHERE id = j.r OFFSET 0) rc
     WHERE rc.batch_id = j.b AND rc.status = 'queued' AND rc.attempts = j.a - 1),
-- The jobs that may take a slot now.
claimable AS MATERIALIZED (
    SELECT n, r, b, a, c, want FROM queued_jobs WHERE admitted AND open),
-- Free slots: as many as jobs, or every one of a batch with a caller-ID
-- pool (a slot belongs to the number it dials from).
slots_wanted AS MATERIALIZED (
    SELECT q.b, count(*) AS k, bool_or(bs.from_pool IS NOT NULL) AS pooled
      FROM claimable q JOIN job_batches bs ON bs.id = q.b GROUP BY q.b),
free_slots AS MATERIALIZED (
    SELECT need.b, f.slot, f.number
      FROM slots_wanted need,
      LATERAL (SELECT l.slot, l.number FROM leases l
                WHERE l.batch_id = need.b AND l.call_id IS NULL
                ORDER BY l.slot
                LIMIT CASE WHEN need.pooled THEN 100000 ELSE need.k END
                FOR UPDATE SKIP LOCKED) f),
-- nk: a slot's rank among its batch's free slots of the same number.
ranked_slots AS MATERIALIZED (
    SELECT s0.*, row_number() OVER (PARTITION BY s0.b, s0.number ORDER BY s0.slot) AS nk
      FROM free_slots s0),
-- A pool number takes no more new calls than its calls per second allow.
-- Counted over the last 1.5 s of claims, not 1 s: a dial leaves some time
-- after its claim, and that jitter must not let the carrier see more than
-- the cap in any second of its own clock.
usable_slots AS MATERIALIZED (
    SELECT s1.* FROM ranked_slots s1 JOIN job_batches bs ON bs.id = s1.b
     WHERE bs.pool_cps IS NULL OR s1.number IS NULL
        OR s1.nk <= bs.pool_cps - (SELECT count(*) FROM calls c
                                     WHERE c.from_number = s1.number
                                       AND c.created_at > now() - interval '1.5 seconds')),
-- Jobs meet slots by position: the k-th job of a batch (or of a pool
-- number) takes the k-th free slot. The slots of each batch and number are
-- gathered into arrays and indexed, because a join of two lists of a few
-- hundred rows each, which PostgreSQL estimates at one row apiece, ran as
-- a nested loop: a quarter of this statement's time in B2. A recipient
-- with a pool number already (a retry) takes a slot of that number
-- (numbered_*); the others take the rest in turn over the numbers (any_*).
numbered_jobs AS MATERIALIZED (
    SELECT q.*, row_number() OVER (PARTITION BY q.b, q.want ORDER BY q.n) AS k
      FROM claimable q WHERE q.want IS NOT NULL),
slots_by_number AS MATERIALIZED (
    SELECT s.b, s.number, array_agg(s.slot ORDER BY s.nk) AS slots
      FROM usable_slots s WHERE s.number IS NOT NULL AND EXISTS (SELECT 1 FROM numbered_jobs)
     GROUP BY s.b, s.number),
numbered_pairs AS MATERIALIZED (
    SELECT qf.n, qf.r, qf.b, qf.a, qf.c, sn.slots[qf.k] AS slot, sn.number
      FROM numbered_jobs qf JOIN slots_by_number sn ON sn.b = qf.b AND sn.number = qf.want
     WHERE qf.k <= cardinality(sn.slots)),
any_jobs AS MATERIALIZED (
    SELECT q.*, row_number() OVER (PARTITION BY q.b ORDER BY q.n) AS k
      FROM claimable q WHERE q.want IS NULL),
slots_left AS MATERIALIZED (
    SELECT s.b, array_agg(s.slot ORDER BY s.nk, s.slot) AS slots,
           array_agg(s.number ORDER BY s.nk, s.slot) AS numbers
      FROM usable_slots s
     WHERE NOT EXISTS (SELECT 1 FROM numbered_pairs pf WHERE pf.b = s.b AND pf.slot = s.slot)
     GROUP BY s.b),
any_pairs AS MATERIALIZED (
    SELECT qu.n, qu.r, qu.b, qu.a, qu.c, sa.slots[qu.k] AS slot, sa.numbers[qu.k] AS number
      FROM any_jobs qu JOIN slots_left sa ON sa.b = qu.b WHERE qu.k <= cardinality(sa.slots)),
-- Each job that got a slot, with its slot and number.
pairs AS MATERIALIZED (
    SELECT * FROM numbered_pairs UNION ALL SELECT * FROM any_pairs),
-- The claims: recipient, lease (a new fencing token), call row.
claimed_recipients AS (
    UPDATE recipients SET status = 'dispatched', attempts = p.a, last_call_id = p.c,
           from_number = coalesce(recipients.from_number, p.number), updated_at = now()
      FROM pairs p WHERE recipients.id = p.r
       AND coalesce(recipients.status, '') = 'queued' AND recipients.attempts = p.a - 1
    RETURNING recipients.id, recipients.tenant_id, recipients.to_number,
              recipients.from_number, p.c, p.b, p.a, p.slot),
-- The dial's gate, in the claim's statement: under the batch's lock (FOR
-- SHARE above: a cancel or pause waits for this statement, and finds the
-- call 'dialing') and in the statement that takes the lease, so the dial
-- goes out as soon as the statement returns. It was a statement of its own
-- (dial_start_many), one more round trip and plan per turn before every
-- dial (bench/RESULTS.md, sixteenth session); paced dials sent again still
-- pass it there. The tenant's policy is applied at this last moment (a
-- number listed after its batch was accepted is not dialed), and the
-- call's credit hold is taken here, so a hold and a dial never diverge:
-- each tenant's usage row is locked (in id order: two workers never wait
-- on each other in a circle) and its calls are held in call id order while
-- the balance covers them. A call the policy or the balance stopped stays
-- 'claimed' and comes back with blocked set, for the worker to end it with
-- the rule or pause its batch.
gate AS MATERIALIZED (
    SELECT r.*, :gate AS blocked
      FROM claimed_recipients r),
usage AS MATERIALIZED (
    SELECT u.tenant_id, t.credits_cents - u.used_cents AS balance,
           t.price_per_min_cents AS price
      FROM credit_usage u JOIN tenants t ON t.id = u.tenant_id
     WHERE u.tenant_id IN (SELECT tenant_id FROM gate WHERE blocked IS NULL)
     ORDER BY u.tenant_id FOR UPDATE OF u),
-- Each claimed call with its hold (the calls the gate let through) and the
-- balance after it, carried from here through the lease's update to the
-- call's insert and the ledger: joined back by call id, these lists (a
-- turn's size each, estimated at a row) ran as nested loops, quadratic in
-- the turn (bench/RESULTS.md, eighteenth session).
holds AS MATERIALIZED (
    SELECT g.*, cu.price, bb.max_call_duration_min AS mins,
           CASE WHEN g.blocked IS NULL THEN :hold END AS hold,
           CASE WHEN g.blocked IS NULL
                THEN cu.balance - sum(:hold) OVER (PARTITION BY g.tenant_id, g.blocked IS NULL
                                                   ORDER BY g.c) END AS after
      FROM gate g JOIN dialable_batches bb ON bb.id = g.b
      LEFT JOIN usage cu ON cu.tenant_id = g.tenant_id AND g.blocked IS NULL),
taken_leases AS (
    UPDATE leases SET token = nextval('lease_token_seq'), holder = $2,
           call_id = h.c, expires_at = now() + make_interval(secs => $3::int)
      FROM holds h WHERE leases.batch_id = h.b AND leases.slot = h.slot
    RETURNING leases.slot, leases.token, h.c, h.id, h.b, h.tenant_id, h.a,
              h.to_number, h.from_number, h.hold, h.after, h.price, h.mins),
new_calls AS (
    INSERT INTO calls (id, recipient_id, batch_id, tenant_id, attempt, status,
                       lease_slot, lease_token, to_number, from_number, history,
                       agent_id, hold_cents, price_per_min_cents)
    SELECT l.c, l.id, l.b, l.tenant_id, l.a,
           CASE WHEN l.after >= 0 THEN 'dialing' ELSE 'claimed' END, l.slot, l.token,
           l.to_number, coalesce(l.from_number, bb.from_number),
           jsonb_build_array(jsonb_build_object('status', 'claimed', 'at', rfc3339_ms(now())))
             || CASE WHEN l.after >= 0
                     THEN jsonb_build_array(jsonb_build_object('status', 'dialing',
                                                               'at', rfc3339_ms(now())))
                     ELSE '[]'::jsonb END,
           bb.agent_id,
           CASE WHEN l.after >= 0 THEN l.hold END, CASE WHEN l.after >= 0 THEN l.price END
      FROM taken_leases l JOIN dialable_batches bb ON bb.id = l.b
    RETURNING id, tenant_id, to_number, from_number, lease_token, status),
-- The holds of the calls now 'dialing' (each lease taken is one call
-- inserted: the insert fails whole or adds them all), and their ledger rows.
held AS MATERIALIZED (
    SELECT c, tenant_id, b, hold, after, mins, price FROM taken_leases WHERE after >= 0),
usage_held AS (
    UPDATE credit_usage SET used_cents = used_cents + s.total
      FROM (SELECT tenant_id, sum(hold) AS total FROM held GROUP BY tenant_id) s
     WHERE credit_usage.tenant_id = s.tenant_id RETURNING 1),
ledger_held AS (
    INSERT INTO credit_ledger (tenant_id, kind, call_id, batch_id, cents, balance_after,
                               minutes, price_per_min_cents)
    SELECT tenant_id, 'hold', c, b, -hold, after, mins, price FROM held
     ORDER BY tenant_id, c RETURNING 1),
-- Outside calling hours: back to the backlog until they open, noting
-- whether the tenant's legal window is what holds it (legal_opens,
-- sql/0031_stop_reasons.sql), as the release does.
out_of_hours AS (
    UPDATE recipients SET released = false, next_attempt_at = jr.opens,
           window_wait = true,
           legal_opens = legal_wait(jb.lw, recipients.timezone, jb.timezone,
                                    recipients.to_number, jb.t),
           updated_at = now()
      FROM queued_jobs jr JOIN job_batches jb ON jb.id = jr.b
     WHERE jr.admitted AND NOT jr.open AND recipients.id = jr.r
       AND coalesce(recipients.status, '') = 'queued' AND recipients.attempts = jr.a - 1
    RETURNING recipients.id),
-- The gate's verdicts and the jobs that were claimable, each as one jsonb
-- object that the answer looks its jobs up in (a jsonb object's keys are
-- sorted: a binary search). Joined instead, these two lists ran as nested
-- loops against the jobs, quadratic in the turn, as above.
verdicts AS (
    SELECT jsonb_object_agg(c, blocked) AS by_call FROM gate),
could AS (
    SELECT jsonb_object_agg(n::text, true) AS by_job FROM claimable)
SELECT j.n, CASE WHEN ins.id IS NOT NULL THEN 'claimed'
                 WHEN u.id IS NOT NULL THEN 'hours'
                 WHEN could.by_job ? j.n::text THEN 'noslot' ELSE 'stale' END AS outcome,
       CASE WHEN ins.status = 'claimed'
            THEN coalesce(verdicts.by_call ->> j.c, :short) END AS blocked,
       ins.tenant_id, ins.to_number, ins.from_number, ins.lease_token,
       bb.ringing_timeout_s AS ring, bb.max_call_duration_min AS max_min,
       -- The agent leg, for claimed calls only: the agent's endpoint and
       -- the recipient's variables and metadata over the batch's.
       bb.agent_id, ag.endpoint, coalesce(bb.record, ag.record) AS record,
       CASE WHEN jsonb_typeof(rv.variables) = 'object' THEN bb.variables || rv.variables
            ELSE bb.variables END::text AS vars,
       CASE WHEN jsonb_typeof(rv.metadata) = 'object' THEN bb.metadata || rv.metadata
            ELSE bb.metadata END::text AS meta
  FROM jobs j CROSS JOIN verdicts CROSS JOIN could
       LEFT JOIN new_calls ins ON ins.id = j.c LEFT JOIN out_of_hours u ON u.id = j.r
       LEFT JOIN dialable_batches bb ON bb.id = j.b
       LEFT JOIN agents ag ON ins.id IS NOT NULL AND ag.id = bb.agent_id
       LEFT JOIN recipients rv ON ins.id IS NOT NULL AND rv.id = j.r;
