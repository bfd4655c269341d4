"""The engine: submit jobs, press buttons, correlate Discord events to jobs, and wake whoever waits.

Requests go down and events come up: a tool call sends an interaction (Discord answers 204) and then waits
on its job; the gateway's events resolve the job. Everything that must outlive a tool call — the gateway
session, submissions, the no-progress watchdog — runs in the engine's own task group, so a cancelled call
leaves its job running and `get` finds it later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import midjourney as mj
from .config import Settings
from .discord.gateway import Gateway, GatewayFatal
from .discord.rest import DiscordHTTPError, DiscordRest, Forbidden, InvalidRequest, NotFound, Unauthorized
from .discord.snowflake import make_snowflake
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
ProgressHook = Callable[[Job], Awaitable[None]]


class EngineError(Exception):
    """Something the model must be told, in words it can act on."""


def _grid(buttons: list[Any]) -> bool:
    names = {b.name for b in buttons}
    return {"U1", "U2", "U3", "U4"} <= names


class Engine:
    """One Discord account driving Midjourney in one channel."""

    def __init__(self, settings: Settings, *, transport: Any = None) -> None:
        self.settings = settings
        self.rest = DiscordRest(
            settings.api_base,
            settings.token,
            interaction_interval=settings.interaction_interval,
            transport=transport,
        )
        self.gateway = Gateway(
            self.rest,
            settings.token,
            on_dispatch=self.dispatch,
            on_ready=self._on_ready,
            wanted_events=WANTED_EVENTS,
        )
        self.store = JobStore(max_finished=settings.store_limit)
        self._tg: TaskGroup | None = None
        self._commands: dict[str, Any] | None = None
        self._active = 0
        self._slot_freed = anyio.Event()
        self.account_problem: str | None = None
        self.events_handled = 0

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the gateway and the watchdog until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self.gateway.run)
                tg.start_soon(self._watchdog)
                task_status.started()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await self.rest.aclose()

    async def ready(self) -> None:
        """Wait for the gateway session, or explain why there is none."""
        try:
            await self.gateway.wait_ready(self.settings.gateway_ready_timeout)
        except GatewayFatal as exc:
            raise EngineError(
                f"Discord refused the account: {exc}. Check MJ_DISCORD_TOKEN and restart the server."
            ) from None
        except TimeoutError:
            raise EngineError(
                f"Could not open a Discord gateway session within {self.settings.gateway_ready_timeout:g}s "
                f"(API base {self.settings.api_base}). Check the network and MJ_DISCORD_API_BASE, then retry."
            ) from None

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        if self._tg is None:
            raise EngineError("the engine is not running")
        self._tg.start_soon(fn, *args)

    # --- what the tools call -------------------------------------------------------------------------------

    async def imagine(self, prompt: str) -> Job:
        """Send /imagine; return the job as soon as Discord accepted it (or it is held for a free slot)."""
        await self.ready()
        command = await self._command("imagine")
        job = Job(
            nonce=make_snowflake(),
            kind="imagine",
            prompt=prompt,
            normalised_prompt=mj.normalise_prompt(prompt),
        )
        self.store.add(job)

        def body(nonce: str, cmd: dict[str, Any]) -> dict[str, Any]:
            return mj.slash_command(
                cmd,
                mj.imagine_options(prompt),
                guild_id=self.settings.guild_id,
                channel_id=self.settings.channel_id,
                session_id=self.gateway.session_id or "",
                nonce=nonce,
            )

        await self._submit(job, body, command_name="imagine", initial_command=command)
        return job

    async def press(self, message_id: str, button: str) -> Job:
        """Press a button of a message; return the job it starts (or the earlier result of an upscale)."""
        await self.ready()
        parent = await self.get(message_id)
        if not parent.buttons:
            if parent.in_flight:
                raise EngineError(
                    f"Message {message_id} is a job still running ({parent.status.value}, {parent.progress}%): it has "
                    f"no buttons yet. Wait with get_message(message_id='{parent.handle}', wait_seconds=30)."
                )
            raise EngineError(f"Message {message_id} has no buttons to press ({parent.error or 'no result'}).")
        chosen = mj.find_button(parent.buttons, button)
        if chosen is None:
            listing = ", ".join(f"{b.label} ({b.name})" if b.label != b.name else b.name for b in parent.buttons)
            raise EngineError(f"Message {parent.handle} has no button {button!r}. Its buttons are: {listing}.")
        action = mj.button_action(chosen.custom_id)
        target = parent.result_message_id or message_id
        if action.kind == "upscale" and chosen.name.startswith("U"):
            earlier = self._earlier_press(target, chosen.name)
            if earlier is not None:
                # Midjourney answers a second press of a used U button with nothing: return the first result.
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
        self.store.add(job)

        def body(nonce: str, _cmd: dict[str, Any] | None) -> dict[str, Any]:
            return mj.button_press(
                application_id=self.settings.application_id,
                guild_id=self.settings.guild_id,
                channel_id=self.settings.channel_id,
                message_id=target,
                message_flags=parent.message_flags,
                session_id=self.gateway.session_id or "",
                nonce=nonce,
                custom_id=chosen.custom_id,
                component_type=chosen.component_type,
            )

        await self._submit(job, body)
        return job

    async def get(self, message_id: str) -> Job:
        """The job behind any id a tool returned; rebuilt from Discord when the store no longer has it."""
        job = self.store.get(message_id)
        if job is not None:
            return job
        await self.ready()
        try:
            message = await self.rest.message(self.settings.channel_id, message_id)
        except NotFound:
            raise EngineError(
                f"No message {message_id} in the Midjourney channel. Use the message_id a tool returned."
            ) from None
        except DiscordHTTPError as exc:
            raise EngineError(self._rest_error_text(exc)) from None
        author = message.get("author") if isinstance(message.get("author"), dict) else {}
        if author.get("id") not in BOT_IDS:
            raise EngineError(f"Message {message_id} is not a Midjourney message.")
        job = self.store.get(message_id) or self._rebuild(message)
        return job

    async def wait(self, job: Job, seconds: float, on_change: ProgressHook | None = None) -> Job:
        """Wait until the job finishes or needs input, at most `seconds` (capped by the ceiling)."""
        deadline = time.monotonic() + max(0.0, min(seconds, self.settings.wait_ceiling))
        while job.in_flight and job.status is not JobStatus.NEEDS_INPUT:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = job.changed()
            with anyio.move_on_after(remaining):
                await event.wait()
            if on_change is not None and job.in_flight:
                await on_change(job)
        return job

    # --- submission ----------------------------------------------------------------------------------------

    async def _command(self, name: str, *, refresh: bool = False) -> dict[str, Any]:
        if self._commands is None or refresh:
            try:
                self._commands = await self.rest.command_index(
                    guild_id=self.settings.guild_id, channel_id=self.settings.channel_id
                )
            except DiscordHTTPError as exc:
                raise EngineError(self._rest_error_text(exc)) from None
        try:
            return mj.find_command(self._commands, name, self.settings.application_id)
        except mj.CommandNotFound:
            raise EngineError(
                f"Midjourney's /{name} command is not available in this channel. Is the Midjourney bot in the "
                "server (MJ_GUILD_ID) and can the account use it in MJ_CHANNEL_ID?"
            ) from None

    async def _submit(
        self,
        job: Job,
        body: Callable[[str, Any], dict[str, Any]],
        *,
        command_name: str | None = None,
        initial_command: dict[str, Any] | None = None,
    ) -> None:
        """Send the job's interaction in the engine's task group; return once Discord accepted it (or it waits)."""
        done = anyio.Event()
        outcome: list[BaseException] = []

        async def send() -> None:
            try:
                await self._acquire_slot(job, done)
                command = initial_command
                try:
                    await self.rest.interaction(body(job.nonce, command))
                except InvalidRequest as exc:
                    if not (exc.stale_command and command_name):
                        raise
                    # Midjourney updated its command: read the index afresh and retry once.
                    log.info("stale /%s version: refreshing the command index", command_name)
                    command = await self._command(command_name, refresh=True)
                    await self.rest.interaction(body(job.nonce, command))
                job.submitted = True
                job.touch()
            except (DiscordHTTPError, EngineError) as exc:
                text = str(exc) if isinstance(exc, EngineError) else self._rest_error_text(exc)
                outcome.append(EngineError(text))
                self._finish(job, error=text)
            finally:
                done.set()

        self._spawn(send)
        await done.wait()
        if outcome:
            raise outcome[0]

    async def _acquire_slot(self, job: Job, accepted: anyio.Event) -> None:
        while self._active >= self.settings.max_active_jobs:
            if job.queued_note is None:
                job.queued_note = "held locally until one of this account's jobs finishes"
                job.touch()
                accepted.set()  # the caller returns now; this task submits when a slot frees
            await self._slot_freed.wait()
        self._active += 1
        job.holds_slot = True

    def _release_slot(self, job: Job) -> None:
        if job.holds_slot:
            job.holds_slot = False
            self._active -= 1
            event, self._slot_freed = self._slot_freed, anyio.Event()
            event.set()

    def _finish(self, job: Job, *, error: str | None = None) -> None:
        if error is not None:
            job.fail(error)
        elif job.status is not JobStatus.COMPLETED:
            job.complete()
        self._release_slot(job)
        self.store.finished(job)

    def _earlier_press(self, message_id: str, button_name: str) -> Job | None:
        for job in self.store.running():
            if job.parent_message_id == message_id and job.parent_button == button_name:
                return job
        key = f"press:{message_id}:{button_name}"
        return self.store.get(key)

    # --- events --------------------------------------------------------------------------------------------

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Handle one gateway dispatch. Cheap for the events of others; never raises."""
        self.events_handled += 1
        if event.startswith("INTERACTION"):
            self._on_interaction(event, data)
            return
        if data.get("channel_id") != self.settings.channel_id:
            return
        if event == "MESSAGE_DELETE":
            return  # the progress message is deleted before the result arrives: nothing to do
        author = data.get("author")
        if isinstance(author, dict):
            if author.get("id") not in BOT_IDS:
                return
        elif event != "MESSAGE_UPDATE" or self.store.get(str(data.get("id"))) is None:
            return  # partial updates carry no author: only those of known messages matter
        try:
            self._on_message(data)
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
        elif event == "INTERACTION_SUCCESS":
            job.touch()

    def _correlate(self, msg: dict[str, Any]) -> Job | None:
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
        content = mj.parse_content(msg.get("content") or "")
        me = self.gateway.user_id
        if content.user_id and me and content.user_id != me:
            return None  # another user's job in the same channel
        reference = msg.get("message_reference")
        parent_id = reference.get("message_id") if isinstance(reference, dict) else None
        candidates = [j for j in store.running() if j.submitted and j.result_message_id is None]
        if parent_id:
            for job in sorted(candidates, key=lambda j: j.created):
                if job.parent_message_id != parent_id or job.progress_message_id:
                    continue
                if job.parent_index is None or content.image_index in (None, job.parent_index):
                    return job
        if content.prompt is not None:
            # Last resort: the oldest running job of ours with the same prompt that has no message yet.
            wanted = mj.normalise_prompt(content.prompt)
            for job in sorted(candidates, key=lambda j: j.created):
                if job.progress_message_id is None and job.job_uuid is None and job.normalised_prompt == wanted:
                    return job
        return None

    def _on_message(self, msg: dict[str, Any]) -> None:
        job = self._correlate(msg)
        if job is None:
            return
        message_id = str(msg.get("id"))
        if job.status.finished and message_id != job.result_message_id:
            return  # a finished job only accepts updates of its own result message
        self.store.index(job, message_id)
        if isinstance(msg.get("flags"), int):
            job.message_flags = msg["flags"]
        uuid = mj.message_job_uuid(msg)
        if uuid and job.job_uuid is None:
            self.store.index_uuid(job, uuid)

        verdict = mj.classify_embeds(msg.get("embeds") or [])
        if verdict is not None:
            if verdict.category == "queued":
                job.status = JobStatus.QUEUED
                job.queued_note = "Midjourney queued the job: the account is at its concurrency limit"
                job.progress_message_id = job.progress_message_id or message_id
                job.touch()
            elif verdict.fails_job:
                reason = f"{verdict.title}: {verdict.description}".strip().rstrip(":")
                if verdict.account_problem:
                    self.account_problem = reason
                self._finish(job, error=f"Midjourney refused the job. {reason}")
            if verdict.fails_job or verdict.category == "queued":
                return
        content_text = msg.get("content") or ""
        failure = mj.plain_failure(content_text)
        if failure:
            self._finish(job, error=f"Midjourney could not run the job: {failure}")
            return
        content = mj.parse_content(content_text)
        attachments = [a for a in msg.get("attachments") or [] if isinstance(a, dict)]
        final_image = next((a for a in attachments if not mj.is_progress_attachment(str(a.get("filename", "")))), None)
        done = content.state == "done" or (content.image_index is not None and content.state == "unknown")
        if done and final_image is not None:
            self._complete(job, msg, final_image)
        elif content.state == "waiting":
            job.progress_message_id = message_id
            job.status = JobStatus.QUEUED
            job.touch()
        elif content.state == "progress":
            job.progress_message_id = job.progress_message_id or message_id
            job.status = JobStatus.IN_PROGRESS
            job.queued_note = None
            job.progress = max(job.progress, min(99, content.progress or 0))
            if attachments:
                job.preview_url = attachments[0].get("url") or job.preview_url
            job.touch()
        elif content.state == "stopped":
            self._finish(job, error="Midjourney stopped the job before it finished (cancelled or refused).")
        elif content.state == "paused":
            job.status = JobStatus.QUEUED
            job.queued_note = "Midjourney paused the job (relax queue)"
            job.touch()

    def _complete(self, job: Job, msg: dict[str, Any], image: dict[str, Any]) -> None:
        job.result_message_id = str(msg.get("id"))
        self.store.index(job, job.result_message_id)
        job.image_url = image.get("url")
        job.buttons = mj.parse_buttons(msg.get("components") or [])
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
        self._finish(job)

    def _rebuild(self, msg: dict[str, Any]) -> Job:
        """A job from a Discord message alone (after a restart or eviction)."""
        content = mj.parse_content(msg.get("content") or "")
        job = Job(
            nonce=str(msg.get("id")),
            kind=content.kind if content.kind != "unknown" else "imagine",
            prompt=content.prompt or "",
            normalised_prompt=mj.normalise_prompt(content.prompt or ""),
        )
        reference = msg.get("message_reference")
        if isinstance(reference, dict):
            job.parent_message_id = reference.get("message_id")
        self.store.add(job)
        self._on_message(msg)
        if job.in_flight and not job.progress_message_id:
            job.progress_message_id = job.nonce
        return job

    def _on_ready(self, reconnected: bool) -> None:
        if reconnected and self._tg is not None and any(j.submitted for j in self.store.running()):
            self._tg.start_soon(self.reconcile)

    async def reconcile(self) -> None:
        """After a lost session: read the channel's recent messages and apply what we missed."""
        try:
            messages = await self.rest.messages(self.settings.channel_id, limit=100)
        except DiscordHTTPError as exc:
            log.warning("could not reconcile jobs after a new session: %s", exc)
            return
        for msg in reversed(messages):  # Discord returns newest first
            author = msg.get("author")
            if isinstance(author, dict) and author.get("id") in BOT_IDS:
                msg.setdefault("channel_id", self.settings.channel_id)
                self._on_message(msg)

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

    # --- words for the model -------------------------------------------------------------------------------

    def _rest_error_text(self, exc: DiscordHTTPError) -> str:
        if isinstance(exc, Unauthorized):
            return "Discord rejected the token (401). Set MJ_DISCORD_TOKEN to a valid user token and restart."
        if isinstance(exc, Forbidden):
            return (
                f"The account has no access to channel {self.settings.channel_id} (403). Check MJ_CHANNEL_ID and "
                "MJ_GUILD_ID, and that the account can post there."
            )
        if isinstance(exc, NotFound):
            return "Discord says the channel or guild does not exist (404). Check MJ_CHANNEL_ID and MJ_GUILD_ID."
        return f"Discord error: {exc}. Try again in a moment."
