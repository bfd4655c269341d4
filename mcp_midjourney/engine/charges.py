"""The usage budget's charges on jobs: taken before a job goes anywhere, moved to the account that runs it, given
back only when Discord never had the job. The budget's own arithmetic and storage are in budget.py."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import anyio

from .accounts import Account
from .budget import Budget, BudgetExceeded, Kind
from .errors import EngineError
from .state import StateError
from .store import Job

log = logging.getLogger(__name__)


class Charges:
    """A pool's budget as the scheduler and the engine use it (every method is a no-op without a budget)."""

    def __init__(
        self,
        budget: Budget | None,
        accounts: Sequence[Account],
        *,
        spawn: Callable[..., None] | None = None,
    ) -> None:
        self.budget = budget if budget is not None and budget.enabled else None
        self.accounts = accounts
        self._refused: set[tuple[str, str, int]] = set()  # (account, bucket, count) refused in this pass
        # Starts a task in the engine's task group: a refund runs off the event loop, retried while the shared state
        # is away. It raises EngineError when the engine is not running: the refund is done here and now then.
        self._spawn = spawn

    async def reserve_off_loop(self, job: Job, cost: Kind | None, count: int = 1) -> None:
        """`reserve` in a worker thread: the budget's store may be a file or a server away."""
        if cost is not None and self.budget is not None:
            await anyio.to_thread.run_sync(self.reserve, job, cost, count)

    async def retrying(self, fn: Callable[[], None]) -> None:
        """Run `fn` in a worker thread until the shared state takes it (a refund is never lost to an outage)."""
        delay = 0.5
        for _attempt in range(40):  # about 20 minutes of outage
            try:
                await anyio.to_thread.run_sync(fn)
                return
            except StateError as exc:
                log.warning("a budget refund waits for the shared state: %s", exc)
            except Exception:
                log.exception("could not give a budget charge back")
                return
            await anyio.sleep(delay)
            delay = min(30.0, delay * 2)
        log.error("a budget refund was dropped after 40 attempts: the shared state stayed unreachable")

    @property
    def per_account(self) -> bool:
        """Whether accounts have budgets of their own (a job's charge then follows it)."""
        return self.budget is not None and self.budget.per_account

    def _account(self, name: str) -> Account:
        return next((a for a in self.accounts if a.name == name), self.accounts[0])

    def reserve(self, job: Job, cost: Kind | None, count: int = 1) -> None:
        """Charge the budget for a job before it goes anywhere: the count is exact under concurrent calls.

        Charged to the account that will most likely run it, among those whose own budget has room; raises
        `BudgetExceeded` (with when it frees up) when no account's does, or the total is spent.
        """
        if cost is None or self.budget is None:
            return
        if job.pinned_account:
            candidates = [self._account(job.pinned_account)]
        else:
            candidates = sorted(
                (a for a in self.accounts if a.down is None),
                key=lambda a: (not (a.usable and a.has_slot), a.active / a.capacity, a.index),
            ) or [self.accounts[0]]
        refusals: list[BudgetExceeded] = []
        for account in candidates:
            try:
                job.spend = self.budget.spend(cost, account.name, count=count)
                return
            except BudgetExceeded as exc:
                refusals.append(exc)
                if exc.scope == "total":
                    break  # the total limit: every account gets the same answer
        first = min(refusals, key=lambda exc: exc.frees_at)
        if len(refusals) > 1 and first.scope != "total":
            raise BudgetExceeded(f"No account has budget left. {first}", first.frees_at, first.scope)
        raise first

    def new_pass(self) -> None:
        """A new pass of the scheduler over its line: ask every account's budget afresh."""
        self._refused.clear()

    def can_run(self, job: Job, account: Account) -> bool:
        """Whether the job may run on `account`: its charge moves there if that account's own budget takes it."""
        if not self.per_account or self.budget is None or job.spend is None or job.spend.account == account.name:
            return True
        key = (account.name, job.spend.bucket, job.spend.count)
        if key in self._refused:
            return False
        try:
            job.spend = self.budget.move(job.spend, account.name)
        except BudgetExceeded:
            self._refused.add(key)
            return False
        except Exception:  # the budget's file failing must not stop scheduling: run it where it was charged
            log.exception("could not move a budget charge to account %s", account.name)
            return False
        return True

    def stranded(self, job: Job) -> str | None:
        """Why a job can never run for budget reasons: its account stopped and no account up has room for it."""
        spend = job.spend
        if spend is None or self.budget is None or not self.per_account or not self._account(spend.account).down:
            return None
        if any(a.down is None and self._fits(spend, a.name) for a in self.accounts):
            return None
        return (
            f"The account charged for this job stopped ({self._account(spend.account).down}) and every account "
            "still up has used its own budget: try again when one frees up (the account tool shows each account's "
            "budget)."
        )

    def _fits(self, spend: object, account: str) -> bool:
        assert self.budget is not None
        try:
            return self.budget.fits(spend, account)  # type: ignore[arg-type]
        except Exception:  # a failing budget file: let the job wait rather than fail it
            log.exception("could not read the budget of account %s", account)
            return True

    def settle(self, job: Job) -> None:
        """A job ended: give its charge back if it never reached Discord; forget it either way."""
        reached = job.reached_discord or job.interaction_id or job.progress_message_id or job.result_message_id
        spend, job.spend = job.spend, None
        if spend is not None and self.budget is not None and not reached:
            budget = self.budget

            def refund() -> None:
                budget.refund(spend)

            if self._spawn is not None:
                with contextlib.suppress(EngineError):
                    self._spawn(self.retrying, refund)
                    return
            try:
                refund()
            except Exception:  # never let the budget's store break a job's ending
                log.exception("could not give a budget charge back")
