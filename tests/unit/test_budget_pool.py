"""Budgets of single accounts in scheduling, with no engine and no network: a job is charged to an account whose
own budget has room, its charge follows it to the account that runs it (only if that one's budget takes it), a job
that never reaches Discord gives its charge back, and the scheduler grants slots oldest first."""

from __future__ import annotations

import json
from dataclasses import dataclass

import anyio
import pytest

from mcp_midjourney.config import load_settings
from mcp_midjourney.engine.budget import Budget, BudgetExceeded, BudgetLimits, Limits
from mcp_midjourney.engine.charges import Charges
from mcp_midjourney.engine.engine import Engine, EngineError
from mcp_midjourney.engine.scheduler import Scheduler
from mcp_midjourney.engine.store import Job
from tests.conftest import session_ready


@dataclass
class Slot:
    """An account as the scheduler and the charges see it (Account has the same face)."""

    name: str
    index: int
    active: int = 0
    capacity: int = 1
    down: str | None = None
    connected: bool = True

    @property
    def usable(self) -> bool:
        return self.down is None and self.connected

    @property
    def has_slot(self) -> bool:
        return self.active < self.capacity


def pool(limits: dict[str, Limits], total: Limits | None = None) -> tuple[Charges, Scheduler[Slot], list[Slot]]:
    accounts = [Slot("a", 0), Slot("b", 1)]
    charges = Charges(Budget(BudgetLimits(total=total or Limits(), accounts=limits), None), accounts)  # type: ignore[arg-type]
    never = lambda job: "No Discord account can take the job" if all(a.down for a in accounts) else None  # noqa: E731
    scheduler = Scheduler(accounts, can_run=charges.can_run, never=never, new_pass=charges.new_pass)  # type: ignore[arg-type]
    return charges, scheduler, accounts


def job(n: int) -> Job:
    return Job(nonce=f"{n}", kind="imagine", prompt=f"job {n}")


def test_a_job_is_charged_where_the_budget_has_room_and_waits_rather_than_overspend() -> None:
    charges, scheduler, (a, b) = pool({"a": Limits(jobs_per_hour=1)})
    first, second = job(1), job(2)
    charges.reserve(first, "job")
    assert first.spend.account == "a"  # both free: the first account
    assert scheduler.pick(first) is a
    a.active += 1
    charges.reserve(second, "job")
    assert second.spend.account == "b"  # a's own budget is spent
    a.active, b.active = 0, 1  # a frees up first, but its budget is spent: the job waits for b
    assert scheduler.pick(second) is None
    b.active = 0
    assert scheduler.pick(second) is b
    assert charges.budget is not None and charges.budget.remaining("a")["jobs_this_hour"] == 0


def test_a_charge_moves_with_the_job_when_another_account_frees_up_first() -> None:
    charges, scheduler, (a, b) = pool({"a": Limits(jobs_per_hour=2), "b": Limits(jobs_per_hour=2)})
    queued = job(1)
    charges.reserve(queued, "job")
    assert queued.spend.account == "a"
    a.active = 1  # a got busy before the job's turn came: b runs it, and b's budget pays
    assert scheduler.pick(queued) is b
    assert queued.spend.account == "b"
    assert charges.budget is not None
    assert charges.budget.remaining("a")["jobs_this_hour"] == 2
    assert charges.budget.remaining("b")["jobs_this_hour"] == 1


def test_when_no_account_has_budget_left_the_refusal_says_when_one_frees_up() -> None:
    charges, _scheduler, _accounts = pool({"a": Limits(jobs_per_hour=1), "b": Limits(jobs_per_hour=1)})
    charges.reserve(job(1), "job")
    charges.reserve(job(2), "job")
    with pytest.raises(BudgetExceeded) as refused:
        charges.reserve(job(3), "job")
    assert str(refused.value).startswith("No account has budget left.")
    assert "frees up at" in str(refused.value)


