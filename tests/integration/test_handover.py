"""A draining batch's slots reach its tenant's waiting batch as its calls
end, not at the scheduler's next pass: a worker that ends a call of a batch
with no job left waiting tells the scheduler (bc_lease.h's channel), whose
wait for the next pass ends there (bc_scheduler_wait). With a pass every
10 s, the waiting batch is admitted and claimed within a second of the
draining batch's ends; before, it waited for the pass."""
from test_dispatch import all_terminal, extra, ledger  # noqa: F401 (extra: a fixture)
from test_fair_reservations import apac_tenant, cartesia, numbers


def test_a_waiting_batch_starts_as_the_draining_ones_calls_end_not_at_the_pass(stack, extra):
    p = extra.start("sim-handover", "batchcall-carrier-sim", {
        "BC_SIM_MS_PER_SECOND": "100", "BC_SIM_RING_SECONDS": "1",
        "BC_SIM_TALK_SECONDS": "8-12", "BC_SIM_MIX": "completed=1"})
    sim = f"http://127.0.0.1:{p.port}"
    env = {"BC_REGION": "apac", "BC_CARRIER_URL": sim}
    extra.start("sched-handover", "batchcall-scheduler", dict(env, BC_SCHEDULER_TICK_MS="10000"))
    extra.start("w-handover", "batchcall-worker", env)
    t = apac_tenant(stack, 4)
    # 8 recipients at 4 at once fill the tenant: two waves of calls of ~1 s.
    big = cartesia(stack, t, numbers("530", 8), 4)
    small = cartesia(stack, t, numbers("531", 4), 4)
    assert small["status"] == "pending"
    all_terminal(stack, big["id"], 60)
    all_terminal(stack, small["id"], 60)
    ends = [r[0] for r in stack.sql(
        "SELECT ended_at FROM calls WHERE batch_id = %s ORDER BY ended_at", big["id"])]
    assert len(ends) == 8, ends
    # From the fifth end on, the big batch had no job left waiting: each end
    # gave a slot back to the tenant, for the small batch.
    first_claim = stack.sql("SELECT min(created_at) FROM calls WHERE batch_id = %s",
                            small["id"])[0][0]
    late = (first_claim - ends[4]).total_seconds()
    assert late < 1.0, f"the waiting batch's first claim came {late:.2f} s after the slot was free"
    led = ledger(stack, sim)
    assert led["tenants"][t["tenant_id"]]["peak_live"] <= 4
    assert led["batches"][big["id"]]["peak_live"] <= 4
