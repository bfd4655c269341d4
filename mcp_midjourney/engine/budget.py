"""A usage budget an agent cannot blow through: jobs (and optionally upscales) per hour and per day.

An agent iterating on its own can spend a user's fast hours in minutes. `Budget.spend` checks every limit that
applies (in total, and per account where set) and records the spend in one atomic step, or raises
`BudgetExceeded` saying which limit and when it frees up. The arithmetic is in `budget_rules` (pure); the record
lives in a `BudgetStore` (`budget_store`): the shared state's (state.py, MJ_STATE_URL: a SQLite file in the state
folder by default, or Redis), so every server of the account counts against one record and a restart keeps it.
Its writes block: the engine calls `spend`, `refund` and `move` off the event loop.

Upscales: when no upscale limit is set, an upscale counts as a job (it costs GPU time too); set
MJ_MAX_UPSCALES_PER_HOUR or MJ_MAX_UPSCALES_PER_DAY to count them separately instead. A video is a kind of its own
that spends `VIDEO_JOBS` (8) jobs at once: its GPU time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import AccountSettings, Settings
from . import budget_rules as rules
from .budget_rules import DAY, HOUR, VIDEO_JOBS, BudgetExceeded, BudgetLimits, Kind, Limits, Spend
from .budget_store import BudgetStore, MemoryStore

__all__ = [
    "DAY",
    "HOUR",
    "VIDEO_JOBS",
    "Budget",
    "BudgetExceeded",
    "BudgetLimits",
    "BudgetStore",
    "Kind",
    "Limits",
    "MemoryStore",
    "Spend",
    "budget_limits",
    "budget_path",
]

BUDGET_FILE = "budget.json"


def budget_limits(settings: Settings, accounts: Sequence[AccountSettings] | None = None) -> BudgetLimits:
    """The limits in total (MJ_MAX_JOBS_PER_HOUR / _PER_DAY, MJ_MAX_UPSCALES_PER_HOUR / _PER_DAY) and per account.

    An account's limits are its MJ_ACCOUNTS entry's max_jobs_per_hour (etc.), else MJ_ACCOUNT_MAX_JOBS_PER_HOUR
    (etc.), the default for every account. `accounts` defaults to the settings' own.
    """
    per_account: dict[str, Limits] = {}
    for account in settings.account_list() if accounts is None else accounts:
        own = Limits(
            jobs_per_hour=_first(account.max_jobs_per_hour, settings.account_max_jobs_per_hour),
            jobs_per_day=_first(account.max_jobs_per_day, settings.account_max_jobs_per_day),
            upscales_per_hour=_first(account.max_upscales_per_hour, settings.account_max_upscales_per_hour),
            upscales_per_day=_first(account.max_upscales_per_day, settings.account_max_upscales_per_day),
        )
        if own.any:
            per_account[account.name] = own
    total = Limits(
        jobs_per_hour=settings.max_jobs_per_hour,
        jobs_per_day=settings.max_jobs_per_day,
        upscales_per_hour=settings.max_upscales_per_hour,
        upscales_per_day=settings.max_upscales_per_day,
    )
    return BudgetLimits(total=total, accounts=per_account)


def _first(own: int | None, default: int | None) -> int | None:
    return own if own is not None else default


def budget_path(settings: Settings) -> Path:
    """Where earlier versions kept the budget: <state folder>/budget.json, carried over once to the shared state."""
    return settings.state_dir / BUDGET_FILE


class Budget:
    """Sliding-window limits on spends, shared by every thread and every process using the same store."""

    def __init__(
        self, limits: BudgetLimits, store: BudgetStore | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.limits = limits
        self.store: BudgetStore = store if store is not None else MemoryStore()
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, store: BudgetStore | None = None, *, clock: Callable[[], float] = time.time
    ) -> Budget:
        """The budget the settings (and the accounts' entries) configure, recorded in `store` (the shared state's
        budget store; by default the one MJ_STATE_URL names)."""
        if store is None:
            from .state import open_backend

            store = open_backend(settings.state_url, settings.state_dir).budget_store()
        return cls(budget_limits(settings), store, clock=clock)

    @property
    def enabled(self) -> bool:
        return self.limits.any

    @property
    def per_account(self) -> bool:
        """Whether some account has limits of its own: then which account a job runs on matters."""
        return any(limits.any for limits in self.limits.accounts.values())

    def spend(self, kind: Kind, account: str = "default", *, count: int = 1) -> Spend:
        """Check every applicable limit and record `count` spends at once (a video: `VIDEO_JOBS` each); raise
        BudgetExceeded instead."""
        if kind not in ("job", "upscale", "video"):
            raise ValueError(f"kind must be 'job', 'upscale' or 'video', got {kind!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if kind == "video":
            count *= VIDEO_JOBS
        ids = tuple(uuid.uuid4().hex[:16] for _ in range(count))
        if not self.enabled:  # nothing to enforce: no file is written for a budget nobody set
            return Spend(kind=kind, account=account, at=self._clock(), ids=ids, bucket=self.limits.bucket(kind))
        with self.store.update() as stored:
            now = self._clock()
            record = self._pruned(stored, now)
            spend = Spend(kind=kind, account=account, at=now, ids=ids, bucket=self.limits.bucket(kind))
            refused = rules.refusal(self.limits, record, spend.bucket, account, now, count)
            if refused is not None:
                raise refused
            rules.charge(record, spend)
            return spend

    def refund(self, spend: Spend) -> None:
        """Give a spend back (the send failed before Discord accepted it); a second refund changes nothing."""
        if not self.enabled:
            return
        with self.store.update() as stored:
            rules.take_back(self._pruned(stored, self._clock()), spend)

    def fits(self, spend: Spend, account: str) -> bool:
        """Whether `account`'s own limits would take this spend (the total does not change when a spend moves)."""
        if spend.account == account or not self.enabled:
            return True
        now = self._clock()
        record = rules.prune(self.store.load(), now)
        return rules.refusal(self.limits, record, spend.bucket, account, now, spend.count, total=False) is None

    def move(self, spend: Spend, account: str) -> Spend:
        """Count `spend` against `account` instead (the job runs there); raise BudgetExceeded when its own limits
        are reached. The spends keep their time, so the windows they free up in do not change."""
        if spend.account == account or not self.enabled:
            return spend
        with self.store.update() as stored:
            now = self._clock()
            record = self._pruned(stored, now)
            refused = rules.refusal(self.limits, record, spend.bucket, account, now, spend.count, total=False)
            if refused is not None:
                raise refused
            rules.move(record, spend, account)
        return Spend(kind=spend.kind, account=account, at=spend.at, ids=spend.ids, bucket=spend.bucket)

    def remaining(self, account: str = "default") -> dict[str, int | None]:
        """What is left now, e.g. {"jobs_this_hour": 3, "jobs_today": 40, ...}; None = unlimited.

        "today" is the sliding last 24 hours. When upscales count as jobs, the upscale entries repeat the
        job entries (an upscale spends a job slot).
        """
        if not self.enabled:
            return {f"{kind}s_{label}": None for kind in ("job", "upscale") for label in ("this_hour", "today")}
        now = self._clock()
        return rules.remaining(self.limits, rules.prune(self.store.load(), now), account, now)

    def describe(self, account: str = "default") -> str | None:
        """One line for tool results ("Budget: jobs left 3/5 this hour, 40/50 in 24 h"); None when unlimited."""
        if not self.enabled:
            return None
        now = self._clock()
        return rules.describe(self.limits, rules.prune(self.store.load(), now), account, now)

    @staticmethod
    def _pruned(stored: rules.Record, now: float) -> rules.Record:
        """`stored` itself, without spends older than a day: the store saves what is left in it."""
        pruned = rules.prune(stored, now)
        stored.clear()
        stored.update(pruned)
        return stored
