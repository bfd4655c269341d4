"""Jobs and the in-memory, bounded job store.

A job is data: what to send (`SlashCommand` or `ButtonPress`, built into a Discord body by the sender), and what
Discord has said of it so far. Correlation writes the observed state; the engine facade and the scheduler write where
it runs (account, charge). A job is indexed under every id Discord gives it (our nonce, the interaction id, the
progress message, the result message) and under Midjourney's job uuid, so whatever id a tool returned finds it
again. Finished jobs are evicted oldest first beyond a count and an age; running jobs are never evicted.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..models import Button, JobStatus


@dataclass(frozen=True)
class SlashCommand:
    """A Midjourney slash command to send: its name (looked up in the command index at send time) and options."""

    name: str
    options: list[dict[str, Any]]
    attachments: list[dict[str, Any]] | None = None  # files uploaded in the pinned account's channel


@dataclass(frozen=True)
class ButtonPress:
    """A press of one component of a message (the message's own account sends it)."""

    message_id: str
    custom_id: str
    message_flags: int = 0
    component_type: int = 2


Request = SlashCommand | ButtonPress


@dataclass(eq=False)
class Job:
    """One Midjourney job as the engine tracks it. Mutated only on the event loop."""

    nonce: str
    kind: str
    prompt: str
    normalised_prompt: str = ""
    status: JobStatus = JobStatus.QUEUED
    progress: int = 0
    interaction_id: str | None = None
    progress_message_id: str | None = None
    result_message_id: str | None = None
    job_uuid: str | None = None
    image_url: str | None = None
    image_urls: list[str] = field(default_factory=list)
    video_urls: list[str] = field(default_factory=list)  # a video result's mp4 links (protocol.md §7)
    preview_url: str | None = None
    buttons: list[Button] = field(default_factory=list)
    message_flags: int = 0
    parent_message_id: str | None = None
    parent_button: str | None = None
    parent_index: int | None = None
    error: str | None = None
    queued_note: str | None = None
    submitted: bool = False  # the interaction reached Discord (204)
    created: float = field(default_factory=time.monotonic)
    updated: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    version: int = 0
    _changed: anyio.Event = field(default_factory=anyio.Event, repr=False)
    account: str | None = None  # the account that sent it (or owns its message)
    pinned_account: str | None = None  # a button press must go through the account that owns the message
    request: Request | None = None  # what to send (None for a job rebuilt from a Discord message)
    progress_buttons: list[Button] = field(default_factory=list)  # the running job's Cancel button
    modal: Any = None  # the `Modal` Midjourney opened for this job (status needs_input)
    prompts: list[str] = field(default_factory=list)  # /describe's or /shorten's answer
    info: dict[str, Any] | None = None  # /info's facts
    note: str | None = None  # a reply in words (mode switches, confirmations)
    spend: Any = None  # the budget.Spend it was charged, until Discord takes it (refunded if it never does)
    reached_discord: bool = False  # Discord accepted an interaction of it once (never cleared: a requeue keeps it)
    observer: Callable[[Job], None] | None = field(default=None, repr=False)  # told of every change (the store's)

    @property
    def handle(self) -> str:
        """The id a tool returns: the result message once there is one, else the progress message, else the nonce."""
        return self.result_message_id or self.progress_message_id or self.nonce

    @property
    def command_name(self) -> str | None:
        """The slash command it sends, or None for a press: a command may be re-sent on another account."""
        return self.request.name if isinstance(self.request, SlashCommand) else None

    @property
    def in_flight(self) -> bool:
        return not self.status.finished

    def changed(self) -> anyio.Event:
        """An event set at the next change of this job (take it before checking the state)."""
        return self._changed

    def touch(self, *, progressed: bool = True) -> None:
        """Record a change and wake every waiter. `progressed` resets the no-progress timeout."""
        self.version += 1
        if progressed:
            self.updated = time.monotonic()
        event, self._changed = self._changed, anyio.Event()
        event.set()
        if self.observer is not None:
            self.observer(self)

    def complete(self) -> None:
        self.progress_buttons = []  # the Cancel button means nothing once the job ended
        self.status = JobStatus.COMPLETED
        self.progress = 100
        self.error = None
        self.finished_at = time.monotonic()
        self.touch()

    def fail(self, reason: str) -> None:
        if self.status.finished:
            return
        self.status = JobStatus.FAILED
        self.progress_buttons = []
        self.error = reason
        self.finished_at = time.monotonic()
        self.touch()


ProgressHook = Callable[[Job], Awaitable[None]]


async def wait_for(
    job: Job, seconds: float, on_change: ProgressHook | None = None, *, until_input: bool = False
) -> Job:
    """Wait until the job finishes or needs input, at most `seconds`; `on_change` hears of each change meanwhile.

    With `until_input`, also stop at the first sign Midjourney will not ask for input (its first message).
    """
    deadline = time.monotonic() + max(0.0, seconds)
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


class JobStore:
    """Jobs by every id they have; bounded for finished jobs (count and age), never for running ones."""

    def __init__(self, *, max_finished: int = 5000, max_age_seconds: float = 24 * 3600) -> None:
        self._by_id: dict[str, Job] = {}
        self._by_uuid: dict[str, Job] = {}
        self._keys: dict[int, list[str]] = {}  # id(job) -> its keys, for eviction
        self._finished: OrderedDict[int, Job] = OrderedDict()
        self._running: dict[int, Job] = {}
        self.max_finished = max_finished
        self.max_age = max_age_seconds
        self.observer: Callable[[Job], None] | None = None  # told of every job added, indexed or changed

    def __len__(self) -> int:
        return len(self._running) + len(self._finished)

    def add(self, job: Job) -> None:
        self._running[id(job)] = job
        self._keys[id(job)] = []
        job.observer = self.observer
        self.index(job, job.nonce)

    def index(self, job: Job, key: str | None) -> None:
        if not key:
            return
        if self._by_id.get(key) is not job:
            self._by_id[key] = job
            self._keys.setdefault(id(job), []).append(key)
            if job.observer is not None:
                job.observer(job)

    def keys(self, job: Job) -> list[str]:
        """Every id the job is indexed under here."""
        return list(self._keys.get(id(job), ()))

    def index_uuid(self, job: Job, uuid: str) -> None:
        job.job_uuid = uuid
        self._by_uuid[uuid] = job
        if job.observer is not None:
            job.observer(job)

    def get(self, key: str) -> Job | None:
        return self._by_id.get(key)

    def by_uuid(self, uuid: str) -> Job | None:
        return self._by_uuid.get(uuid)

    def running(self) -> list[Job]:
        return list(self._running.values())

    def finished(self, job: Job) -> None:
        """Move a job to the finished set and evict what the bounds require."""
        if self._running.pop(id(job), None) is None and id(job) not in self._finished:
            return
        self._finished[id(job)] = job
        self._finished.move_to_end(id(job))
        self.evict()

    def adopt(self, job: Job) -> None:
        """Add a job that is already finished (rebuilt from a Discord message)."""
        self.add(job)
        if job.status.finished:
            self.finished(job)

    def evict(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        evicted = 0
        while self._finished:
            key, oldest = next(iter(self._finished.items()))
            too_many = len(self._finished) > self.max_finished
            too_old = oldest.finished_at is not None and now - oldest.finished_at > self.max_age
            if not (too_many or too_old):
                break
            del self._finished[key]
            for k in self._keys.pop(key, []):
                if self._by_id.get(k) is oldest:
                    del self._by_id[k]
            if oldest.job_uuid and self._by_uuid.get(oldest.job_uuid) is oldest:
                del self._by_uuid[oldest.job_uuid]
            evicted += 1
        return evicted
