"""A usage budget an agent cannot blow through: jobs (and optionally upscales) per hour and per day.

An agent iterating on its own can spend a user's fast hours in minutes. `Budget.spend` checks every
limit that applies (in total, and per account where set) and records the spend in one atomic step, or
raises `BudgetExceeded` saying which limit and when it frees up. Windows slide: a spend counts for
exactly one hour and one day after it happened.

The record lives in a small JSON file so a restart of the server keeps the count. Two server processes
may share it: every spend re-reads the file under a cross-process lock (flock on a sidecar file), and
every write replaces the file atomically, so readers never see half a file and the last slot is spent once.
A file that cannot be read or written is logged and never stops the server: the budget then holds in memory.

Upscales: when no upscale limit is set, an upscale counts as a job (it costs GPU time too); set
MJ_MAX_UPSCALES_PER_HOUR or MJ_MAX_UPSCALES_PER_DAY to count them separately instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from ..config import ConfigError

__all__ = [
    "Budget",
    "BudgetExceeded",
    "BudgetLimits",
    "Limits",
    "Spend",
    "budget_from_env",
    "budget_path",
    "state_dir",
]

log = logging.getLogger(__name__)

Kind = Literal["job", "upscale"]
HOUR = 3600.0
DAY = 86400.0
_WINDOWS = (("hour", HOUR), ("day", DAY))
_APP = "mcp-midjourney"
_FILE_VERSION = 1
# Which variable sets each limit: the names appear in refusals so the user knows what to change.
ENV_VARS = {
    ("job", "hour"): "MJ_MAX_JOBS_PER_HOUR",
    ("job", "day"): "MJ_MAX_JOBS_PER_DAY",
    ("upscale", "hour"): "MJ_MAX_UPSCALES_PER_HOUR",
    ("upscale", "day"): "MJ_MAX_UPSCALES_PER_DAY",
}


@dataclass(frozen=True)
class Limits:
    """At most this many spends in any sliding hour / 24 hours; None = unlimited."""

    jobs_per_hour: int | None = None
    jobs_per_day: int | None = None
    upscales_per_hour: int | None = None
    upscales_per_day: int | None = None

    def get(self, kind: Kind, window: str) -> int | None:
        value: int | None = getattr(self, f"{kind}s_per_{window}")
        return value

    @property
    def any(self) -> bool:
        return any(self.get(kind, window) is not None for kind in ("job", "upscale") for window, _ in _WINDOWS)

    @property
    def counts_upscales(self) -> bool:
        return self.upscales_per_hour is not None or self.upscales_per_day is not None


@dataclass(frozen=True)
class BudgetLimits:
    """The limits over all accounts together, and optional limits for single accounts."""

    total: Limits = Limits()
    accounts: Mapping[str, Limits] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return self.total.any or any(limits.any for limits in self.accounts.values())

    @property
    def separate_upscales(self) -> bool:
        """Upscales have their own counters when any upscale limit is set; otherwise they count as jobs."""
        return self.total.counts_upscales or any(limits.counts_upscales for limits in self.accounts.values())


@dataclass(frozen=True)
class Spend:
    """What one `spend` recorded: pass it to `refund` when the send failed before Discord accepted it."""

    kind: Kind
    account: str
    at: float
    ids: tuple[str, ...] = ()  # one per recorded spend: a refund removes exactly these, once
    bucket: Kind = "job"  # the counter it went to: an upscale goes to "job" unless upscales are counted apart

    @property
    def count(self) -> int:
        return len(self.ids)


class BudgetExceeded(Exception):
    """A limit is reached. The message says which limit, the count, and when it frees up."""

    def __init__(self, message: str, frees_at: float, scope: str = "total") -> None:
        super().__init__(message)
        self.frees_at = frees_at
        self.scope = scope  # "total", or the account whose own limit it is


def _limit_value(env: Mapping[str, str], name: str, problems: list[str]) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw or raw.lower() in ("unlimited", "none", "off"):
        return None
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be a whole number of jobs (or unset for no limit), got {raw!r}")
        return None
    if value < 0:
        problems.append(f"{name} must be 0 or more (0 allows none; unset it for no limit), got {value}")
        return None
    return value


# MJ_ACCOUNT_MAX_*: a default limit for every account of the pool (an MJ_ACCOUNTS entry's own value wins).
ACCOUNT_ENV_VARS = {
    ("job", "hour"): "MJ_ACCOUNT_MAX_JOBS_PER_HOUR",
    ("job", "day"): "MJ_ACCOUNT_MAX_JOBS_PER_DAY",
    ("upscale", "hour"): "MJ_ACCOUNT_MAX_UPSCALES_PER_HOUR",
    ("upscale", "day"): "MJ_ACCOUNT_MAX_UPSCALES_PER_DAY",
}


class AccountLimitSource(Protocol):
    """What `budget_from_env` reads of an account: its name and its own limits (config.AccountSettings)."""

    @property
    def name(self) -> str: ...
    @property
    def max_jobs_per_hour(self) -> int | None: ...
    @property
    def max_jobs_per_day(self) -> int | None: ...
    @property
    def max_upscales_per_hour(self) -> int | None: ...
    @property
    def max_upscales_per_day(self) -> int | None: ...


def budget_from_env(env: Mapping[str, str] | None = None, accounts: Sequence[AccountLimitSource] = ()) -> BudgetLimits:
    """The limits in total (MJ_MAX_JOBS_PER_HOUR / _PER_DAY, MJ_MAX_UPSCALES_PER_HOUR / _PER_DAY) and per account.

    An account's limits are its MJ_ACCOUNTS entry's max_jobs_per_hour (etc.), else MJ_ACCOUNT_MAX_JOBS_PER_HOUR
    (etc.), the default for every account. Unset (or "unlimited") means no limit; 0 forbids that kind entirely.
    Raises `ConfigError` naming every malformed variable at once.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    values = {key: _limit_value(env, name, problems) for key, name in ENV_VARS.items()}
    defaults = {key: _limit_value(env, name, problems) for key, name in ACCOUNT_ENV_VARS.items()}
    if problems:
        raise ConfigError("Budget configuration problem: " + "; ".join(problems) + ".")
    per_account: dict[str, Limits] = {}
    for account in accounts:

        def pick(own: int | None, key: tuple[str, str]) -> int | None:
            return own if own is not None else defaults[key]

        limits = Limits(
            jobs_per_hour=pick(account.max_jobs_per_hour, ("job", "hour")),
            jobs_per_day=pick(account.max_jobs_per_day, ("job", "day")),
            upscales_per_hour=pick(account.max_upscales_per_hour, ("upscale", "hour")),
            upscales_per_day=pick(account.max_upscales_per_day, ("upscale", "day")),
        )
        if limits.any:
            per_account[account.name] = limits
    return BudgetLimits(
        total=Limits(
            jobs_per_hour=values["job", "hour"],
            jobs_per_day=values["job", "day"],
            upscales_per_hour=values["upscale", "hour"],
            upscales_per_day=values["upscale", "day"],
        ),
        accounts=per_account,
    )


