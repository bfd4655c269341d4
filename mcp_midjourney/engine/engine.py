"""The engine: submit jobs, press buttons, correlate Discord events to jobs, and wake whoever waits.

Requests go down and events come up: a tool call sends an interaction (Discord answers 204) and then waits
on its job; the gateway's events resolve the job. Everything that must outlive a tool call — the gateway
session, submissions, the no-progress watchdog — runs in the engine's own task group, so a cancelled call
leaves its job running and `get` finds it later.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio

from .. import midjourney as mj
from ..config import Settings
from ..discord.rest import DiscordHTTPError
from ..discord.snowflake import make_snowflake
from ..models import JobStatus
from .accounts import Account, describe_rest_error
from .budget import Budget, Kind
from .correlate import BOT_IDS, WANTED_EVENTS
from .recovery import Recovery
from .scheduler import EngineError
from .store import Job

__all__ = ["BOT_IDS", "WANTED_EVENTS", "Engine", "EngineError", "ProgressHook"]

ProgressHook = Callable[[Job], Awaitable[None]]
BodyFactory = Callable[[Account, str, "dict[str, Any] | None"], dict[str, Any]]


class Engine(Recovery):
    """Midjourney through a pool of Discord accounts (one or more), each in its own channel.

    The layers below: `Scheduling` (slots, the line, the budget), `Correlation` (events to jobs), `Recovery`
    (what Discord still knows when we do not).
    """

    def __init__(self, settings: Settings, *, transport: Any = None, budget: Budget | None = None) -> None:
        accounts = [
            Account(
                i,
                spec,
                settings,
                dispatch=self.dispatch_from,
                on_ready=self._on_ready,
                wanted_events=WANTED_EVENTS,
                authors=BOT_IDS,  # only the bots' messages start or move jobs
                transport=transport,
            )
            for i, spec in enumerate(settings.account_list())
        ]
        super().__init__(settings, accounts, budget)

    @property
    def rest(self) -> Any:
        """The first account's REST client (single-account callers and tests)."""
        return self.accounts[0].rest

    @property
    def gateway(self) -> Any:
        """The first account's gateway session (single-account callers and tests)."""
        return self.accounts[0].gateway

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
            for job, _granted in self._waiting:
                self._refund(job)  # held by the server, never sent: the stop gives the charge back
            with anyio.CancelScope(shield=True):
                for account in self.accounts:
                    await account.rest.aclose()

    async def _run_account(self, account: Account) -> None:
        await account.gateway.run()
        # run() returns only on a final close (bad token, banned...): move its work elsewhere.
        self._account_down(account)

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
                # A lost answer is resent only if the gateway never echoed this submit's nonce.
                await account.rest.interaction(body, confirm=partial(self._echoed, job, since=job.interaction_id))
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
