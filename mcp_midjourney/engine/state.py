"""The state every server of an account shares, behind one interface: slot leases, the job index, the budget.

`MJ_STATE_URL` chooses the backend: `sqlite:///<path>` (the default, a file in the state folder: every server on
the machine), `redis://host:port/db` (every machine; the optional `[redis]` extra) or `memory://` (this process
only, for tests). Each backend gives the same four things:

- **slot leases**: `acquire` takes one of an account's slots for a job, or puts the job in the account's line; a
  lease expires unless renewed, so a server that dies gives its slots back; the line is oldest first across servers;
- **the job index**: every id a tool returned maps to its job's record (status, ids, buttons), written by the
  server that runs the job and read by any other (`state_jobs.py`);
- **the budget's record**: a `BudgetStore` (`budget_store.py`) whose lock holds across processes;
- **a ping**, for `doctor`.

A backend that cannot be reached raises `StateError`, whose words name MJ_STATE_URL.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .budget_store import BudgetStore, MemoryStore
from .errors import EngineError

JOB_TTL = 24 * 3600.0  # how long a job's record stays findable by another server


class StateError(EngineError):
    """The shared state cannot be reached or used; the words name MJ_STATE_URL (never its password)."""


def safe_url(url: str) -> str:
    """The URL without a password, fit for errors and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def unreachable(url: str, exc: BaseException) -> StateError:
    """The error a tool call gets when the backend fails: what, where, and that it may simply be retried."""
    reason = str(exc).replace(url, safe_url(url)) or type(exc).__name__
    return StateError(
        f"The shared state at MJ_STATE_URL={safe_url(url)} is unreachable ({reason}). Nothing was charged for "
        "this call; retry once it is back (no restart needed), or point MJ_STATE_URL elsewhere."
    )


def account_key(token: str) -> str:
    """The key of a Discord account in the shared state: a hash of its token (servers name accounts freely)."""
    return "acct-" + hashlib.sha256(token.encode()).hexdigest()[:24]


class StateBackend(Protocol):
    """What the engine shares with every other server of the same state. Every method may raise `StateError`."""

    url: str

    def budget_store(self) -> BudgetStore:
        """The budget's record in this backend (its methods block: call them off the event loop)."""
        ...

    async def acquire(self, account: str, ticket: str, since: float, capacity: int, ttl: float) -> bool:
        """Take a slot of `account` for `ticket` if one is free and no older ticket waits for it; else put the
        ticket in the account's line (held `ttl` seconds). True once the ticket holds a lease."""
        ...

    async def release(self, tickets: Sequence[str]) -> None:
        """Give these leases back (and take these tickets out of any line)."""
        ...

    async def renew(self, tickets: Sequence[str], ttl: float) -> None:
        """Keep these leases and waiting tickets alive for `ttl` more seconds."""
        ...

    async def count(self, account: str) -> int:
        """The leases of `account` alive now (doctor, tests)."""
        ...

    async def put_jobs(self, records: Sequence[tuple[dict[str, Any], Sequence[str]]]) -> None:
        """Write job records, each findable by its ids."""
        ...

    async def get_job(self, key: str) -> dict[str, Any] | None:
        """The record of the job an id belongs to, or None."""
        ...

    async def get_records(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        """The records of these jobs, by their records' keys (a follower's poll: one call for all of them)."""
        ...

    async def ping(self) -> None:
        """Raise `StateError` unless the backend answers."""
        ...

    async def aclose(self) -> None: ...


def open_backend(url: str, state_dir: Path) -> StateBackend:
    """The backend `url` names (MJ_STATE_URL, already validated by config.py)."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBackend(url)
    if scheme == "sqlite":
        from .state_sqlite import SqliteBackend

        return SqliteBackend(url, state_dir)
    if scheme in ("redis", "rediss"):
        from .state_redis import RedisBackend

        return RedisBackend(url, state_dir)
    raise StateError(f"MJ_STATE_URL={safe_url(url)}: unknown scheme {scheme!r} (use sqlite://, redis:// or memory://)")


# -- the arithmetic of leases, shared by the in-process and SQLite backends -----------------------------------


@dataclass
class LeaseTable:
    """Leases and lines in memory: account -> {ticket: expires}, account -> {ticket: (since, expires)}."""

    leases: dict[str, dict[str, float]] = field(default_factory=dict)
    line: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def acquire(self, account: str, ticket: str, since: float, capacity: int, ttl: float, now: float) -> bool:
        held = self.leases.setdefault(account, {})
        waiting = self.line.setdefault(account, {})
        for t in [t for t, expires in held.items() if expires < now]:
            del held[t]
        for t in [t for t, (_s, expires) in waiting.items() if expires < now]:
            del waiting[t]
        if ticket in held:
            return True
        free = capacity - len(held)
        ahead = sum(1 for t, (s, _e) in waiting.items() if t != ticket and (s, t) < (since, ticket))
        if free > 0 and ahead < free:
            held[ticket] = now + ttl
            waiting.pop(ticket, None)
            return True
        waiting[ticket] = (since, now + ttl)
        return False

    def release(self, tickets: Sequence[str]) -> None:
        for held in self.leases.values():
            for ticket in tickets:
                held.pop(ticket, None)
        for waiting in self.line.values():
            for ticket in tickets:
                waiting.pop(ticket, None)

    def renew(self, tickets: Sequence[str], ttl: float, now: float) -> None:
        wanted = set(tickets)
        for held in self.leases.values():
            for ticket in wanted & held.keys():
                held[ticket] = now + ttl
        for waiting in self.line.values():
            for ticket in wanted & waiting.keys():
                waiting[ticket] = (waiting[ticket][0], now + ttl)

    def count(self, account: str, now: float) -> int:
        return sum(1 for expires in self.leases.get(account, {}).values() if expires >= now)


class MemoryBackend:
    """Everything in this process: one server alone (tests, or a deliberate opt-out of sharing)."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._leases = LeaseTable()
        self._jobs: dict[str, tuple[dict[str, Any], float]] = {}
        self._ids: dict[str, str] = {}
        self._budget = MemoryStore()

    def budget_store(self) -> BudgetStore:
        return self._budget

    async def acquire(self, account: str, ticket: str, since: float, capacity: int, ttl: float) -> bool:
        with self._lock:
            return self._leases.acquire(account, ticket, since, capacity, ttl, time.time())

    async def release(self, tickets: Sequence[str]) -> None:
        with self._lock:
            self._leases.release(tickets)

    async def renew(self, tickets: Sequence[str], ttl: float) -> None:
        with self._lock:
            self._leases.renew(tickets, ttl, time.time())

    async def count(self, account: str) -> int:
        with self._lock:
            return self._leases.count(account, time.time())

    async def put_jobs(self, records: Sequence[tuple[dict[str, Any], Sequence[str]]]) -> None:
        now = time.time()
        with self._lock:
            for record, ids in records:
                self._jobs[record["key"]] = (record, now + JOB_TTL)
                for key in ids:
                    self._ids[key] = record["key"]

    async def get_job(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._jobs.get(self._ids.get(key, ""))
            return found[0] if found is not None and found[1] >= time.time() else None

    async def get_records(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        now = time.time()
        with self._lock:
            return [found[0] if (found := self._jobs.get(k)) and found[1] >= now else None for k in keys]

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
