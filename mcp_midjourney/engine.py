"""The engine: submit jobs, press buttons, correlate Discord events to jobs, and wake whoever waits.

Requests go down and events come up: a tool call sends an interaction (Discord answers 204) and then waits
on its job; the gateway's events resolve the job. Everything that must outlive a tool call — the gateway
session, submissions, the no-progress watchdog — runs in the engine's own task group, so a cancelled call
leaves its job running and `get` finds it later.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import midjourney as mj
from .accounts import Account, AccountError, describe_rest_error
from .budget import Budget, BudgetExceeded, Kind
from .config import Settings
from .discord.cdn import url_expired
from .discord.gateway import GatewayFatal
from .discord.rest import DiscordHTTPError, InvalidRequest, NotFound
from .discord.snowflake import make_snowflake
from .midjourney.results import describe_prompts, parse_info, parse_modal, shorten_prompts
from .models import MIDJOURNEY_BOT_ID, NIJI_BOT_ID, JobStatus
from .store import Job, JobStore

log = logging.getLogger(__name__)

BOT_IDS = frozenset({MIDJOURNEY_BOT_ID, NIJI_BOT_ID})
WANTED_EVENTS = frozenset(
    {
        "MESSAGE_CREATE",
        "MESSAGE_UPDATE",
        "MESSAGE_DELETE",
        "INTERACTION_CREATE",
        "INTERACTION_SUCCESS",
        "INTERACTION_FAILURE",
        "INTERACTION_MODAL_CREATE",
        "INTERACTION_IFRAME_MODAL_CREATE",
    }
)
# Jobs whose result is words, not images.
TEXT_KINDS = frozenset({"describe", "shorten", "info", "fast", "relax", "turbo", "settings", "prefer"})
# Presses whose only effect is Discord's acknowledgement.
SIDE_EFFECTS = frozenset({"bookmark", "cancel"})
ProgressHook = Callable[[Job], Awaitable[None]]
BodyFactory = Callable[[Account, str, "dict[str, Any] | None"], dict[str, Any]]


class EngineError(Exception):
    """Something the model must be told, in words it can act on."""


def _from_bot(msg: dict[str, Any]) -> bool:
    """Whether a message's author is the Midjourney (or niji) bot; False for anything malformed."""
    author = msg.get("author")
    return isinstance(author, dict) and isinstance(author.get("id"), str) and author["id"] in BOT_IDS


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _minted_ms(snowflake: object) -> int | None:
    """Milliseconds (since Discord's epoch) at which a snowflake was made; None for anything else."""
    if isinstance(snowflake, str) and snowflake.isdigit():
        return int(snowflake) >> 22
    return None


def _could_answer(job: Job, message_ms: int | None) -> bool:
    """Whether a message made at `message_ms` can be an answer to the job (not older than its interaction)."""
    if message_ms is None:
        return True
    discord = _minted_ms(job.interaction_id)  # Discord's own clock: exact
    if discord is not None:
        return message_ms >= discord
    ours = _minted_ms(job.nonce)  # our clock: allow for skew
    return ours is None or message_ms >= ours - 5_000


def _grid(buttons: list[Any]) -> bool:
    names = {b.name for b in buttons}
    return {"U1", "U2", "U3", "U4"} <= names


