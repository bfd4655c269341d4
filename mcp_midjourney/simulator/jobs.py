"""Midjourney jobs: per-account concurrency and queue, and the life of one job in messages.

A job's life, as the real bot lives it (protocol.md §3): "Waiting to start" (the interaction's response,
with its nonce) -> progress edits of that same message (a low-resolution WEBP, a Cancel button) -> the
progress message is deleted and the result is a brand-new message with no nonce and no interaction.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio

from . import buttons
from .chat import INTERACTION_COMMAND, Chat, Interaction
from .faults import EmbedAnswer
from .ids import job_uuid
from .images import ImageKey, render_animation, render_step
from .messages import Message, embed, user_object
from .prompts import filename_user, slug
from .state import Channel, StoredFile, World

JSON = dict[str, Any]

logger = logging.getLogger("mcp_midjourney.simulator")

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]

_SPEED = {"fast": 1.0, "turbo": 0.5, "relax": 2.0}
_MODE_WORD = {"fast": "fast", "turbo": "turbo", "relax": "relaxed"}
ERROR_COLOUR = 16711680
NOTICE_COLOUR = 16239475


@dataclass
class Job:
    """One Midjourney job and everything its messages are made of."""

    uuid: str
    kind: str  # imagine, reroll, blend, variation, remix, upscale, zoom, pan, animate
    echo: str  # the prompt as the bot writes it
    user: JSON
    channel: Channel
    interaction: Interaction | None
    label: str = ""  # "Variations (Strong) by", "Zoom Out by"...; "" for a plain grid
    progress_label: str | None = None  # upscales say "Upscaling by" while they run
    result: str = "grid"  # grid | single | video (a grid of videos) | clip (one picked video)
    videos: int = 4  # a video grid's videos (--bs)
    seed: str = ""  # whose pixels a single result shows (the parent job's uuid)
    index: int = 0  # and which of them
    scale: int = 1  # 2 for an upscaled (Subtle/Creative/2x/4x) single
    family: str = "v7"
    reference_id: str | None = None  # the message whose button made this job
    mode: str = "fast"
    state: str = "created"  # queued | running | done | stopped
    message: Message | None = None  # the progress message while running
    result_message_id: str | None = None
    queued_message_id: str | None = None
    used_upscales: set[int] = field(default_factory=set)
    # False when another message already answered the interaction (the 2nd-4th jobs of "Imagine all").
    answers_interaction: bool = True
    cancelled: anyio.Event = field(default_factory=anyio.Event)
    refusal: EmbedAnswer | None = None  # a fault: refused with this embed once it started
    start_message_id: str | None = None  # the "Waiting to start" / progress message, kept after it is deleted

    @property
    def user_id(self) -> str:
        """Who asked for the job."""
        return str(self.user["id"])

    def head(self, *, running: bool = False) -> str:
        """`**<echo>** - <label> <@uid>`: the part every message of the job shares."""
        label = self.progress_label if running and self.progress_label else self.label
        who = f"<@{self.user_id}>"
        return f"**{self.echo}** - {label} {who}" if label else f"**{self.echo}** - {who}"

    def image_key(self, percent: int | None = None) -> ImageKey:
        """The picture of the result (or of a progress frame at `percent`)."""
        if self.result == "single":
            return ImageKey(self.echo, self.seed, self.index, percent, scale=1 if percent is not None else self.scale)
        return ImageKey(self.echo, self.uuid, 0, percent)

    def filename(self, extension: str = "png") -> str:
        """`<username>_<prompt slug>_<uuid>.png`, as Midjourney names its results."""
        return f"{filename_user(str(self.user['username']))}_{slug(self.echo)}_{self.uuid}.{extension}"


class Jobs:
    """Every job the bot has seen, the per-account slots and queues, and the job runner."""

    def __init__(self, world: World, chat: Chat, spawn: Spawn) -> None:
        self.world = world
        self.chat = chat
        self._spawn = spawn
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.running: Counter[str] = Counter()
        self.queues: dict[str, deque[Job]] = {}
        # Witnesses of a client's own limits, per user: the most jobs in flight (running or queued) at once, and
        # the jobs that arrived when the user already ran max_running_jobs (a client that over-commits).
        self.peak_in_flight: Counter[str] = Counter()
        self.over_commits: Counter[str] = Counter()

    def remember(self, job: Job) -> Job:
        """Keep a job findable by uuid (buttons and the Midjourney CDN name jobs by uuid)."""
        self.jobs[job.uuid] = job
        while len(self.jobs) > 5_000:
            self.jobs.popitem(last=False)
        return job

    def submit(self, job: Job) -> None:
        """Start a job now, queue it ("Job queued"), or refuse it ("Queue full"), as Midjourney would."""
        self.remember(job)
        config = self.world.config
        interaction = job.interaction
        limited = interaction is not None and interaction.account is not None
        queue = self.queues.setdefault(job.user_id, deque())
        if limited:
            in_flight = self.running[job.user_id] + sum(1 for queued in queue if queued.state == "queued")
            self.peak_in_flight[job.user_id] = max(self.peak_in_flight[job.user_id], in_flight + 1)
            if self.running[job.user_id] >= config.max_running_jobs:
                self.over_commits[job.user_id] += 1
        if not limited or self.running[job.user_id] < config.max_running_jobs:
            self.running[job.user_id] += 1
            job.state = "running"
            if interaction is not None:
                self.chat.succeed(interaction)
            self._spawn(partial(self._run, job, as_response=job.answers_interaction))
            return
        assert interaction is not None
        footer = f"/imagine {job.echo}"
        if len(queue) >= config.max_queued_jobs:
            job.state = "stopped"
            notice = embed(
                "Queue full",
                "Your job queue is full. Please wait for a job to finish first, then resubmit this one.",
                color=ERROR_COLOUR,
                footer=footer,
            )
            self.reply_embed(interaction, notice)
            return
        job.state = "queued"
        queue.append(job)
        notice = embed(
            "Job queued",
            "Your job will start when one of your running jobs finishes.",
            color=NOTICE_COLOUR,
            footer=footer,
        )
        job.queued_message_id = self.reply_embed(interaction, notice).id

    def queue_then_run(self, job: Job, notice: JSON, delay: float) -> None:
        """Answer "Job queued" (a fault: whatever the account's load), then start the job `delay` later."""
        assert job.interaction is not None
        self.remember(job)
        job.state = "queued"
        job.queued_message_id = self.reply_embed(job.interaction, notice).id
        self.world.faults.note("answer", str(notice.get("title")))

        async def later() -> None:
            await anyio.sleep(delay)
            if job.state == "queued":
                self.running[job.user_id] += 1
                job.state = "running"
                await self._run(job, as_response=False)

        self._spawn(later)

    def shadow(self, job: Job, user_id: str = "1012983546824114217", username: str = "other_user") -> None:
        """Another user runs a job with the very same prompt in the same channel (a fault for correlation)."""
        user = user_object(user_id, username)
        snowflakes = self.world.snowflakes
        it = Interaction(snowflakes.next(), snowflakes.next(), INTERACTION_COMMAND, user, job.channel, name="imagine")
        twin = Job(job_uuid(), job.kind, job.echo, user, job.channel, it, family=job.family, mode=job.mode)
        self.world.faults.note("shadow", twin.uuid)
        self.submit(twin)

    def reply_embed(
        self, interaction: Interaction, body: JSON, *, ephemeral: bool = True, components: list[JSON] | None = None
    ) -> Message:
        """Answer an interaction with one embed (errors and notices are only for the asker), maybe with buttons."""
        message = self.chat.compose(
            interaction.channel, interaction=interaction, nonce=True, ephemeral=ephemeral, embeds=[body]
        )
        if components:
            message.components = components
        self.chat.succeed(interaction)
        return self.chat.post(message)

    def cancel(self, uuid: str) -> bool:
        """Stop a running or queued job (the Cancel Job button)."""
        job = self.jobs.get(uuid)
        if job is None or job.state not in ("running", "queued"):
            return False
        if job.state == "queued":
            self.queues[job.user_id].remove(job)
            job.state = "stopped"
        job.cancelled.set()
        return True

    def duration(self, job: Job) -> float:
        """Seconds from start to result for this job's speed mode."""
        return self.world.config.job_seconds * _SPEED.get(job.mode, 1.0)

    async def _pause(self, job: Job, seconds: float) -> bool:
        """Sleep; True if the job was cancelled meanwhile."""
        with anyio.move_on_after(seconds):
            await job.cancelled.wait()
        return job.cancelled.is_set()

    async def _run(self, job: Job, *, as_response: bool) -> None:
        try:
            await self._live(job, as_response=as_response)
        except Exception:  # a bug must not take the whole simulator down with it
            logger.exception("simulator job %s crashed", job.uuid)
        finally:
            self._release(job)

    async def _live(self, job: Job, *, as_response: bool) -> None:
        config = self.world.config
        total = self.duration(job)
        mode = _MODE_WORD.get(job.mode, job.mode)
        # A queued job's start message is a follow-up: same interaction, but the nonce went to "Job queued".
        start = self.chat.compose(
            job.channel,
            f"{job.head(running=True)} (Waiting to start)",
            interaction=job.interaction,
            nonce=as_response,
            follow_up_of=None if as_response else job.queued_message_id,
            reference_id=job.reference_id,
        )
        job.message = self.chat.post(start)
        job.start_message_id = start.id
        steps = max(1, config.progress_steps)
        mine = job.interaction is not None and job.interaction.account is not None
        stall = self.world.faults.take_stall() if mine else None
        for step in range(1, steps + 1):
            if await self._pause(job, total / (steps + 1)):
                return self._stopped(job)
            if stall is not None and step > stall:
                self.world.faults.note("stall", job.uuid)
                await job.cancelled.wait()  # stuck on Midjourney's side until someone cancels it
                return self._stopped(job)
            if job.refusal is not None and step > 1:
                return self._refused(job, start, job.refusal)
            percent = round(step * 100 / (steps + 1))
            frame = await self._frame(job, step, percent)
            start.content = f"{job.head(running=True)} ({percent}%) ({mode})"
            start.attachments = [frame]
            start.components = buttons.cancel_rows(job.uuid)
            self.chat.edit(start)
        if await self._pause(job, total / (steps + 1)):
            return self._stopped(job)
        if job.result != "video":
            await self._prerender(job.image_key())
        self._finish(job, start, mode)

    async def _frame(self, job: Job, step: int, percent: int) -> JSON:
        """A progress frame: `<uuid>_grid_0.webp` of an image job, `<uuid>_step_<N>.jpeg` of a video job."""
        if job.result == "video":
            data = await anyio.to_thread.run_sync(render_step, job.echo, job.uuid, percent)
            stored = StoredFile(f"{job.uuid}_step_{step}.jpeg", "image/jpeg", len(data), 256, 256, loader=lambda: data)
            return self.world.add_file(job.channel.id, stored)
        await self._prerender(job.image_key(percent))
        return self.world.image_attachment(job.channel.id, job.image_key(percent), f"{job.uuid}_grid_0.webp")

    async def _prerender(self, key: ImageKey) -> None:
        # Drawing and encoding take milliseconds: keep them off the loop that answers heartbeats.
        await anyio.to_thread.run_sync(self.world.images.get, key)

    def _finish(self, job: Job, progress: Message, mode: str) -> None:
        words = f"({mode})"
        if self.world.config.website_link:
            words = f"[(Open on website for full quality)](<https://midjourney.com/jobs/{job.uuid}>) ({mode})"
        result = self.chat.compose(
            job.channel, f"{job.head()} {words}", reference_id=job.reference_id, mention=job.user
        )
        if job.result == "video":
            data = render_animation(job.echo, job.uuid)
            stored = StoredFile(job.filename("webp"), "image/webp", len(data), 512, 512, loader=lambda: data)
            result.attachments = [self.world.add_file(job.channel.id, stored)]
            result.components = buttons.video_rows(job.uuid, job.videos)
        else:
            result.attachments = [self.world.image_attachment(job.channel.id, job.image_key(), job.filename())]
            result.components = (
                buttons.grid_rows(job.uuid)
                if job.result == "grid"
                else buttons.single_rows(job.uuid, job.family, upscaled=True, extra=self.world.config.extra_buttons)
            )
        job.state = "done"
        job.result_message_id = result.id
        if self.world.config.delete_before_final:
            self.chat.delete(progress)
        self.world.expect_result(result.id, job.uuid, job.user_id)
        self.chat.post(result)
        if not self.world.config.delete_before_final:
            self.chat.delete(progress)
        job.message = None

    def _refused(self, job: Job, progress: Message, answer: EmbedAnswer) -> None:
        """Refused after it started (output filters...): an error reply to the interaction, the progress gone."""
        body = embed(answer.title, answer.description, color=answer.color, footer=f"/imagine {job.echo}")
        job.state = "stopped"
        follow_up = self.chat.compose(
            job.channel, interaction=job.interaction, follow_up_of=progress.id, embeds=[body], mention=job.user
        )
        self.chat.delete(progress)
        self.world.faults.note("answer", answer.title)
        self.chat.post(follow_up)
        job.message = None

    def _stopped(self, job: Job) -> None:
        job.state = "stopped"
        if job.message is not None:
            job.message.content = f"{job.head(running=True)} (Stopped)"
            job.message.components = []
            self.chat.edit(job.message)

    def _release(self, job: Job) -> None:
        if job.state == "running":
            job.state = "stopped"
        self.running[job.user_id] -= 1
        queue = self.queues.get(job.user_id)
        while queue:
            following = queue.popleft()
            if following.state != "queued":
                continue
            self.running[job.user_id] += 1
            following.state = "running"
            try:
                self._spawn(partial(self._run, following, as_response=False))
            except RuntimeError:  # the simulator is stopping (this runs as its jobs are cancelled): start nothing
                following.state = "stopped"
                self.running[job.user_id] -= 1
            break
