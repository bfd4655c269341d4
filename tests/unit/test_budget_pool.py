"""Budgets of single accounts in the engine's scheduling: a job is charged to an account whose own budget has
room, its charge follows it to the account that runs it (only if that one's budget takes it), and a job that never
reaches Discord gives its charge back."""

from __future__ import annotations

import json

import anyio
import pytest

from mcp_midjourney.config import load_settings
from mcp_midjourney.engine.budget import Budget, BudgetExceeded, BudgetLimits, Limits
from mcp_midjourney.engine.engine import Engine, EngineError
from mcp_midjourney.engine.store import Job

pytestmark = pytest.mark.anyio


def pool(limits: dict[str, Limits], total: Limits | None = None) -> Engine:
    accounts = [
        {"name": name, "token": f"made-up-token-{name}-abcdef", "channel_id": f"10000000000000000{i}"}
        | {"concurrency": 1, "queue_size": 0}
        for i, name in enumerate(("a", "b"), start=1)
    ]
    settings = load_settings({"MJ_ACCOUNTS": json.dumps(accounts)})
    budget = Budget(BudgetLimits(total=total or Limits(), accounts=limits), None)
    engine = Engine(settings, budget=budget)
    for account in engine.accounts:
        account.gateway._set_ready(True)  # as after READY, without a network
    return engine


def job(n: int) -> Job:
    return Job(nonce=f"{n}", kind="imagine", prompt=f"job {n}")


async def test_a_job_is_charged_where_the_budget_has_room_and_waits_rather_than_overspend() -> None:
    engine = pool({"a": Limits(jobs_per_hour=1)})
    a, b = engine.accounts
    first, second = job(1), job(2)
    engine._reserve(first, "job")
    assert first.spend.account == "a"  # both free: the first account
    assert engine._pick(first) is a
    a.active += 1
    engine._reserve(second, "job")
    assert second.spend.account == "b"  # a's own budget is spent
    a.active, b.active = 0, 1  # a frees up first, but its budget is spent: the job waits for b
    assert engine._pick(second) is None
    b.active = 0
    assert engine._pick(second) is b
    assert engine.budget is not None and engine.budget.remaining("a")["jobs_this_hour"] == 0


async def test_a_charge_moves_with_the_job_when_another_account_frees_up_first() -> None:
    engine = pool({"a": Limits(jobs_per_hour=2), "b": Limits(jobs_per_hour=2)})
    a, b = engine.accounts
    queued = job(1)
    engine._reserve(queued, "job")
    assert queued.spend.account == "a"
    a.active = 1  # a got busy before the job's turn came: b runs it, and b's budget pays
    assert engine._pick(queued) is b
    assert queued.spend.account == "b"
    assert engine.budget is not None
    assert engine.budget.remaining("a")["jobs_this_hour"] == 2
    assert engine.budget.remaining("b")["jobs_this_hour"] == 1


async def test_when_no_account_has_budget_left_the_refusal_says_when_one_frees_up() -> None:
    engine = pool({"a": Limits(jobs_per_hour=1), "b": Limits(jobs_per_hour=1)})
    engine._reserve(job(1), "job")
    engine._reserve(job(2), "job")
    with pytest.raises(BudgetExceeded) as refused:
        engine._reserve(job(3), "job")
    assert str(refused.value).startswith("No account has budget left.")
    assert "frees up at" in str(refused.value)


async def test_the_total_limit_refuses_once_whatever_the_accounts() -> None:
    engine = pool({"a": Limits(jobs_per_day=9)}, total=Limits(jobs_per_hour=1))
    engine._reserve(job(1), "job")
    with pytest.raises(BudgetExceeded, match="MJ_MAX_JOBS_PER_HOUR") as refused:
        engine._reserve(job(2), "job")
    assert "frees up" in str(refused.value) and "No account has budget left" not in str(refused.value)


async def test_a_queued_job_that_can_never_run_gives_its_charge_back() -> None:
    engine = pool({"a": Limits(jobs_per_hour=1)})
    doomed = job(1)
    engine._reserve(doomed, "job")
    assert engine.budget is not None and engine.budget.remaining("a")["jobs_this_hour"] == 0
    for account in engine.accounts:
        account.gateway.fatal = "authentication failed (made up)"
    granted = anyio.Event()
    engine.store.add(doomed)
    engine._waiting.append((doomed, granted))
    engine._pump()
    assert granted.is_set() and doomed.status.finished and "No Discord account" in (doomed.error or "")
    assert engine.budget.remaining("a")["jobs_this_hour"] == 1


async def test_a_job_discord_took_keeps_its_charge_even_if_it_fails() -> None:
    engine = pool({"a": Limits(jobs_per_hour=1)})
    taken = job(1)
    engine._reserve(taken, "job")
    engine.store.add(taken)
    taken.interaction_id = "1300000000000000001"  # the gateway echoed it: Discord has it
    engine._finish(taken, error="Midjourney refused the job (made up)")
    assert engine.budget is not None and engine.budget.remaining("a")["jobs_this_hour"] == 0


async def test_a_job_the_engine_cannot_send_fails_and_gives_its_charge_back() -> None:
    engine = pool({"a": Limits(jobs_per_hour=1)})  # never started: no task group to send from
    with pytest.raises(EngineError, match="not running"):
        await engine.imagine("never sent", cost="job")
    assert engine.budget is not None and engine.budget.remaining("a")["jobs_this_hour"] == 1
    assert all(job.status.finished for job in engine.store.running()) and not engine.store.running()


async def test_a_job_moved_off_a_stopped_account_keeps_its_charge_if_discord_had_it() -> None:
    engine = pool({"a": Limits(jobs_per_hour=1)})
    moved = job(1)
    engine._reserve(moved, "job")
    engine.store.add(moved)
    moved.reached_discord = True  # sent once; the requeue cleared submitted and the interaction id
    engine._finish(moved, error="The account charged for this job stopped (made up)")
    assert engine.budget is not None and engine.budget.remaining("a")["jobs_this_hour"] == 0
