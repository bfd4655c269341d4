"""Which account sends a job, and when: slots per account, jobs waiting for one, the usage budget's charge.

A job is charged to the budget before it goes anywhere, waits in line for a slot on an account that can take it
(the owner of its message, for a button press), and is sent from the engine's task group so that a cancelled
tool call leaves it running. Accounts that stop hand the work that never started to the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ..config import Settings
from ..discord.gateway import GatewayFatal
from ..discord.rest import DiscordHTTPError, InvalidRequest
from ..discord.snowflake import make_snowflake
from ..models import JobStatus
from .accounts import Account, AccountError, describe_rest_error
from .budget import Budget, BudgetExceeded, Kind
from .store import Job, JobStore

log = logging.getLogger(__name__)


class EngineError(Exception):
    """Something the model must be told, in words it can act on."""


class Scheduling:
    """The accounts of the pool, their slots, the line of jobs waiting for one, and the budget's charges."""

    def __init__(self, settings: Settings, accounts: list[Account], budget: Budget | None) -> None:
        self.settings = settings
        self.accounts = accounts
        self.budget = budget if budget is not None and budget.enabled else None
        self.store = JobStore(max_finished=settings.store_limit)
        self._tg: TaskGroup | None = None
        self._waiting: list[tuple[Job, anyio.Event]] = []  # jobs waiting for an account slot, oldest first
        self._refused: set[tuple[str, str, int]] = set()  # (account, bucket, count) refused in this `_pump` pass

    @property
    def account_problem(self) -> str | None:
        """Account trouble the agent must hear about, one line; None when every account is fine."""
        problems = [
            f"{a.name}: {a.trouble}" if len(self.accounts) > 1 else str(a.trouble) for a in self.accounts if a.trouble
        ]
        return "; ".join(problems) or None

    async def ready(self) -> None:
        """Wait until at least one account has a gateway session, or explain why none can."""
        deadline = time.monotonic() + self.settings.gateway_ready_timeout
        while True:
            if any(a.usable for a in self.accounts):
                return
            if all(a.down for a in self.accounts):
                raise EngineError(f"No Discord account can take a job now: {self.account_problem}.")
            if time.monotonic() >= deadline:
                raise EngineError(
                    f"Could not open a Discord gateway session within {self.settings.gateway_ready_timeout:g}s "
                    f"(API base {self.settings.api_base}). Check the network and MJ_DISCORD_API_BASE, then retry."
                )
            await anyio.sleep(0.05)

    def _spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self._tg is None:
            raise EngineError("the engine is not running")
        self._tg.start_soon(fn, *args)

    def account(self, name: str | None) -> Account:
        for account in self.accounts:
            if account.name == name:
                return account
        return self.accounts[0]

    def _least_loaded(self) -> Account:
        usable = [a for a in self.accounts if a.usable] or self.accounts
        return min(usable, key=lambda a: (a.active / max(1, a.capacity), a.index))

    def accounts_status(self) -> list[dict[str, Any]]:
        return [a.status() for a in self.accounts]

    # --- scheduling and submission ------------------------------------------------------------------------------------

    async def _submit(self, job: Job) -> None:
        """Queue the job for an account slot and send it from the engine's task group.

        Returns once Discord accepted the interaction, or at once when the job has to wait for a slot; raises
        `EngineError` when Discord refused the request itself (bad token, no access...).
        """
        accepted = anyio.Event()
        outcome: list[EngineError] = []
        try:
            self._spawn(self._send, job, accepted, outcome)
        except EngineError as exc:
            self._finish(job, error=str(exc))
            raise
        await accepted.wait()
        if outcome:
            raise outcome[0]

    async def _send(self, job: Job, accepted: anyio.Event, outcome: list[EngineError]) -> None:
        try:
            account = await self._acquire(job, accepted)
            if account is None:
                return  # failed while waiting (its account went down); the job says why
            await self._interact(account, job)
            account.jobs_sent += 1
            job.submitted = job.reached_discord = True
            job.touch()
        except (DiscordHTTPError, AccountError) as exc:
            text = (
                str(exc)
                if isinstance(exc, AccountError)
                else describe_rest_error(exc, self.account(job.account) if job.account else None)
            )
            outcome.append(EngineError(text))
            self._finish(job, error=text)
        finally:
            accepted.set()

    async def _interact(self, account: Account, job: Job) -> None:
        """Send the job's interaction, healing what Discord may throw at it on the way: a stale command version
        (refresh the index, retry once), a gateway session that just died (wait for the new one, retry), and an
        answer lost on the network (resend only if the gateway never echoed our nonce)."""
        assert job.body is not None
        command = await account.command(job.command_name) if job.command_name else None
        refreshed = False
        for attempt in range(3):
            if not account.gateway.ready:
                try:
                    await account.gateway.wait_ready(self.settings.gateway_ready_timeout)
                except (GatewayFatal, TimeoutError) as exc:
                    raise AccountError(f"The Discord gateway of account {account.name!r} is down: {exc}") from None
            try:
                body = job.body(account, job.nonce, command)
                await account.rest.interaction(body, confirm=partial(self._echoed, job))
                return
            except InvalidRequest as exc:
                if exc.stale_command and job.command_name and not refreshed:
                    # Midjourney updated its command: read the index afresh and retry once.
                    log.info("stale /%s version: refreshing the command index", job.command_name)
                    command = await account.command(job.command_name, refresh=True)
                    refreshed = True
                elif exc.invalid_session and attempt < 2:
                    log.info("interaction named a gateway session that just ended: retrying on the new one")
                    await anyio.sleep(0.5)
                else:
                    raise

    async def _echoed(self, job: Job, seconds: float = 1.5, *, since: str | None = None) -> bool:
        """Whether Discord took an interaction whose answer was lost: the gateway echoes its nonce at once.

        `since` is the job's interaction id before this one (a form's submit follows the press that opened it).
        """
        deadline = time.monotonic() + seconds
        while job.interaction_id in (None, since) and job.progress_message_id is None and job.in_flight:
            if time.monotonic() >= deadline:
                return False
            await anyio.sleep(0.05)
        return True

    async def _acquire(self, job: Job, accepted: anyio.Event) -> Account | None:
        """Wait for a slot on a usable account (the job's own account for a button press)."""
        granted = anyio.Event()
        self._waiting.append((job, granted))
        self._pump()
        if not granted.is_set():
            job.queued_note = "held by the server until an account has a free slot"
            job.touch(progressed=False)
            accepted.set()  # the caller returns now; this task sends the job when a slot frees
            await granted.wait()
        if job.status.finished:
            return None
        return self.account(job.account)

    def _pump(self) -> None:
        """Give free slots to waiting jobs, oldest first; fail jobs no account will ever take."""
        if not self._waiting:
            return
        self._refused.clear()  # per pass: an account whose own budget refused a charge is not asked again
        # This runs at every submission and every release. With no slot free anywhere and no account down, no
        # waiting job can be placed or failed: stop there (scanning every waiting job each time was O(n²) in a
        # burst). Finished jobs further down the line are dropped when the line reaches them.
        any_down = any(a.down for a in self.accounts)
        if not any_down and not self._any_slot():
            return
        waiting = self._waiting
        still: list[tuple[Job, anyio.Event]] = []
        for position, (job, granted) in enumerate(waiting):
            if job.status.finished:
                granted.set()
                continue
            if not any_down and not self._any_slot():
                still.extend(waiting[position:])
                break
            chosen = self._pick(job)
            if chosen is None:
                reason = self._never(job)
                if reason:
                    job.fail(reason)
                    self._refund(job)
                    self.store.finished(job)
                    granted.set()
                else:
                    still.append((job, granted))
                continue
            chosen.active += 1
            job.account = chosen.name
            job.holds_slot = True
            job.queued_note = None
            granted.set()
        self._waiting = still

    def _any_slot(self) -> bool:
        return any(a.usable and a.has_slot for a in self.accounts)

    def _pick(self, job: Job) -> Account | None:
        if job.pinned_account:
            account = self.account(job.pinned_account)
            return account if account.usable and account.has_slot else None
        free = [a for a in self.accounts if a.usable and a.has_slot]
        if not free:
            return None
        if job.spend is None or not self._budget_per_account:
            # The least loaded account, by share of its capacity: keeps every account busy.
            return min(free, key=lambda a: (a.active / a.capacity, a.index))
        # Accounts have budgets of their own: the job's charge moves to the account that runs it, if that one's
        # budget takes it (the account it was charged to always does).
        for account in sorted(free, key=lambda a: (a.active / a.capacity, a.index)):
            if self._charge(job, account):
                return account
        return None

    def _never(self, job: Job) -> str | None:
        if job.pinned_account:
            down = self.account(job.pinned_account).down
            return f"The account that owns this message cannot be used: {down}" if down else None
        if all(a.down for a in self.accounts):
            return f"No Discord account can take the job: {self.account_problem}"
        if job.spend is not None and self.budget is not None and self._budget_per_account:
            spend = job.spend
            if self.account(spend.account).down and not any(
                a.down is None and self._fits(spend, a.name) for a in self.accounts
            ):
                return (
                    f"The account charged for this job stopped ({self.account(spend.account).down}) and every "
                    "account still up has used its own budget: try again when one frees up (the account tool shows "
                    "each account's budget)."
                )
        return None

    def _release_slot(self, job: Job) -> None:
        if job.holds_slot:
            job.holds_slot = False
            self.account(job.account).active -= 1
            self._pump()

    def _finish(self, job: Job, *, error: str | None = None) -> None:
        if error is not None:
            job.fail(error)
        elif job.status is not JobStatus.COMPLETED:
            job.complete()
        self._release_slot(job)
        self.store.finished(job)
        self._refund(job)  # only when it never reached Discord

    def _account_down(self, account: Account) -> None:
        """An account stopped: requeue its jobs that never started elsewhere; fail those that cannot move."""
        reason = account.down or "the account stopped"
        log.warning("account %s is down: %s", account.name, reason)
        for job in self.store.running():
            if job.account != account.name or not job.submitted:
                continue
            movable = job.command_name is not None and job.progress == 0 and job.job_uuid is None
            if movable and any(a.down is None for a in self.accounts if a is not account):
                self._release_slot(job)
                job.nonce = make_snowflake()
                self.store.index(job, job.nonce)
                job.account, job.submitted, job.interaction_id, job.progress_message_id = None, False, None, None
                job.status = JobStatus.QUEUED
                job.touch()
                self._spawn(self._send, job, anyio.Event(), [])
            else:
                self._finish(job, error=f"The account running this job stopped mid-job: {reason}")
        self._pump()

    async def _watchdog(self) -> None:
        """Fail jobs that made no progress for `job_timeout` seconds: nothing stays in progress forever."""
        period = max(0.2, min(5.0, self.settings.job_timeout / 10))
        while True:
            await anyio.sleep(period)
            now = time.monotonic()
            for job in self.store.running():
                if job.submitted and now - job.updated > self.settings.job_timeout:
                    self._finish(
                        job,
                        error=f"Timed out: no progress from Midjourney for {self.settings.job_timeout:g}s. "
                        "Check the Midjourney channel in Discord; the job may have been dropped.",
                    )
            # Accounts that came back (or were set free) take waiting work.
            self._pump()

    # --- the usage budget ---------------------------------------------------------------------------------------------

    @property
    def _budget_per_account(self) -> bool:
        return self.budget is not None and self.budget.per_account

    def _reserve(self, job: Job, cost: Kind | None, count: int = 1) -> None:
        """Charge the budget for a job before it goes anywhere: the count is exact under concurrent calls.

        Charged to the account that will most likely run it, among those whose own budget has room; raises
        `BudgetExceeded` (with when it frees up) when no account's does, or the total is spent.
        """
        if cost is None or self.budget is None:
            return
        if job.pinned_account:
            candidates = [self.account(job.pinned_account)]
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

    def _charge(self, job: Job, account: Account) -> bool:
        """Move the job's charge to `account`, if its own budget takes it."""
        if self.budget is None or job.spend is None or job.spend.account == account.name:
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

    def _fits(self, spend: Any, account: str) -> bool:
        assert self.budget is not None
        try:
            return self.budget.fits(spend, account)
        except Exception:  # a failing budget file: let the job wait rather than fail it
            log.exception("could not read the budget of account %s", account)
            return True

    def _refund(self, job: Job) -> None:
        """Give a job's charge back when it never reached Discord; forget it either way (the job is done)."""
        reached = job.reached_discord or job.interaction_id or job.progress_message_id or job.result_message_id
        spend, job.spend = job.spend, None
        if spend is not None and self.budget is not None and not reached:
            try:
                self.budget.refund(spend)
            except Exception:  # never let the budget's file break a job's ending
                log.exception("could not give a budget charge back")
