"""The engine's facade: submit jobs, press buttons, follow jobs, and wake whoever waits.

Requests go down and events come up: a tool call sends an interaction (Discord answers 204) and then waits on its
job; the gateway's events resolve the job. The facade wires its parts and is the only place a job starts or ends:
`correlate` (pure: which job an event belongs to, what it does), `Scheduler` (no I/O: slots and the line),
`Charges` (the budget's charge on a job), `Sender` (one interaction and its retries) and `Recovery` (what Discord
still knows when we do not). Everything that must outlive a tool call runs in the engine's own task group, so a
cancelled call leaves its job running and `get` finds it later.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .. import midjourney as mj
from ..config import Settings
from ..discord.rest import DiscordHTTPError
from ..discord.snowflake import make_snowflake
from ..models import JobStatus
from .accounts import Account, AccountError, describe_rest_error
from .budget import Budget, Kind
from .charges import Charges
from .correlate import BOT_IDS, WANTED_EVENTS
from .errors import EngineError
from .events import Events
from .lookup import Lookup, choose_button
from .recovery import Recovery
from .scheduler import Scheduler
from .sender import Sender
from .sharing import Sharing
from .state import StateBackend, StateError
from .store import ButtonPress, Job, JobStore, ProgressHook, SlashCommand, wait_for

__all__ = ["Engine", "EngineError", "ProgressHook"]

log = logging.getLogger(__name__)

Ended = list[tuple[Job, str]]  # jobs the scheduler found unable to ever run, with why


class Engine:
    """Midjourney through a pool of Discord accounts (one or more), each in its own channel."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Any = None,
        budget: Budget | None = None,
        shared: StateBackend | None = None,
    ) -> None:
        self.settings = settings
        self.store = JobStore(max_finished=settings.store_limit)
        self._tg: TaskGroup | None = None
        self.events = Events(self.store, cdn_base=settings.cdn_base, end=self._end, pump=self._pump)
        self.accounts = [
            Account(
                i,
                spec,
                settings,
                dispatch=self.events.dispatch_from,
                on_ready=self._on_ready,
                wanted_events=WANTED_EVENTS,
                authors=BOT_IDS,  # only the bots' messages start or move jobs
                transport=transport,
            )
            for i, spec in enumerate(settings.account_list())
        ]
        self.charges = Charges(budget, self.accounts, spawn=self._spawn)
        self.sharing = Sharing(shared, settings, self.store, self.accounts, self._spawn)  # what servers share
        self.budget = self.charges.budget
        self.scheduler = Scheduler(
            self.accounts, can_run=self.charges.can_run, never=self._never, new_pass=self.charges.new_pass
        )
        self.sender = Sender(settings)
        self.recovery = Recovery(self.accounts, self.store)
        self.lookup = Lookup(self.store, self.recovery, self.events, self.accounts, self.ready, self.sharing.find)
        self.dispatch_from = self.events.dispatch_from  # one gateway dispatch of an account (never raises)
        self.dispatch = functools.partial(self.events.dispatch_from, self.accounts[0])  # as the first account's

    # --- the pool ------------------------------------------------------------------------------------------

    def account(self, name: str | None) -> Account:
        """The account of that name (the first one when there is none)."""
        return next((a for a in self.accounts if a.name == name), self.accounts[0])

    def accounts_status(self) -> list[dict[str, Any]]:
        return [a.status() for a in self.accounts]

    @property
    def account_problem(self) -> str | None:
        """Account trouble the agent must hear about, one line; None when every account is fine."""
        several = len(self.accounts) > 1
        return (
            "; ".join(f"{a.name}: {a.trouble}" if several else str(a.trouble) for a in self.accounts if a.trouble)
            or None
        )

    async def ready(self) -> None:
        """Wait until at least one account has a gateway session, or explain why none can."""
        deadline = time.monotonic() + self.settings.gateway_ready_timeout
        while not any(a.usable for a in self.accounts):
            if all(a.down for a in self.accounts):
                raise EngineError(f"No Discord account can take a job now: {self.account_problem}.")
            if time.monotonic() >= deadline:
                raise EngineError(
                    f"Could not open a Discord gateway session within {self.settings.gateway_ready_timeout:g}s "
                    f"(API base {self.settings.api_base}). Check the network and MJ_DISCORD_API_BASE, then retry."
                )
            await anyio.sleep(0.05)

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every account's gateway and the watchdog until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for account in self.accounts:
                    tg.start_soon(self._run_account, account)
                tg.start_soon(self._watchdog)
                self.sharing.start(tg)
                task_status.started()
        finally:
            self._tg = None
            for job in self.scheduler.waiting():
                self.charges.settle(job)  # held by the server, never sent: the stop gives the charge back
            with anyio.CancelScope(shield=True):
                for account in self.accounts:
                    await account.rest.aclose()

    async def _run_account(self, account: Account) -> None:
        await account.gateway.run()
        # run() returns only on a final close (bad token, banned...): move its work elsewhere.
        self._account_down(account)

    def _spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self._tg is None:
            raise EngineError("the engine is not running")
        self._tg.start_soon(fn, *args)

    # --- what the tools call -------------------------------------------------------------------------------

    async def imagine(self, prompt: str, *, cost: Kind | None = None, count: int = 1) -> Job:
        """Send /imagine on the account with the most room; return once Discord accepted it (or it waits).

        `cost` charges the budget (`count` jobs: a --repeat prompt runs several); `BudgetExceeded` when it is spent.
        """
        await self.ready()
        job = Job(nonce=make_snowflake(), kind="imagine", prompt=prompt, normalised_prompt=mj.normalise_prompt(prompt))
        job.request = SlashCommand("imagine", mj.imagine_options(prompt))
        await self.charges.reserve_off_loop(job, cost, count)
        await self._start(job)
        return job

    async def press(self, message_id: str, button: str) -> Job:
        """Press a button of a message; return the job it starts (or the earlier result of an upscale).

        The press is charged to the budget by what it makes (an upscale, another job, or nothing), read from the
        button itself, and only when it really goes to Discord (not for an earlier result).
        """
        parent = await self.get(message_id)  # (waits for a gateway itself when it must ask Discord)
        if parent.status is JobStatus.FAILED and parent.buttons and (owner := self.account(parent.account)).problem:
            owner.cleared()  # a button of the message that held the account (Acknowledge...): asked for, so let it go
        await self.ready()
        chosen, action, target = choose_button(parent, button, message_id)
        if action.kind == "upscale" and (chosen.name.startswith("U") or action.detail == "video"):
            # Midjourney answers a second press of a used U (or video pick) with nothing: return the first result.
            earlier = await self.lookup.earlier_upscale(parent, target, chosen, action.index)
            if earlier is not None:
                return earlier
        job = Job(
            nonce=make_snowflake(),
            kind=action.kind if action.kind != "unknown" else chosen.name,
            prompt=parent.prompt,
            normalised_prompt=parent.normalised_prompt,
            parent_message_id=target,
            parent_button=chosen.name,
            parent_index=action.index,
        )
        job.request = ButtonPress(target, chosen.custom_id, parent.message_flags, chosen.component_type)
        # The message lives in one account's channel: only that account can press its buttons.
        job.pinned_account = parent.account or self.accounts[0].name
        await self.charges.reserve_off_loop(job, mj.press_cost(action, on_video=bool(parent.video_urls)))
        await self._start(job)
        return job

    async def command(
        self,
        name: str,
        options: list[dict[str, Any]],
        *,
        prompt: str = "",
        files: list[tuple[str, bytes]] | None = None,
        account: str | None = None,
        cost: Kind | None = None,
    ) -> Job:
        """Run any Midjourney slash command (describe, blend, shorten, info, fast, relax, turbo, ...).

        `files` are uploaded through Discord's attachment flow on the chosen account first; the options refer
        to them by index, as Discord's type-11 options do.
        """
        await self.ready()
        job = Job(nonce=make_snowflake(), kind=name, prompt=prompt, normalised_prompt=mj.normalise_prompt(prompt))
        job.pinned_account = account
        await self.charges.reserve_off_loop(job, cost)
        attachments = None
        if files:
            # Uploads belong to one account's channel: pin the job to the account that uploads (the one charged,
            # when accounts have budgets of their own).
            charged = job.spend.account if job.spend is not None and self.charges.per_account else None
            owner = self.account(account or charged) if account or charged else self.scheduler.least_loaded()
            job.pinned_account = owner.name
            try:
                attachments = await owner.upload(files)
            except DiscordHTTPError as exc:
                self.charges.settle(job)
                raise EngineError(f"Could not upload the image to Discord: {describe_rest_error(exc, owner)}") from None
            except BaseException:
                self.charges.settle(job)
                raise
        job.request = SlashCommand(name, options, attachments)
        await self._start(job)
        return job

    async def image_url_for(self, filename: str, data: bytes) -> str:
        """A URL Midjourney can read for a local image: uploaded and posted in the channel, its CDN URL."""
        await self.ready()
        owner = self.scheduler.least_loaded()
        try:
            url = await owner.post_image(filename, data)
        except DiscordHTTPError as exc:
            raise EngineError(f"Could not upload {filename} to Discord: {describe_rest_error(exc, owner)}") from None
        if url is None:
            raise EngineError(f"Discord did not return a URL for the uploaded {filename}; try again.")
        return url

    async def submit_input(self, job: Job, prompt: str, *, mask_png_b64: str | None = None) -> Job:
        """Answer the modal a job is waiting on (Remix, Custom Zoom) or Vary (Region)'s editor."""
        modal = job.modal
        if job.status is not JobStatus.NEEDS_INPUT or modal is None:
            raise EngineError(f"Job {job.handle} is not waiting for input (status {job.status.value}).")
        account = self.account(job.account)
        try:
            await self.sender.answer(account, job, modal, prompt, mask_png_b64, self.store)
        except DiscordHTTPError as exc:
            raise EngineError(describe_rest_error(exc, account)) from None
        job.modal = None
        job.prompt = prompt or job.prompt
        job.normalised_prompt = mj.normalise_prompt(job.prompt)
        if job.status is JobStatus.NEEDS_INPUT:  # events during the send may already have moved (or ended) it
            job.status = JobStatus.QUEUED
        job.touch()
        return job

    async def wait(
        self, job: Job, seconds: float, on_change: ProgressHook | None = None, *, until_input: bool = False
    ) -> Job:
        """Wait until the job finishes or needs input, at most `seconds` (capped by the ceiling); see `wait_for`."""
        return await wait_for(job, min(seconds, self.settings.wait_ceiling), on_change, until_input=until_input)

    async def get(self, message_id: str, *, refresh: bool = False) -> Job:
        """The job behind any id a tool returned, rebuilt from Discord if need be; `refresh` renews expired URLs."""
        return await self.lookup.get(message_id, refresh=refresh)

    # --- how a job starts and ends -------------------------------------------------------------------------

    async def _start(self, job: Job) -> None:
        """Queue the job for an account slot and send it from the engine's task group.

        Returns once Discord accepted the interaction, or at once when the job has to wait for a slot; raises
        `EngineError` when Discord refused the request itself (bad token, no access...).
        """
        self.store.add(job)
        accepted = anyio.Event()
        outcome: list[EngineError] = []
        try:
            self._spawn(self._send, job, accepted, outcome)
        except EngineError as exc:
            self._end(job, error=str(exc))
            raise
        await accepted.wait()
        await self.sharing.jobs.flush(job)  # findable by its id from every server before a tool returns it
        if outcome:
            raise outcome[0]

    async def _send(self, job: Job, accepted: anyio.Event, outcome: list[EngineError]) -> None:
        try:
            granted, never = self.scheduler.enqueue(job)
            self._end_all(never)
            if not granted.is_set():
                job.queued_note = "held by the server until an account has a free slot"
                job.touch(progressed=False)
                accepted.set()  # the caller returns now; this task sends the job when a slot frees
                await granted.wait()
            if job.status.finished:
                return  # failed while waiting (its account went down); the job says why
            account = self.account(job.account)
            if not await self.sharing.leases.hold(job, account, accepted):
                return  # ended while it waited for another server's slot
            await self.sender.send(account, job)
            account.jobs_sent += 1
            job.submitted = job.reached_discord = True
            job.touch()
        except (DiscordHTTPError, AccountError, StateError) as exc:
            owner = self.account(job.account) if job.account else None
            text = describe_rest_error(exc, owner) if isinstance(exc, DiscordHTTPError) else str(exc)
            outcome.append(EngineError(text))
            self._end(job, error=text)
        finally:
            accepted.set()

    def _end(self, job: Job, error: str | None = None) -> None:
        """The one way a job ends: its state, its slot handed on, its charge settled, its waiters woken."""
        if error is not None:
            job.fail(error)
        elif job.status is not JobStatus.COMPLETED:
            job.complete()
        self.sharing.leases.release(job)
        self._end_all(self.scheduler.release(job))
        self.store.finished(job)
        self.charges.settle(job)  # given back only when it never reached Discord

    def _end_all(self, ended: Ended) -> None:
        for job, reason in ended:
            self._end(job, error=reason)

    def _pump(self) -> None:
        """Hand free slots to waiting jobs; end those that can never run."""
        self._end_all(self.scheduler.pump())

    def _never(self, job: Job) -> str | None:
        """Why a waiting job can never run, or None while it may."""
        if job.pinned_account:
            down = self.account(job.pinned_account).down
            return f"The account that owns this message cannot be used: {down}" if down else None
        if all(a.down for a in self.accounts):
            return f"No Discord account can take the job: {self.account_problem}"
        return self.charges.stranded(job)

    def _account_down(self, account: Account) -> None:
        """An account stopped: requeue its jobs that never started elsewhere; fail those that cannot move."""
        reason = account.down or "the account stopped"
        log.warning("account %s is down: %s", account.name, reason)
        for job in self.store.running():
            if job.account != account.name or not job.submitted:
                continue
            movable = job.command_name is not None and job.progress == 0 and job.job_uuid is None
            if movable and any(a.down is None for a in self.accounts if a is not account):
                self.sharing.leases.release(job)
                self._end_all(self.scheduler.release(job))
                job.nonce = make_snowflake()
                self.store.index(job, job.nonce)
                job.account, job.submitted, job.interaction_id, job.progress_message_id = None, False, None, None
                job.status = JobStatus.QUEUED
                job.touch()
                self._spawn(self._send, job, anyio.Event(), [])
            else:
                self._end(job, error=f"The account running this job stopped mid-job: {reason}")
        self._pump()

    async def _watchdog(self) -> None:
        """Fail jobs that made no progress for `job_timeout` seconds: nothing stays in progress forever."""
        timeout = self.settings.job_timeout
        while True:
            await anyio.sleep(max(0.2, min(5.0, timeout / 10)))
            now = time.monotonic()
            for job in self.store.running():
                if job.submitted and now - job.updated > timeout:
                    self._end(
                        job,
                        error=f"Timed out: no progress from Midjourney for {timeout:g}s. Check the Midjourney channel "
                        "in Discord; the job may have been dropped.",
                    )
            self._pump()  # accounts that came back (or were set free) take waiting work

    # --- events from the gateway ---------------------------------------------------------------------------

    def _on_ready(self, account: Account, reconnected: bool) -> None:
        if self._tg is None:
            return
        if reconnected and any(j.submitted and j.account == account.name for j in self.store.running()):
            self._tg.start_soon(self.reconcile, account)
        self._pump()

    async def reconcile(self, account: Account) -> None:
        """After a lost session: apply what the channel's recent messages say that the gateway did not."""
        await self.events.reconcile(account, self.recovery)
