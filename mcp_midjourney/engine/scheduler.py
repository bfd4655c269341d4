"""Which account runs a job, and when: slots per account and the line of jobs waiting for one. No I/O.

The scheduler only decides. It reads each account's face (`usable`, `has_slot`, `active`, `capacity`, `down`,
`index`, `name`), counts the slots it grants, and asks two questions of its owner: may this job run on this
account (its budget's charge can move there), and will this job never run (why). The engine sends, ends jobs
and wakes waiters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import anyio

from .store import Job


class Slots(Protocol):
    """What the scheduler reads of an account (engine.accounts.Account has it all)."""

    name: str
    index: int
    active: int

    @property
    def usable(self) -> bool: ...
    @property
    def has_slot(self) -> bool: ...
    @property
    def capacity(self) -> int: ...
    @property
    def down(self) -> str | None: ...


A = TypeVar("A", bound=Slots)
Never = Callable[[Job], "str | None"]


def _load(account: Slots) -> tuple[float, int]:
    """Least loaded first, by share of capacity: keeps every account busy."""
    return account.active / max(1, account.capacity), account.index


class Scheduler(Generic[A]):
    """Slots of the pool's accounts and the jobs waiting for one, oldest first."""

    def __init__(
        self,
        accounts: Sequence[A],
        *,
        can_run: Callable[[Job, A], bool],
        never: Never,
        new_pass: Callable[[], None] | None = None,
    ) -> None:
        self.accounts = accounts
        self._can_run = can_run
        self._never = never
        self._new_pass = new_pass  # told when a pass over the line starts (answers to `can_run` may be cached per pass)
        self._line: list[tuple[Job, anyio.Event]] = []
        self._holding: set[int] = set()  # id(job) of jobs holding a slot

    def account(self, name: str | None) -> A:
        """The account of that name (the first one when there is none)."""
        for account in self.accounts:
            if account.name == name:
                return account
        return self.accounts[0]

    def least_loaded(self) -> A:
        usable = [a for a in self.accounts if a.usable] or list(self.accounts)
        return min(usable, key=_load)

    def waiting(self) -> list[Job]:
        """The jobs in line for a slot, oldest first."""
        return [job for job, _granted in self._line]

    def holds_slot(self, job: Job) -> bool:
        return id(job) in self._holding

    def enqueue(self, job: Job) -> tuple[anyio.Event, list[tuple[Job, str]]]:
        """Put the job in line; the event is set once it has a slot (or finished meanwhile).

        Returns that event and the jobs found unable to ever run, with why: the caller ends them.
        """
        granted = anyio.Event()
        self._line.append((job, granted))
        return granted, self.pump()

    def release(self, job: Job) -> list[tuple[Job, str]]:
        """Give back the job's slot, if it holds one, and hand free slots on; returns the jobs that can never run."""
        if id(job) not in self._holding:
            return []
        self._holding.discard(id(job))
        self.account(job.account).active -= 1
        return self.pump()

    def pick(self, job: Job) -> A | None:
        """The account that takes the job now, or None: its own account for a press, else the least loaded one
        whose budget takes its charge."""
        if job.pinned_account:
            account = self.account(job.pinned_account)
            return account if account.usable and account.has_slot else None
        free = sorted((a for a in self.accounts if a.usable and a.has_slot), key=_load)
        return next((a for a in free if self._can_run(job, a)), None)

    def pump(self) -> list[tuple[Job, str]]:
        """Give free slots to waiting jobs, oldest first; returns the jobs no account will ever take, with why."""
        if not self._line:
            return []
        # This runs at every submission and every release. With no slot free anywhere and no account down, no
        # waiting job can be placed or failed: stop there (scanning every waiting job each time was O(n²) in a
        # burst). Finished jobs further down the line are dropped when the line reaches them.
        any_down = any(a.down for a in self.accounts)
        if not any_down and not self._any_slot():
            return []
        if self._new_pass is not None:
            self._new_pass()
        never: list[tuple[Job, str]] = []
        line, still = self._line, list[tuple[Job, anyio.Event]]()
        for position, (job, granted) in enumerate(line):
            if job.status.finished:
                granted.set()
                continue
            if not any_down and not self._any_slot():
                still.extend(line[position:])
                break
            chosen = self.pick(job)
            if chosen is None:
                reason = self._never(job)
                if reason:
                    never.append((job, reason))
                    granted.set()
                else:
                    still.append((job, granted))
                continue
            chosen.active += 1
            self._holding.add(id(job))
            job.account = chosen.name
            job.queued_note = None
            granted.set()
        self._line = still
        return never

    def _any_slot(self) -> bool:
        return any(a.usable and a.has_slot for a in self.accounts)