class Engine:
    """Midjourney through a pool of Discord accounts (one or more), each in its own channel."""

    def __init__(self, settings: Settings, *, transport: Any = None, budget: Budget | None = None) -> None:
        self.settings = settings
        self.budget = budget if budget is not None and budget.enabled else None
        self.accounts = [
            Account(
                i,
                spec,
                settings,
                dispatch=self.dispatch_from,
                on_ready=self._on_ready,
                wanted_events=WANTED_EVENTS,
                transport=transport,
            )
            for i, spec in enumerate(settings.account_list())
        ]
        self.store = JobStore(max_finished=settings.store_limit)
        self._tg: TaskGroup | None = None
        self._waiting: list[tuple[Job, anyio.Event]] = []  # jobs waiting for an account slot, oldest first
        self.events_handled = 0
        self._gone: OrderedDict[str, None] = OrderedDict()  # our jobs' messages Discord deleted (bounded)
        self._claimed: dict[str, str] = {}  # result message id -> the earlier id it was found for after a restart

    @property
    def rest(self) -> Any:
        """The first account's REST client (single-account callers and tests)."""
        return self.accounts[0].rest

    @property
    def gateway(self) -> Any:
        """The first account's gateway session (single-account callers and tests)."""
        return self.accounts[0].gateway

    @property
    def account_problem(self) -> str | None:
        """Account trouble the agent must hear about, one line; None when every account is fine."""
        problems = [
            f"{a.name}: {a.trouble}" if len(self.accounts) > 1 else str(a.trouble) for a in self.accounts if a.trouble
        ]
        return "; ".join(problems) or None

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every account's gateway and the watchdog until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for account in self.accounts:
                    tg.start_soon(self._run_account, account)
                tg.start_soon(self._watchdog)
                task_status.started()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                for account in self.accounts:
                    await account.rest.aclose()

    async def _run_account(self, account: Account) -> None:
        await account.gateway.run()
        # run() returns only on a final close (bad token, banned...): move its work elsewhere.
        self._account_down(account)

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

    # --- what the tools call -------------------------------------------------------------------------------

    async def imagine(self, prompt: str, *, cost: Kind | None = None, count: int = 1) -> Job:
        """Send /imagine on the account with the most room; return once Discord accepted it (or it waits).

        `cost` charges the budget (`count` jobs: a --repeat prompt runs several); `BudgetExceeded` when it is spent.
        """
        await self.ready()
        job = Job(nonce=make_snowflake(), kind="imagine", prompt=prompt, normalised_prompt=mj.normalise_prompt(prompt))
        self._reserve(job, cost, count)

        def body(account: Account, nonce: str, command: dict[str, Any] | None) -> dict[str, Any]:
            assert command is not None
            return mj.slash_command(
                command,
                mj.imagine_options(prompt),
                guild_id=account.guild_id,
                channel_id=account.channel_id,
                session_id=account.gateway.session_id or "",
                nonce=nonce,
            )

        job.command_name = "imagine"
        job.body = body
        self.store.add(job)
        await self._submit(job)
        return job

    async def press(self, message_id: str, button: str, *, cost: Kind | None = None) -> Job:
        """Press a button of a message; return the job it starts (or the earlier result of an upscale).

        `cost` charges the budget, only when the press really goes to Discord (not for an earlier result).
        """
        await self.ready()
        parent = await self.get(message_id)
        buttons = parent.buttons or (parent.progress_buttons if parent.in_flight else [])
        if not buttons:
            if parent.in_flight:
                raise EngineError(
                    f"Message {message_id} is a job still running ({parent.status.value}, {parent.progress}%): it has "
                    f"no buttons yet. Wait with get_message(message_id='{parent.handle}', wait_seconds=30)."
                )
            raise EngineError(f"Message {message_id} has no buttons to press ({parent.error or 'no result'}).")
        chosen = mj.find_button(buttons, button)
        if chosen is None:
            listing = ", ".join(f"{b.label} ({b.name})" if b.label != b.name else b.name for b in buttons)
            raise EngineError(f"Message {parent.handle} has no button {button!r}. Its buttons are: {listing}.")
        action = mj.button_action(chosen.custom_id)
        target = parent.result_message_id or parent.progress_message_id or message_id
        if action.kind == "upscale" and chosen.name.startswith("U"):
            earlier = self._earlier_press(target, chosen.name)
            if earlier is None and (chosen.style == 1 or parent.nonce == parent.result_message_id):
                # Pressed before this server knew the message (a restart): Discord has the answer, as a reply.
                earlier = await self._earlier_reply(parent, target, chosen.name, action.index)
            if earlier is not None:
                # Midjourney answers a second press of a used U button with nothing: return the first result.
                return earlier
            if chosen.style == 1:  # Discord shows the button as used: a press would get no answer at all
                raise EngineError(
                    f"{chosen.name} was already used on message {target}, and Midjourney does not answer a second "
                    "press. Its result is not among the channel's last 100 messages: find it in Discord, or pick "
                    "another image."
                )
        job = Job(
            nonce=make_snowflake(),
            kind=action.kind if action.kind != "unknown" else chosen.name,
            prompt=parent.prompt,
            normalised_prompt=parent.normalised_prompt,
            parent_message_id=target,
            parent_button=chosen.name,
            parent_index=action.index,
        )
        # The message lives in one account's channel: only that account can press its buttons.
        job.pinned_account = parent.account or self.accounts[0].name
        flags = parent.message_flags

        def body(account: Account, nonce: str, _command: dict[str, Any] | None) -> dict[str, Any]:
            return mj.button_press(
                application_id=self.settings.application_id,
                guild_id=account.guild_id,
                channel_id=account.channel_id,
                message_id=target,
                message_flags=flags,
                session_id=account.gateway.session_id or "",
                nonce=nonce,
                custom_id=chosen.custom_id,
                component_type=chosen.component_type,
            )

        job.body = body
        self._reserve(job, cost)
        self.store.add(job)
        await self._submit(job)
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
        job.command_name = name
        job.pinned_account = account
        uploads: dict[str, list[dict[str, Any]]] = {}

        def body(chosen: Account, nonce: str, cmd: dict[str, Any] | None) -> dict[str, Any]:
            assert cmd is not None
            return mj.slash_command(
                cmd,
                options,
                guild_id=chosen.guild_id,
                channel_id=chosen.channel_id,
                session_id=chosen.gateway.session_id or "",
                nonce=nonce,
                attachments=uploads.get(chosen.name),
            )

        job.body = body
        self._reserve(job, cost)
        if files:
            # Uploads belong to one account's channel: pin the job to the account that uploads (the one charged,
            # when accounts have budgets of their own).
            charged = job.spend.account if job.spend is not None and self._budget_per_account else None
            owner = self.account(account or charged) if account or charged else self._least_loaded()
            job.pinned_account = owner.name
            try:
                uploads[owner.name] = [
                    mj.attachment_ref(i, filename, await owner.rest.upload(owner.channel_id, filename, data))
                    for i, (filename, data) in enumerate(files)
                ]
            except DiscordHTTPError as exc:
                self._refund(job)
                raise EngineError(f"Could not upload the image to Discord: {describe_rest_error(exc, owner)}") from None
            except BaseException:
                self._refund(job)
                raise
        self.store.add(job)
        await self._submit(job)
        return job

    async def image_url_for(self, filename: str, data: bytes) -> str:
        """A URL Midjourney can read for a local image: uploaded and posted in the channel, its CDN URL."""
        await self.ready()
        owner = self._least_loaded()
        try:
            uploaded = await owner.rest.upload(owner.channel_id, filename, data)
            message = await owner.rest.post_message(
                owner.channel_id, "", [{"id": "0", "filename": filename, "uploaded_filename": uploaded}]
            )
        except DiscordHTTPError as exc:
            raise EngineError(f"Could not upload {filename} to Discord: {describe_rest_error(exc, owner)}") from None
        attachments = message.get("attachments") or []
        url = attachments[0].get("url") if attachments and isinstance(attachments[0], dict) else None
        if not isinstance(url, str):
            raise EngineError(f"Discord did not return a URL for the uploaded {filename}; try again.")
        return url

    async def submit_input(self, job: Job, prompt: str, *, mask_png_b64: str | None = None) -> Job:
        """Answer the modal a job is waiting on (Remix, Custom Zoom) or Vary (Region)'s editor."""
        modal = job.modal
        if job.status is not JobStatus.NEEDS_INPUT or modal is None:
            raise EngineError(f"Job {job.handle} is not waiting for input (status {job.status.value}).")
        account = self.account(job.account)
        if modal.iframe:
            if not mask_png_b64:
                raise EngineError(
                    "Vary (Region) needs the region to change: pass region=[left, top, right, bottom] (fractions "
                    "0-1 of the image) or mask_path (a PNG whose white pixels mark the region)."
                )
            try:
                await account.rest.inpaint(
                    self.settings.inpaint_base,
                    {
                        "customId": modal.custom_id,
                        "mask": mask_png_b64,
                        "prompt": prompt,
                        "userId": "0",
                        "username": "0",
                    },
                )
            except DiscordHTTPError as exc:
                raise EngineError(f"Midjourney's region editor refused the job: {exc}") from None
        else:
            inputs = {modal.inputs[0][0]: prompt} if modal.inputs else {}
            nonce = make_snowflake()
            body = mj.modal_submit(
                application_id=self.settings.application_id,
                guild_id=account.guild_id,
                channel_id=account.channel_id,
                session_id=account.gateway.session_id or "",
                nonce=nonce,
                modal_interaction_id=modal.interaction_id,
                modal_custom_id=modal.custom_id,
                inputs=inputs,
            )
            self.store.index(job, nonce)
            try:
                await account.rest.interaction(body)
            except DiscordHTTPError as exc:
                raise EngineError(describe_rest_error(exc, account)) from None
        job.modal = None
        job.prompt = prompt or job.prompt
        job.normalised_prompt = mj.normalise_prompt(job.prompt)
        job.status = JobStatus.QUEUED
        job.touch()
        return job

    def _least_loaded(self) -> Account:
        usable = [a for a in self.accounts if a.usable] or self.accounts
        return min(usable, key=lambda a: (a.active / max(1, a.capacity), a.index))

    async def get(self, message_id: str, *, refresh: bool = False) -> Job:
        """The job behind any id a tool returned; rebuilt from Discord when the store no longer has it.

        With `refresh`, a finished job whose signed image URL has expired is read again from Discord.
        """
        job = self.store.get(message_id)
        if job is not None:
            if refresh and job.result_message_id and url_expired(job.image_url):
                await self._refresh(job)
            return job
        await self.ready()
        last_error: DiscordHTTPError | None = None
        for account in self.accounts:
            if account.down:
                continue
            try:
                message = await account.rest.message(account.channel_id, message_id)
            except NotFound:
                continue
            except DiscordHTTPError as exc:
                last_error = exc
                continue
            if not _from_bot(message):
                raise EngineError(f"Message {message_id} is not a Midjourney message.")
            return self.store.get(message_id) or self._rebuild(account, message)
        if last_error is not None:
            raise EngineError(describe_rest_error(last_error))
        successor = await self._successor(message_id)
        if successor is not None:
            return successor
        raise EngineError(f"No message {message_id} in the Midjourney channel. Use the message_id a tool returned.")

    async def _successor(self, earlier_id: str) -> Job | None:
        """After a restart (or eviction), the finished job behind an id Discord no longer knows.

        A tool that returned before the result existed gave the job's first message id (deleted when the result
        arrives) or our nonce (which no Discord message carries). The result itself names neither, so look at our
        results made after that id that no other job has claimed: one is the answer; several are listed, so the
        agent can pick by prompt; none means the job failed (Midjourney's errors are visible only to the account,
        and not over REST) or is older than the channel's last 100 messages.
        """
        if _minted_ms(earlier_id) is None:
            return None
        found: list[tuple[Account, dict[str, Any]]] = []
        for account in self.accounts:
            if account.down:
                continue
            try:
                page = await account.rest.messages(account.channel_id, limit=100, after=earlier_id)
            except DiscordHTTPError as exc:
                log.info("could not look for the result of %s: %s", earlier_id, exc)
                continue
            me = account.gateway.user_id
            for msg in reversed(page):  # oldest first
                content = mj.parse_content(_text(msg.get("content")))
                files = [a for a in _items(msg.get("attachments")) if isinstance(a, dict)]
                if not _from_bot(msg) or content.state != "done":
                    continue
                if (me and content.user_id != me) or not files or str(msg.get("id")) in self._claimed:
                    continue
                known = self.store.get(str(msg.get("id")))
                if known is not None and known.nonce != known.result_message_id:
                    continue  # the result of a job this server ran itself: not an orphan
                found.append((account, msg))
        if len(found) > 1:
            prompts = [(m.get("id"), mj.parse_content(_text(m.get("content"))).prompt or "") for _, m in found[:8]]
            listing = "; ".join(f"{i} ({p[:60]!r})" for i, p in prompts)
            raise EngineError(
                f"Message {earlier_id} was a job still running when this server last answered; it restarted since, "
                f"and Discord does not say which result it became. Our results made after it: {listing}. Call "
                "get_message with the one whose prompt is yours."
            )
        if not found:
            return None
        account, msg = found[0]
        result_id = str(msg.get("id"))
        job = self.store.get(result_id) or self._rebuild(account, msg)
        self._claimed[result_id] = earlier_id
        while len(self._claimed) > 10_000:
            del self._claimed[next(iter(self._claimed))]
        self.store.index(job, earlier_id)
        return job

    async def _refresh(self, job: Job) -> None:
        """Discord CDN URLs expire after about a day: read the result message again for fresh ones."""
        account = self.account(job.account)
        try:
            message = await account.rest.message(account.channel_id, str(job.result_message_id))
        except DiscordHTTPError as exc:
            log.info("could not refresh the image URL of %s: %s", job.handle, exc)
            return
        attachments = [a for a in _items(message.get("attachments")) if isinstance(a, dict)]
        if attachments and isinstance(attachments[0].get("url"), str):
            old = job.image_url
            job.image_url = attachments[0]["url"]
            job.image_urls = [job.image_url if u == old else u for u in job.image_urls]

    async def wait(
        self, job: Job, seconds: float, on_change: ProgressHook | None = None, *, until_input: bool = False
    ) -> Job:
        """Wait until the job finishes or needs input, at most `seconds` (capped by the ceiling).

        With `until_input`, also stop at the first sign Midjourney will not ask for input (its first message).
        """
        deadline = time.monotonic() + max(0.0, min(seconds, self.settings.wait_ceiling))
        while job.in_flight and job.status is not JobStatus.NEEDS_INPUT:
            if until_input and job.progress_message_id:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = job.changed()
            with anyio.move_on_after(remaining):
                await event.wait()
            if on_change is not None and job.in_flight:
                await on_change(job)
        return job

    def accounts_status(self) -> list[dict[str, Any]]:
        return [a.status() for a in self.accounts]

    # --- scheduling and submission -------------------------------------------------------------------------

    async def _submit(self, job: Job) -> None:
        """Queue the job for an account slot and send it from the engine's task group.

        Returns once Discord accepted the interaction, or at once when the job has to wait for a slot; raises
        `EngineError` when Discord refused the request itself (bad token, no access...).
        """
        accepted = anyio.Event()
        outcome: list[EngineError] = []
        self._spawn(self._send, job, accepted, outcome)
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
            job.submitted = True
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

    async def _echoed(self, job: Job, seconds: float = 1.5) -> bool:
        """Whether Discord took an interaction whose answer was lost: the gateway echoes its nonce at once."""
        deadline = time.monotonic() + seconds
        while job.interaction_id is None and job.progress_message_id is None and job.in_flight:
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
                a.down is None and self.budget.fits(spend, a.name) for a in self.accounts
            ):
                return (
                    f"The account charged for this job stopped ({self.account(spend.account).down}) and every other "
                    "account has used its own budget."
                )
        return None

    # --- the usage budget ----------------------------------------------------------------------------------

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
                if not self.budget.per_account:
                    break  # only the total limits: every account gets the same answer
        first = min(refusals, key=lambda exc: exc.frees_at)
        if len(refusals) > 1:
            raise BudgetExceeded(f"No account has budget left. {first}", first.frees_at)
        raise first

    def _charge(self, job: Job, account: Account) -> bool:
        """Move the job's charge to `account`, if its own budget takes it."""
        if self.budget is None or job.spend is None or job.spend.account == account.name:
            return True
        try:
            job.spend = self.budget.move(job.spend, account.name)
        except BudgetExceeded:
            return False
        return True

    def _refund(self, job: Job) -> None:
        """Give a job's charge back when it never reached Discord; forget it either way (the job is done)."""
        reached = job.submitted or job.interaction_id or job.progress_message_id or job.result_message_id
        if job.spend is not None and self.budget is not None and not reached:
            self.budget.refund(job.spend)
        job.spend = None

    def account(self, name: str | None) -> Account:
        for account in self.accounts:
            if account.name == name:
                return account
        return self.accounts[0]

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
        self._refund(job)  # only when it never reached Discord
        self._release_slot(job)
        self.store.finished(job)

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

    async def _earlier_reply(self, parent: Job, target: str, button_name: str, index: int | None) -> Job | None:
        """The reply Midjourney made to an earlier press of a U button of `target`, read back from Discord."""
        account = self.account(parent.account)
        try:
            page = await account.rest.messages(account.channel_id, limit=100, after=target)
        except DiscordHTTPError as exc:
            log.info("could not look for an earlier %s result of %s: %s", button_name, target, exc)
            return None
        for msg in reversed(page):  # oldest first: the first answer
            reference = msg.get("message_reference")
            if not isinstance(reference, dict) or reference.get("message_id") != target or not _from_bot(msg):
                continue
            if mj.parse_content(_text(msg.get("content"))).image_index != index:
                continue
            job = self.store.get(str(msg.get("id"))) or self._rebuild(account, msg)
            job.parent_button = job.parent_button or button_name
            self.store.index(job, f"press:{target}:{button_name}")
            return job
        return None

    def _earlier_press(self, message_id: str, button_name: str) -> Job | None:
        for job in self.store.running():
            if job.parent_message_id == message_id and job.parent_button == button_name:
                return job
        key = f"press:{message_id}:{button_name}"
        return self.store.get(key)

    # --- events --------------------------------------------------------------------------------------------

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Handle one dispatch as the first account's gateway would deliver it."""
        self.dispatch_from(self.accounts[0], event, data)

    def dispatch_from(self, account: Account, event: str, data: dict[str, Any]) -> None:
        """Handle one gateway dispatch of an account. Cheap for the events of others; never raises."""
        self.events_handled += 1
        if event.startswith("INTERACTION"):
            self._on_interaction(event, data)
            return
        if data.get("channel_id") != account.channel_id:
            return
        if event == "MESSAGE_DELETE":
            # The progress message is deleted just before the result arrives: remember it, so a result that
            # carries nothing but its prompt can still find its job (see `_correlate`).
            deleted = data.get("id")
            if isinstance(deleted, str) and self.store.get(deleted) is not None:
                self._mark_gone(deleted)
            return
        author = data.get("author")
        if isinstance(author, dict):
            if not _from_bot(data):
                return
        elif event != "MESSAGE_UPDATE" or self.store.get(str(data.get("id"))) is None:
            return  # partial updates carry no author: only those of known messages matter
        try:
            self._on_message(account, data)
        except Exception:
            log.exception("could not apply a Midjourney message to its job")

    def _on_interaction(self, event: str, data: dict[str, Any]) -> None:
        nonce = data.get("nonce")
        job = self.store.get(nonce) if isinstance(nonce, str) else None
        if job is None:
            return
        interaction_id = data.get("id")
        if isinstance(interaction_id, str):
            job.interaction_id = interaction_id
            self.store.index(job, interaction_id)
        if event == "INTERACTION_FAILURE":
            code = data.get("reason_code")
            self._finish(
                job,
                error=f"Discord reported that the interaction failed (reason code {code}): Midjourney did not accept "
                "it. The button may have expired or the bot may be down; try again, or start a new imagine.",
            )
        elif event in ("INTERACTION_MODAL_CREATE", "INTERACTION_IFRAME_MODAL_CREATE"):
            modal = parse_modal(data, iframe=event == "INTERACTION_IFRAME_MODAL_CREATE")
            if modal is not None and job.in_flight:
                job.modal = modal
                job.status = JobStatus.NEEDS_INPUT
                job.touch()
        elif event == "INTERACTION_SUCCESS":
            if job.kind in SIDE_EFFECTS and job.in_flight:
                # A bookmark or a cancel makes no message of its own: Discord's acknowledgement is the result.
                job.note = f"{job.parent_button or job.kind} pressed"
                self._finish(job)
            else:
                job.touch()

    def _correlate(self, account: Account, msg: dict[str, Any]) -> Job | None:
        """Find the job a bot message belongs to, strongest evidence first (protocol.md §3)."""
        store = self.store
        nonce = msg.get("nonce")
        if isinstance(nonce, str) and (job := store.get(nonce)):
            return job
        for key in ("interaction_metadata", "interaction"):
            meta = msg.get(key)
            if isinstance(meta, dict) and isinstance(meta.get("id"), str) and (job := store.get(meta["id"])):
                return job
        message_id = msg.get("id")
        if isinstance(message_id, str) and (job := store.get(message_id)):
            return job
        uuid = mj.message_job_uuid(msg)
        if uuid and (job := store.by_uuid(uuid)) and job.in_flight:
            return job
        text = _text(msg.get("content"))
        me = account.gateway.user_id
        if me and "<@" in text and f"<@{me}>" not in text and f"<@!{me}>" not in text:
            # Names someone and never us: another user's job. Most of a busy channel; parsing it cost ~14 µs.
            return None
        content = mj.parse_content(text)
        if content.user_id and me and content.user_id != me:
            return None  # another user's job in the same channel
        reference = msg.get("message_reference")
        parent_id = reference.get("message_id") if isinstance(reference, dict) else None
        # A message that names an interaction we do not know can only be a job's whose interaction we never saw.
        unknown_interaction = any(
            isinstance(meta, dict) and isinstance(meta.get("id"), str)
            for meta in (msg.get("interaction_metadata"), msg.get("interaction"))
        )
        made = _minted_ms(message_id)
        candidates = sorted(
            (
                j
                for j in store.running()
                if j.submitted
                and j.result_message_id is None
                and j.account in (None, account.name)
                and j.job_uuid is None  # a job whose uuid we know is matched by it, not guessed
                and not (unknown_interaction and j.interaction_id)
                and (j.progress_message_id is None or j.progress_message_id in self._gone)
                and _could_answer(j, made)
            ),
            key=lambda j: j.created,
        )
        if parent_id:
            for job in candidates:
                if job.parent_message_id != parent_id:
                    continue
                if job.parent_index is None or content.image_index in (None, job.parent_index):
                    return job
        if content.prompt is not None:
            # Last resort: the oldest running job of ours with the same prompt that has no message of its own (or
            # whose message Discord deleted, as it does just before the result).
            wanted = mj.normalise_prompt(content.prompt)
            for job in candidates:
                if job.normalised_prompt == wanted and not (parent_id and job.parent_message_id != parent_id):
                    return job
        return None

    def _mark_gone(self, message_id: str) -> None:
        self._gone[message_id] = None
        while len(self._gone) > 10_000:
            self._gone.popitem(last=False)

    def _on_message(self, account: Account, msg: dict[str, Any]) -> None:
        job = self._correlate(account, msg)
        if job is None or job.account not in (None, account.name):
            return  # accounts sharing a channel each see every message: only the owner's counts
        message_id = str(msg.get("id"))
        if job.status.finished and message_id != job.result_message_id:
            return  # a finished job only accepts updates of its own result message
        self.store.index(job, message_id)
        if job.account is None:
            job.account = account.name
        if isinstance(msg.get("flags"), int):
            job.message_flags = msg["flags"]
        uuid = mj.message_job_uuid(msg)
        if uuid and job.job_uuid is None:
            self.store.index_uuid(job, uuid)

        verdict = mj.classify_embeds(_items(msg.get("embeds")))
        if verdict is not None:
            if verdict.category == "queued":
                job.status = JobStatus.QUEUED
                job.queued_note = "Midjourney queued the job: the account is at its concurrency limit"
                job.touch()
                return
            if verdict.fails_job:
                reason = f"{verdict.title}: {verdict.description}".strip().rstrip(":")
                self._finish(job, error=f"Midjourney refused the job. {reason}")
                if verdict.account_problem:
                    # Held, not dead: jobs already running carry on (their results still come); new work waits
                    # for another account, or fails saying what a person must do.
                    account.hold(f"{reason} ({mj.account_advice(verdict)})")
                    log.warning("account %s held by Midjourney: %s", account.name, verdict.title)
                    self._pump()
                return
        content_text = _text(msg.get("content"))
        failure = mj.plain_failure(content_text)
        if failure:
            self._finish(job, error=f"Midjourney could not run the job: {failure}")
            return
        if job.kind in TEXT_KINDS:
            self._text_result(job, msg, content_text)
            return
        content = mj.parse_content(content_text)
        attachments = [a for a in _items(msg.get("attachments")) if isinstance(a, dict)]
        final_image = next((a for a in attachments if not mj.is_progress_attachment(str(a.get("filename", "")))), None)
        done = content.state == "done" or (content.image_index is not None and content.state == "unknown")
        if done and final_image is not None:
            self._complete(job, msg, final_image)
        elif content.state == "waiting":
            job.progress_message_id = job.progress_message_id or message_id
            if job.status is not JobStatus.IN_PROGRESS:  # a late or repeated first message never goes back
                job.status = JobStatus.QUEUED
            job.touch()
        elif content.state == "progress":
            job.progress_message_id = job.progress_message_id or message_id
            job.status = JobStatus.IN_PROGRESS
            job.queued_note = None
            job.progress = max(job.progress, min(99, content.progress or 0))
            if msg.get("components"):
                job.progress_buttons = mj.parse_buttons(_items(msg.get("components")))
            if attachments:
                job.preview_url = attachments[0].get("url") or job.preview_url
            job.touch()
        elif content.state == "stopped":
            self._finish(job, error="Midjourney stopped the job before it finished (cancelled or refused).")
        elif content.state == "paused":
            job.status = JobStatus.QUEUED
            job.queued_note = "Midjourney paused the job (relax queue)"
            job.touch()

    def _text_result(self, job: Job, msg: dict[str, Any], content: str) -> None:
        """Answers in words: /describe's and /shorten's prompts, /info's facts, a mode switch's reply."""
        job.progress_message_id = job.progress_message_id or str(msg.get("id"))
        if job.kind == "describe":
            job.prompts = describe_prompts(msg)
            done = bool(job.prompts)
        elif job.kind == "shorten":
            job.prompts = shorten_prompts(msg)
            done = bool(job.prompts)
        elif job.kind == "info":
            job.info = parse_info(msg)
            done = job.info is not None
            if done:
                self.account(job.account).info = job.info
        else:
            job.note = content.strip() or None
            done = job.note is not None
        if not done:
            job.status = JobStatus.IN_PROGRESS
            job.touch()
            return
        job.result_message_id = str(msg.get("id"))
        self.store.index(job, job.result_message_id)
        job.buttons = mj.parse_buttons(_items(msg.get("components")))
        image = next((e.get("image") for e in _items(msg.get("embeds")) if isinstance(e, dict)), None)
        if isinstance(image, dict) and isinstance(image.get("url"), str):
            job.image_url = image["url"]
        self._finish(job)

    def _complete(self, job: Job, msg: dict[str, Any], image: dict[str, Any]) -> None:
        job.result_message_id = str(msg.get("id"))
        self.store.index(job, job.result_message_id)
        job.image_url = image.get("url")
        job.buttons = mj.parse_buttons(_items(msg.get("components")))
        uuid = job.job_uuid
        if uuid and _grid(job.buttons):
            base = self.settings.cdn_base
            job.image_urls = [f"{base}/{uuid}/0_{i}.png" for i in range(4)]
        else:
            job.image_urls = [job.image_url] if job.image_url else []
        job.preview_url = None
        job.queued_note = None
        if job.parent_message_id and job.parent_button:
            self.store.index(job, f"press:{job.parent_message_id}:{job.parent_button}")
        owner = self.account(job.account)
        if job.submitted and owner.problem_at is not None and job.created > owner.problem_at:
            owner.cleared()  # a job sent after Midjourney held the account succeeded: the hold is over
        self._finish(job)

    def _rebuild(self, account: Account, msg: dict[str, Any]) -> Job:
        """A job from a Discord message alone (after a restart or eviction)."""
        content = mj.parse_content(_text(msg.get("content")))
        job = Job(
            nonce=str(msg.get("id")),
            kind=content.kind if content.kind != "unknown" else "imagine",
            prompt=content.prompt or "",
            normalised_prompt=mj.normalise_prompt(content.prompt or ""),
        )
        job.account = account.name
        reference = msg.get("message_reference")
        if isinstance(reference, dict):
            job.parent_message_id = reference.get("message_id")
        self.store.add(job)
        msg.setdefault("channel_id", account.channel_id)
        self._on_message(account, msg)
        if job.in_flight and not job.progress_message_id:
            job.progress_message_id = job.nonce
        return job

    def _on_ready(self, account: Account, reconnected: bool) -> None:
        if self._tg is None:
            return
        if reconnected and any(j.submitted and j.account == account.name for j in self.store.running()):
            self._tg.start_soon(self.reconcile, account)
        self._pump()

    async def reconcile(self, account: Account) -> None:
        """After a lost session: read the channel's recent messages and apply what we missed."""
        try:
            messages = await account.rest.messages(account.channel_id, limit=100)
        except DiscordHTTPError as exc:
            log.warning("could not reconcile jobs of account %s after a new session: %s", account.name, exc)
            return
        # Our jobs' messages missing from the page were deleted: their results may be on it, with nothing but the
        # prompt to say whose they are (the uuid came only in the progress updates we missed).
        shown = {str(m.get("id")) for m in messages}
        # A full page reaches back only so far: below its oldest message, absent does not mean deleted.
        oldest = min((int(i) for i in shown if i.isdigit()), default=0) if len(messages) >= 100 else 0
        for job in self.store.running():
            first = job.progress_message_id or ""
            if job.account == account.name and first.isdigit() and first not in shown and int(first) > oldest:
                self._mark_gone(first)
        for msg in reversed(messages):  # Discord returns newest first
            msg.setdefault("channel_id", account.channel_id)
            self.dispatch_from(account, "MESSAGE_CREATE", msg)  # the same checks as a live event; never raises

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
