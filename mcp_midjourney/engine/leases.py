"""An account's slots across every server that shares the state: a job runs only while it holds a lease.

The scheduler (no I/O) picks the account and counts this server's own jobs; before the job is sent, it takes one
of the account's leases in the shared state (state.py), which counts every server's. Leases expire unless renewed
(every third of MJ_LEASE_SECONDS by `run`), so a server that dies gives its slots back. Waiting is fair across
servers: only the oldest waiting job of each server asks for an account (the others wait behind it here), and the
backend grants a freed slot to the oldest ticket in the account's line, whichever server holds it.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid

import anyio

from .accounts import Account
from .state import StateBackend, StateError, account_key
from .store import Job

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often the oldest waiting job asks again (a slot another server frees is seen this late)


class Leases:
    """This server's leases on the accounts' slots (see the module's docstring)."""

    def __init__(self, backend: StateBackend, ttl: float) -> None:
        self.backend = backend
        self.ttl = ttl
        self._held: dict[int, tuple[str, str]] = {}  # id(job) -> (account key, ticket)
        self._waiting: set[str] = set()  # tickets in a line, renewed with the leases
        self._heads: dict[
            str, anyio.Lock
        ] = {}  # account key -> the local line (anyio's Lock is first come first served)
        self._wake: dict[str, anyio.Event] = {}  # account key -> set when a slot of it may have freed
        self._released: list[tuple[str, str]] = []  # leases given back here, not yet in the backend
        self._flush = anyio.Event()
        self._failing = False

    @staticmethod
    def key(account: Account) -> str:
        return account_key(account.spec.token.get_secret_value())

    def holds(self, job: Job) -> bool:
        return id(job) in self._held

    async def hold(self, job: Job, account: Account, accepted: anyio.Event) -> bool:
        """Wait until the job holds a lease on `account` (False if it finished meanwhile); when it has to wait, its
        caller returns (`accepted`) with the job held. Raises `StateError` when the shared state cannot be reached."""
        key, ticket, since = self.key(account), uuid.uuid4().hex, time.time()
        head = self._heads.setdefault(key, anyio.Lock())
        waited = False
        async with head:
            self._waiting.add(ticket)
            try:
                while True:
                    if job.status.finished:
                        if waited:
                            await self.backend.release([ticket])
                        return False
                    await self._released_first()
                    if await self.backend.acquire(key, ticket, since, account.capacity, self.ttl):
                        break
                    if not waited:
                        waited = True
                        job.queued_note = (
                            "held by the server until the account has a free slot (shared with other servers)"
                        )
                        job.touch(progressed=False)
                        accepted.set()
                    wake = self._wake.setdefault(key, anyio.Event())
                    with anyio.move_on_after(POLL_SECONDS):
                        await wake.wait()
            finally:
                self._waiting.discard(ticket)
        self._held[id(job)] = (key, ticket)
        return True

    async def _released_first(self) -> None:
        """Slots given back here reach the backend before this server asks for another."""
        if self._released:
            await self._send_releases()

    def release(self, job: Job) -> None:
        """The job ended (or moves elsewhere): its lease goes back, and this server's waiting jobs look again."""
        held = self._held.pop(id(job), None)
        if held is None:
            return
        self._released.append(held)
        self._flush.set()
        wake = self._wake.pop(held[0], None)
        if wake is not None:
            wake.set()

    async def _send_releases(self) -> None:
        batch, self._released = self._released, []
        try:
            await self.backend.release([ticket for _key, ticket in batch])
        except StateError:
            self._released = batch + self._released  # tried again; meanwhile the leases expire on their own
            raise

    async def run(self) -> None:
        """Give leases back as jobs end, and renew the ones held (and the tickets waiting) until cancelled; when
        the server stops, its leases go back at once (other servers need not wait for them to run out)."""
        try:
            await self._serve()
        finally:
            tickets = [t for _k, t in self._released + list(self._held.values())] + list(self._waiting)
            with anyio.move_on_after(2.0, shield=True), contextlib.suppress(StateError):
                await self.backend.release(tickets)  # or they run out on their own

    async def _serve(self) -> None:
        every = self.ttl / 3
        next_renew = time.monotonic() + every
        while True:
            with anyio.move_on_after(max(0.0, next_renew - time.monotonic())):
                await self._flush.wait()
            self._flush = anyio.Event()
            try:
                if self._released:
                    await self._send_releases()
                if time.monotonic() >= next_renew:
                    next_renew = time.monotonic() + every
                    await self.backend.renew([t for _k, t in self._held.values()] + list(self._waiting), self.ttl)
                if self._failing:
                    self._failing = False
                    log.warning("the shared state is back (%s)", self.backend.url)
            except StateError as exc:
                if not self._failing:
                    self._failing = True
                    log.warning("%s", exc)
                await anyio.sleep(1.0)
                self._flush.set()
