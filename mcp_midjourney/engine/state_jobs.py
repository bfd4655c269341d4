"""Jobs followed from any server: the server that runs a job writes its record to the shared state, under every
id the job has (nonce, interaction, progress and result messages, Midjourney's uuid, pressed-button keys); another
server asked for one of those ids reads the record and follows it until it ends.

Only the server that sent a job sees the interaction events that tie Discord's messages to it, so it alone keeps
the job; every change (each `Job.touch`) marks it for writing, and `run` writes what changed in batches, a few
times a second. A follower is a `Job` rebuilt from the record and refreshed by polling: waiting on it (`wait_for`)
wakes when its owner's record says it moved or finished. A button press on a followed job goes through this
server's own connection to the same account, as any press does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from ..models import Button, JobStatus
from .state import StateBackend, StateError
from .store import Job, JobStore

log = logging.getLogger(__name__)

WRITE_EVERY = 0.05  # seconds between two batches of records
FOLLOW_EVERY = 0.2  # seconds between two reads of a followed job
HEARTBEAT = 10.0  # seconds between two writes of a running job's record, changed or not: its owner is alive
STALE = 6 * HEARTBEAT  # a running job's record not written for this long: its owner stopped (Discord is asked)
FIELDS = (
    "nonce",
    "kind",
    "prompt",
    "normalised_prompt",
    "progress",
    "interaction_id",
    "progress_message_id",
    "result_message_id",
    "job_uuid",
    "image_url",
    "image_urls",
    "preview_url",
    "message_flags",
    "parent_message_id",
    "parent_button",
    "parent_index",
    "error",
    "queued_note",
    "submitted",
    "prompts",
    "info",
    "note",
    "reached_discord",
    "version",
)


def to_record(job: Job, key: str, server: str, account: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {name: getattr(job, name) for name in FIELDS}
    record |= {
        "key": key,
        "server": server,
        "written": time.time(),
        "status": job.status.value,
        "account": job.account,
        "account_key": account,
        "buttons": [dataclasses.asdict(b) for b in job.buttons],
        "progress_buttons": [dataclasses.asdict(b) for b in job.progress_buttons],
    }
    return record


def apply_record(job: Job, record: dict[str, Any], account: str | None) -> None:
    """Make the follower `job` say what the record says (`account`: this server's name for the account)."""
    for name in FIELDS:
        if name in record:
            setattr(job, name, record[name])
    job.status = JobStatus(record.get("status", JobStatus.QUEUED.value))
    job.account = account or record.get("account")
    job.buttons = [Button(**b) for b in record.get("buttons") or []]
    job.progress_buttons = [Button(**b) for b in record.get("progress_buttons") or []]


class SharedJobs:
    """This server's jobs written to the shared state, and other servers' jobs followed from it."""

    def __init__(
        self,
        backend: StateBackend,
        store: JobStore,
        *,
        account_key: Callable[[str | None], str | None],
        account_name: Callable[[str | None], str | None],
        spawn: Callable[..., None],
    ) -> None:
        self.backend = backend
        self.store = store
        self.server = uuid.uuid4().hex[:12]  # this process
        self._account_key = account_key  # our account name -> its shared key
        self._account_name = account_name  # a shared key -> our account name
        self._spawn = spawn
        self._dirty: dict[int, Job] = {}
        self._keys: dict[int, str] = {}  # id(job) -> its record's key (its first nonce)
        self._wake = anyio.Event()
        self._following: dict[str, Job] = {}  # record key -> the follower
        self._failing = False

    def changed(self, job: Job) -> None:
        """A job of ours changed (the store's observer): write it at the next batch."""
        self._dirty[id(job)] = job
        self._keys.setdefault(id(job), job.nonce)
        self._wake.set()

    async def run(self) -> None:
        """Write changed jobs in batches until cancelled; a failing backend is retried (the jobs carry on)."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            await anyio.sleep(WRITE_EVERY)
            batch, self._dirty = self._dirty, {}
            try:
                await self.backend.put_jobs([self._record(job) for job in batch.values()])
            except StateError as exc:
                if not self._failing:
                    log.warning("jobs not shared for now: %s", exc)
                self._failing = True
                self._dirty = batch | self._dirty
                self._wake.set()
                await anyio.sleep(1.0)
                continue
            self._failing = False
            for job in batch.values():  # a finished job is written once more at most: forget its key then
                if job.status.finished and id(job) not in self._dirty:
                    self._keys.pop(id(job), None)

    async def heartbeat(self) -> None:
        """Write our running jobs' records every HEARTBEAT, changed or not: a record left unwritten longer than
        STALE is one whose server stopped, and other servers then read the job from Discord instead."""
        while True:
            await anyio.sleep(HEARTBEAT)
            for job in self.store.running():  # waiting for a slot too: its record must not look abandoned
                self.changed(job)

    async def flush(self, job: Job) -> None:
        """Write the job's record now (a tool is about to return its id: any server must find it at once)."""
        if self._dirty.pop(id(job), None) is None:
            return
        try:
            await self.backend.put_jobs([self._record(job)])
        except StateError:
            self.changed(job)  # the batches retry it

    def _record(self, job: Job) -> tuple[dict[str, Any], Sequence[str]]:
        key = self._keys.setdefault(id(job), job.nonce)
        ids = [*self.store.keys(job), *([job.job_uuid] if job.job_uuid else [])]
        return to_record(job, key, self.server, self._account_key(job.account)), ids

    async def find(self, message_id: str) -> Job | None:
        """The job another server runs (or ran) under this id, followed from here; None when no server has it."""
        record = await self.backend.get_job(message_id)
        if record is None or record.get("server") == self.server or _stale(record):
            # Ours (this server's store would have it, unless it forgot it), or its server stopped: Discord is asked.
            return None
        key = str(record["key"])
        follower = self._following.get(key)
        if follower is None:
            follower = Job(nonce=str(record.get("nonce")), kind=str(record.get("kind")), prompt="")
            apply_record(follower, record, self._account_name(record.get("account_key")))
            if follower.in_flight:
                self._following[key] = follower
                if len(self._following) == 1:  # the first one: start the round of reads
                    self._spawn(self._follow)
        return follower

    async def _follow(self) -> None:
        """Refresh every follower from its owner's record, in one read per round, until none is left."""
        while self._following:
            await anyio.sleep(FOLLOW_EVERY)
            keys = list(self._following)
            try:
                records = await self.backend.get_records(keys)
            except StateError:
                continue  # the backend is away: followers keep their last state until it is back
            for key, record in zip(keys, records, strict=True):
                job = self._following[key]
                if record is not None and _stale(record):
                    # Its server stopped (a client that starts one per call): stop following; the next look-up
                    # of the id reads the job back from Discord, which knows how it ended.
                    del self._following[key]
                    job.touch(progressed=False)
                    continue
                if record is None:
                    job.fail("The server running this job no longer shares it (it stopped?); ask again later.")
                elif record.get("version") != job.version or record.get("status") != job.status.value:
                    version = record.get("version")
                    apply_record(job, record, self._account_name(record.get("account_key")))
                    job.touch()
                    job.version = version if isinstance(version, int) else job.version
                if not job.in_flight:
                    del self._following[key]


def _stale(record: dict[str, Any]) -> bool:
    """A running job's record its server has not written for STALE seconds: that server stopped."""
    written = record.get("written")
    running = record.get("status") not in ("completed", "failed")
    return running and isinstance(written, int | float) and time.time() - written > STALE