def test_the_total_limit_refuses_once_whatever_the_accounts() -> None:
    charges, _scheduler, _accounts = pool({"a": Limits(jobs_per_day=9)}, total=Limits(jobs_per_hour=1))
    charges.reserve(job(1), "job")
    with pytest.raises(BudgetExceeded, match="MJ_MAX_JOBS_PER_HOUR") as refused:
        charges.reserve(job(2), "job")
    assert "frees up" in str(refused.value) and "No account has budget left" not in str(refused.value)


def test_slots_go_oldest_first_and_a_release_hands_the_slot_on() -> None:
    _charges, scheduler, (a, b) = pool({})
    jobs = [job(n) for n in range(4)]
    grants = [scheduler.enqueue(j)[0] for j in jobs]
    assert [g.is_set() for g in grants] == [True, True, False, False]
    assert (jobs[0].account, jobs[1].account) == ("a", "b") and a.active == b.active == 1
    assert scheduler.waiting() == jobs[2:]
    scheduler.release(jobs[1])  # b frees: the oldest waiting job takes it, the youngest still waits
    assert grants[2].is_set() and jobs[2].account == "b" and not grants[3].is_set()
    assert scheduler.release(job(99)) == [] and b.active == 1  # a job that holds no slot gives none back


def test_a_queued_job_that_can_never_run_is_handed_back_with_why() -> None:
    charges, scheduler, accounts = pool({"a": Limits(jobs_per_hour=1)})
    doomed = job(1)
    charges.reserve(doomed, "job")
    for account in accounts:
        account.active = account.capacity
    granted, never = scheduler.enqueue(doomed)
    assert not granted.is_set() and never == []
    for account in accounts:
        account.down = "authentication failed (made up)"
    assert scheduler.pump() == [(doomed, "No Discord account can take the job")] and granted.is_set()
    assert scheduler.waiting() == []
    charges.settle(doomed)  # what the engine does with such a job: it never reached Discord
    assert charges.budget is not None and charges.budget.remaining("a")["jobs_this_hour"] == 1


def test_a_job_discord_took_keeps_its_charge_even_if_it_fails() -> None:
    charges, _scheduler, _accounts = pool({"a": Limits(jobs_per_hour=1)})
    taken = job(1)
    charges.reserve(taken, "job")
    taken.interaction_id = "1300000000000000001"  # the gateway echoed it: Discord has it
    charges.settle(taken)
    assert charges.budget is not None and charges.budget.remaining("a")["jobs_this_hour"] == 0
    assert taken.spend is None  # settled once: a second settle cannot refund it


def test_a_job_moved_off_a_stopped_account_keeps_its_charge_if_discord_had_it() -> None:
    charges, _scheduler, _accounts = pool({"a": Limits(jobs_per_hour=1)})
    moved = job(1)
    charges.reserve(moved, "job")
    moved.reached_discord = True  # sent once; the requeue cleared submitted and the interaction id
    charges.settle(moved)
    assert charges.budget is not None and charges.budget.remaining("a")["jobs_this_hour"] == 0


@pytest.mark.anyio
async def test_a_job_the_engine_cannot_send_fails_and_gives_its_charge_back() -> None:
    accounts = [{"name": "a", "token": "made-up-token-a-abcdef", "channel_id": "100000000000000001"}]
    settings = load_settings({"MJ_ACCOUNTS": json.dumps(accounts)})
    engine = Engine(
        settings, budget=Budget(BudgetLimits(total=Limits(), accounts={"a": Limits(jobs_per_hour=1)}), None)
    )
    session_ready(engine.accounts[0].gateway)  # a session, but the engine was never run: no task group to send from
    with anyio.fail_after(5), pytest.raises(EngineError, match="not running"):
        await engine.imagine("never sent", cost="job")
    assert engine.budget is not None and engine.budget.remaining("a")["jobs_this_hour"] == 1
    assert not engine.store.running()