def state_dir(env: Mapping[str, str] | None = None, platform: str = sys.platform) -> Path:
    """MJ_STATE_DIR, else the user's data folder for this application on this platform."""
    env = os.environ if env is None else env
    explicit = (env.get("MJ_STATE_DIR") or "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if platform == "win32":
        local = env.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / _APP
    if platform == "darwin":
        return home / "Library" / "Application Support" / _APP
    xdg = (env.get("XDG_DATA_HOME") or "").strip()
    return (Path(xdg) if xdg else home / ".local" / "share") / _APP


def budget_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the budget's record lives: <state dir>/budget.json."""
    return state_dir(env) / "budget.json"


# account -> bucket -> [(time, id)]; the JSON file holds the same shape with [time, id] pairs.
_Record = dict[str, dict[str, list[tuple[float, str]]]]


class Budget:
    """Sliding-window limits on spends, shared by every thread and every process using the same file."""

    def __init__(self, limits: BudgetLimits, path: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._record: _Record = {}  # the last state read or written: the fallback when the file fails us
        self._file_ok = True  # False after a failed write: memory is then ahead of the file
        self._warned_lock = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, accounts: Sequence[AccountLimitSource] = ()) -> Budget:
        """The budget the environment (and the accounts' entries) configure, recorded in the user's data folder."""
        return cls(budget_from_env(env, accounts), budget_path(env))

    @property
    def enabled(self) -> bool:
        return self.limits.any

    @property
    def per_account(self) -> bool:
        """Whether some account has limits of its own: then which account a job runs on matters."""
        return any(limits.any for limits in self.limits.accounts.values())

    # -- the public operations -----------------------------------------------------------------------

    def spend(self, kind: Kind, account: str = "default", *, count: int = 1) -> Spend:
        """Check every applicable limit and record `count` spends at once; raise BudgetExceeded instead."""
        if kind not in ("job", "upscale"):
            raise ValueError(f"kind must be 'job' or 'upscale', got {kind!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        bucket: Kind = "upscale" if kind == "upscale" and self.limits.separate_upscales else "job"
        with self._locked():
            now = self._clock()
            ids = tuple(uuid.uuid4().hex[:16] for _ in range(count))
            spend = Spend(kind=kind, account=account, at=now, ids=ids, bucket=bucket)
            if not self.enabled:
                return spend  # nothing to enforce: no file is written for a budget nobody set
            record = self._read(now)
            refusal = self._refusal(record, bucket, account, now, count)
            if refusal is not None:
                self._record = record
                raise refusal
            record.setdefault(account, {}).setdefault(bucket, []).extend((now, spend_id) for spend_id in ids)
            self._write(record)
            return spend

    def refund(self, spend: Spend) -> None:
        """Give a spend back (the send failed before Discord accepted it)."""
        if not self.enabled:
            return
        with self._locked():
            record = self._read(self._clock())
            entries = record.get(spend.account, {}).get(spend.bucket)
            if entries:
                # A spend already refunded, or older than a day, is simply not found: refunds are idempotent.
                wanted = set(spend.ids)
                entries[:] = [entry for entry in entries if entry[1] not in wanted]
            self._write(record)

    def fits(self, spend: Spend, account: str) -> bool:
        """Whether `account`'s own limits would take this spend (the total does not change when a spend moves)."""
        if spend.account == account or not self.enabled:
            return True
        with self._lock:
            record = self._read(self._clock())
        return self._account_refusal(record, spend, account) is None

    def move(self, spend: Spend, account: str) -> Spend:
        """Count `spend` against `account` instead (the job runs there); raise BudgetExceeded when its own limits
        are reached. The spends keep their time, so the windows they free up in do not change."""
        if spend.account == account or not self.enabled:
            return spend
        with self._locked():
            record = self._read(self._clock())
            refusal = self._account_refusal(record, spend, account)
            if refusal is not None:
                self._record = record
                raise refusal
            wanted = set(spend.ids)
            entries = record.get(spend.account, {}).get(spend.bucket, [])
            moving = [entry for entry in entries if entry[1] in wanted]
            if moving:  # a refunded (or day-old) spend has nothing left to move
                entries[:] = [entry for entry in entries if entry[1] not in wanted]
                record.setdefault(account, {}).setdefault(spend.bucket, []).extend(moving)
                self._write(record)
            return Spend(kind=spend.kind, account=account, at=spend.at, ids=spend.ids, bucket=spend.bucket)

    def _account_refusal(self, record: _Record, spend: Spend, account: str) -> BudgetExceeded | None:
        return self._refusal(record, spend.bucket, account, self._clock(), spend.count, total=False)

    def remaining(self, account: str = "default") -> dict[str, int | None]:
        """What is left now, e.g. {"jobs_this_hour": 3, "jobs_today": 40, ...}; None = unlimited.

        "today" is the sliding last 24 hours. When upscales count as jobs, the upscale entries repeat the
        job entries (an upscale spends a job slot).
        """
        if not self.enabled:
            return {f"{kind}s_{label}": None for kind in ("job", "upscale") for label in ("this_hour", "today")}
        now = self._clock()
        with self._lock:
            record = self._read(now)
        out: dict[str, int | None] = {}
        for kind in ("job", "upscale"):
            bucket: Kind = "upscale" if kind == "upscale" and self.limits.separate_upscales else "job"
            for window, label in (("hour", "this_hour"), ("day", "today")):
                left = [
                    max(limit - used, 0) for limit, used, _ in self._applicable(record, bucket, window, account, now)
                ]
                out[f"{kind}s_{label}"] = min(left) if left else None
        return out

    def describe(self, account: str = "default") -> str | None:
        """One line for tool results ("Budget: jobs left 3/5 this hour, 40/50 in 24 h"); None when unlimited."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            record = self._read(now)
        parts = []
        kinds: tuple[Kind, ...] = ("job", "upscale") if self.limits.separate_upscales else ("job",)
        for kind in kinds:
            bits = []
            for window, label in (("hour", "this hour"), ("day", "in 24 h")):
                rows = self._applicable(record, kind, window, account, now)
                if rows:
                    limit, used, _ = min(rows, key=lambda row: row[0] - row[1])
                    bits.append(f"{max(limit - used, 0)}/{limit} {label}")
            if bits:
                parts.append(f"{kind}s left " + ", ".join(bits))
        note = "" if self.limits.separate_upscales else " (upscales count as jobs)"
        return "Budget: " + "; ".join(parts) + note if parts else None

    # -- limits --------------------------------------------------------------------------------------

    def _applicable(
        self, record: _Record, bucket: Kind, window: str, account: str, now: float, *, total: bool = True
    ) -> list[tuple[int, int, str]]:
        """(limit, used, scope) for every limit on this bucket and window: the total one and the account's."""
        seconds = HOUR if window == "hour" else DAY
        rows = []
        scopes = (("total", self.limits.total), (account, self.limits.accounts.get(account)))
        for scope, limits in scopes if total else scopes[1:]:
            limit = limits.get(bucket, window) if limits is not None else None
            if limit is None:
                continue
            times = _times(record, bucket, None if scope == "total" else account)
            rows.append((limit, sum(1 for at in times if at > now - seconds), scope))
        return rows

    def _refusal(
        self, record: _Record, bucket: Kind, account: str, now: float, count: int, *, total: bool = True
    ) -> BudgetExceeded | None:
        worst: tuple[float, str, str] | None = None
        for window, seconds in _WINDOWS:
            for limit, used, scope in self._applicable(record, bucket, window, account, now, total=total):
                if used + count <= limit:
                    continue
                times = sorted(at for at in _times(record, bucket, None if scope == "total" else account))
                recent = [at for at in times if at > now - seconds]
                # The spend that must age out before `count` more fit; never, when count alone exceeds the limit.
                need = used + count - limit
                frees_at = recent[need - 1] + seconds if 0 < need <= len(recent) and count <= limit else math.inf
                message = _message(bucket, window, limit, used, scope, frees_at, now, self.limits)
                if worst is None or frees_at > worst[0]:
                    worst = (frees_at, message, scope)
        return BudgetExceeded(worst[1], worst[0], worst[2]) if worst is not None else None

    # -- the file ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, self._file_lock():
            yield

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self.path is None or not self.enabled:
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a+b")  # noqa: SIM115 - closed by the `with handle` below
        except OSError as exc:
            self._warn_once(f"budget lock file {lock_path} unavailable ({exc}); other processes may overspend")
            yield
            return
        with handle:
            try:
                locked = _lock(handle)
            except OSError as exc:  # e.g. ENOLCK on a network file system
                self._warn_once(f"budget lock file {lock_path} cannot be locked ({exc}); other processes may overspend")
                locked = False
            if not locked:
                self._warn_once("no cross-process file lock on this platform; one server process per budget file")
            try:
                yield
            finally:
                if locked:
                    _unlock(handle)

    def _read(self, now: float) -> _Record:
        """The record from the file (pruned to the last day); the in-memory one when the file fails us.

        Reading needs no file lock: writes replace the file atomically, so a reader sees the old or the new one.
        """
        if self.path is None or not self._file_ok:
            return _prune(self._record, now)
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}  # a first run, or the user deleted the file to reset the count
        except OSError as exc:
            log.warning("budget file %s unreadable (%s); counting from memory", self.path, exc)
            return _prune(self._record, now)
        record = _parse(raw, self.path)
        return _prune(record, now)

    def _write(self, record: _Record) -> None:
        self._record = record
        if self.path is None:
            return
        data = {"version": _FILE_VERSION, "spends": record}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".budget-", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(data, out, separators=(",", ":"))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            if self._file_ok:
                log.warning("budget file %s not written (%s); the budget holds in memory only", self.path, exc)
            self._file_ok = False
        else:
            self._file_ok = True

    def _warn_once(self, message: str) -> None:
        if not self._warned_lock:
            self._warned_lock = True
            log.warning(message)


def _times(record: _Record, bucket: str, account: str | None) -> list[float]:
    if account is not None:
        return [at for at, _ in record.get(account, {}).get(bucket, [])]
    return [at for buckets in record.values() for at, _ in buckets.get(bucket, [])]


def _prune(record: _Record, now: float) -> _Record:
    """A copy without spends older than a day (or implausibly far in the future)."""
    pruned: _Record = {}
    for account, buckets in record.items():
        kept = {b: [e for e in entries if now - DAY < e[0] <= now + DAY] for b, entries in buckets.items()}
        kept = {b: times for b, times in kept.items() if times}
        if kept:
            pruned[account] = kept
    return pruned


def _parse(raw: str, path: Path) -> _Record:
    """The spends in a budget file, keeping every entry that makes sense and logging what did not."""
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        log.warning("budget file %s is corrupt (%s); starting from an empty record", path, exc)
        return {}
    spends = data.get("spends") if isinstance(data, dict) else None
    if not isinstance(spends, dict):
        log.warning("budget file %s has no 'spends' object; starting from an empty record", path)
        return {}
    record: _Record = {}
    dropped = 0
    for account, buckets in spends.items():
        if not isinstance(buckets, dict):
            dropped += 1
            continue
        for bucket, entries in buckets.items():
            if bucket not in ("job", "upscale") or not isinstance(entries, list):
                dropped += 1
                continue
            good = [entry for entry in map(_entry, entries) if entry is not None]
            dropped += len(entries) - len(good)
            if good:
                record.setdefault(str(account), {})[bucket] = good
    if dropped:
        log.warning("budget file %s: ignored %d malformed entries", path, dropped)
    return record


def _entry(raw: object) -> tuple[float, str] | None:
    """One [time, id] pair of the file (a bare time is accepted too), or None when it makes no sense."""
    at, spend_id = (raw[0], raw[1]) if isinstance(raw, list) and len(raw) == 2 else (raw, "")
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
        return None
    return float(at), str(spend_id)


def _message(
    bucket: str, window: str, limit: int, used: int, scope: str, frees_at: float, now: float, limits: BudgetLimits
) -> str:
    noun = ("upscale" if bucket == "upscale" else "job") + ("" if used == 1 else "s")
    what = noun if bucket == "upscale" or limits.separate_upscales else f"{noun} (upscales included)"
    span = "the last hour" if window == "hour" else "the last 24 hours"
    who = "" if scope == "total" else f" for account {scope!r}"
    setting = (
        ENV_VARS[bucket, window]
        if scope == "total"
        else f"max_{bucket}s_per_{window} of account {scope!r} in MJ_ACCOUNTS, or {ACCOUNT_ENV_VARS[bucket, window]}"
    )
    head = f"Budget reached: {used} {what} in {span}{who}, limit {limit} ({setting})."
    if math.isinf(frees_at):
        return f"{head} This request alone is more than the limit allows; raise {setting} to run it."
    when = datetime.fromtimestamp(frees_at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"{head} The next slot frees up at {when} (in {_minutes(frees_at - now)})."


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


# -- cross-process locks: flock on POSIX, msvcrt on Windows, nothing elsewhere ---------------------------

if sys.platform == "win32":
    import msvcrt

    def _lock(handle: IO[bytes]) -> bool:
        handle.seek(0)
        for _ in range(6):  # LK_LOCK itself retries for about ten seconds; keep trying for about a minute
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                return True
            except OSError:
                continue
        return False

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - a POSIX without fcntl
        fcntl = None  # type: ignore[assignment]

    def _lock(handle: IO[bytes]) -> bool:
        if fcntl is None:  # pragma: no cover
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        return True

    def _unlock(handle: IO[bytes]) -> None:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
