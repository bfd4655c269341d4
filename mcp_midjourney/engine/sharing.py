"""What the engine shares with every other server of its accounts, wired in one place: the backend MJ_STATE_URL
names (state.py), the slot leases (leases.py) and the job index (state_jobs.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from anyio.abc import TaskGroup

from ..config import Settings
from .accounts import Account
from .leases import Leases
from .state import MemoryBackend, StateBackend, account_key
from .state_jobs import SharedJobs
from .store import Job, JobStore


class Sharing:
    """The engine's shared state: `leases` before a job is sent, `find` for a job another server runs."""

    def __init__(
        self,
        backend: StateBackend | None,
        settings: Settings,
        store: JobStore,
        accounts: Sequence[Account],
        spawn: Callable[..., None],
    ) -> None:
        # No backend given: this process alone (tests, benchmarks). Its slots still go through leases, but no job
        # record is written: nobody else could read it, and a record per job would only grow.
        self.shared = backend is not None
        backend = backend or MemoryBackend()
        self.backend = backend
        self.accounts = accounts
        self.leases = Leases(backend, settings.lease_seconds)
        self._keys = {a.name: account_key(a.spec.token.get_secret_value()) for a in accounts}
        self.jobs = SharedJobs(
            backend, store, account_key=lambda name: self._keys.get(name or ""), account_name=self._name, spawn=spawn
        )
        if self.shared:
            store.observer = self.jobs.changed

    def _name(self, key: Any) -> str | None:
        return next((name for name, k in self._keys.items() if k == key), None)

    def start(self, tg: TaskGroup) -> None:
        tg.start_soon(self.leases.run)
        tg.start_soon(self.jobs.run)
        if self.shared:
            tg.start_soon(self.jobs.heartbeat)

    async def find(self, message_id: str) -> Job | None:
        """The job another server runs under this id (followed from here), or None."""
        return await self.jobs.find(message_id)
