"""The usage budget's arithmetic, with no I/O: limits, sliding windows, and what a spend, a move or a refund does.

A record holds, per account and per bucket ("job" or "upscale"), the spends of the last day as (time, id) pairs.
Every function here takes the record and the time `now`; none reads a clock or a file, so each decision can be
tested alone. Windows slide: a spend counts for exactly one hour and one day after it happened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Kind = Literal["job", "upscale", "video"]
# A video job takes about eight times the GPU time of an image job (protocol.md §7): it is charged as that many
# jobs, in the job counter (there is no video limit of its own).
VIDEO_JOBS = 8
HOUR = 3600.0
DAY = 86400.0
WINDOWS = (("hour", HOUR), ("day", DAY))
# account -> bucket -> [(time, id)]
Record = dict[str, dict[str, list[tuple[float, str]]]]

# Which setting sets each limit: the names appear in refusals so the user knows what to change.
ENV_VARS = {
    ("job", "hour"): "MJ_MAX_JOBS_PER_HOUR",
    ("job", "day"): "MJ_MAX_JOBS_PER_DAY",
    ("upscale", "hour"): "MJ_MAX_UPSCALES_PER_HOUR",
    ("upscale", "day"): "MJ_MAX_UPSCALES_PER_DAY",
}
ACCOUNT_ENV_VARS = {
    ("job", "hour"): "MJ_ACCOUNT_MAX_JOBS_PER_HOUR",
    ("job", "day"): "MJ_ACCOUNT_MAX_JOBS_PER_DAY",
    ("upscale", "hour"): "MJ_ACCOUNT_MAX_UPSCALES_PER_HOUR",
    ("upscale", "day"): "MJ_ACCOUNT_MAX_UPSCALES_PER_DAY",
}


@dataclass(frozen=True)
class Limits:
    """At most this many spends in any sliding hour / 24 hours; None = unlimited."""

    jobs_per_hour: int | None = None
    jobs_per_day: int | None = None
    upscales_per_hour: int | None = None
    upscales_per_day: int | None = None

    def get(self, kind: Kind, window: str) -> int | None:
        """The limit on `kind` in the window "hour" or "day"."""
        value: int | None = getattr(self, f"{kind}s_per_{window}")
        return value

    @property
    def any(self) -> bool:
        return any(self.get(kind, window) is not None for kind in ("job", "upscale") for window, _ in WINDOWS)

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

    def bucket(self, kind: Kind) -> Kind:
        """The counter a spend of `kind` goes to: an upscale goes to "job" unless upscales are counted apart; a
        video always goes to "job"."""
        return "upscale" if kind == "upscale" and self.separate_upscales else "job"


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


# -- what a spend, a move and a refund do to the record ------------------------------------------------------------


def prune(record: Record, now: float) -> Record:
    """A copy without spends older than a day (or implausibly far in the future)."""
    pruned: Record = {}
    for account, buckets in record.items():
        kept = {b: [e for e in entries if now - DAY < e[0] <= now + DAY] for b, entries in buckets.items()}
        kept = {b: times for b, times in kept.items() if times}
        if kept:
            pruned[account] = kept
    return pruned


def charge(record: Record, spend: Spend) -> None:
    """Record `spend` under its account and bucket."""
    record.setdefault(spend.account, {}).setdefault(spend.bucket, []).extend((spend.at, i) for i in spend.ids)


def take_back(record: Record, spend: Spend) -> list[tuple[float, str]]:
    """Remove `spend`'s entries and return them; a spend already refunded, or a day old, is simply not found."""
    entries = record.get(spend.account, {}).get(spend.bucket)
    if not entries:
        return []
    wanted = set(spend.ids)
    taken = [entry for entry in entries if entry[1] in wanted]
    entries[:] = [entry for entry in entries if entry[1] not in wanted]
    return taken


def move(record: Record, spend: Spend, account: str) -> bool:
    """Count `spend` against `account` instead, keeping its times; False when it had nothing left to move."""
    moving = take_back(record, spend)
    if moving:
        record.setdefault(account, {}).setdefault(spend.bucket, []).extend(moving)
    return bool(moving)


# -- what the limits say of the record -----------------------------------------------------------------------------


def applicable(
    limits: BudgetLimits, record: Record, bucket: Kind, window: str, account: str, now: float, *, total: bool = True
) -> list[tuple[int, int, str]]:
    """(limit, used, scope) for every limit on this bucket and window: the total one and the account's."""
    seconds = HOUR if window == "hour" else DAY
    rows = []
    scopes = (("total", limits.total), (account, limits.accounts.get(account)))
    for scope, own in scopes if total else scopes[1:]:
        limit = own.get(bucket, window) if own is not None else None
        if limit is None:
            continue
        times = _times(record, bucket, None if scope == "total" else account)
        rows.append((limit, sum(1 for at in times if at > now - seconds), scope))
    return rows


def refusal(
    limits: BudgetLimits, record: Record, bucket: Kind, account: str, now: float, count: int, *, total: bool = True
) -> BudgetExceeded | None:
    """Why `count` more spends on `account` do not fit now (the limit that frees up last), or None when they do.

    `total=False` asks only the account's own limits (a spend that moves does not change the total)."""
    worst: tuple[float, str, str] | None = None
    for window, seconds in WINDOWS:
        for limit, used, scope in applicable(limits, record, bucket, window, account, now, total=total):
            if used + count <= limit:
                continue
            times = sorted(at for at in _times(record, bucket, None if scope == "total" else account))
            recent = [at for at in times if at > now - seconds]
            # The spend that must age out before `count` more fit; never, when count alone exceeds the limit.
            need = used + count - limit
            frees_at = recent[need - 1] + seconds if 0 < need <= len(recent) and count <= limit else math.inf
            message = _message(bucket, window, limit, used, scope, frees_at, now, limits)
            if worst is None or frees_at > worst[0]:
                worst = (frees_at, message, scope)
    return BudgetExceeded(worst[1], worst[0], worst[2]) if worst is not None else None


def remaining(limits: BudgetLimits, record: Record, account: str, now: float) -> dict[str, int | None]:
    """What is left now, e.g. {"jobs_this_hour": 3, "jobs_today": 40, ...}; None = unlimited."""
    out: dict[str, int | None] = {}
    for kind in ("job", "upscale"):
        bucket = limits.bucket(kind)
        for window, label in (("hour", "this_hour"), ("day", "today")):
            rows = applicable(limits, record, bucket, window, account, now)
            left = [max(limit - used, 0) for limit, used, _ in rows]
            out[f"{kind}s_{label}"] = min(left) if left else None
    return out


def describe(limits: BudgetLimits, record: Record, account: str, now: float) -> str | None:
    """One line for tool results ("Budget: jobs left 3/5 this hour, 40/50 in 24 h"); None when unlimited."""
    parts = []
    kinds: tuple[Kind, ...] = ("job", "upscale") if limits.separate_upscales else ("job",)
    for kind in kinds:
        bits = []
        for window, label in (("hour", "this hour"), ("day", "in 24 h")):
            rows = applicable(limits, record, kind, window, account, now)
            if rows:
                limit, used, _ = min(rows, key=lambda row: row[0] - row[1])
                bits.append(f"{max(limit - used, 0)}/{limit} {label}")
        if bits:
            parts.append(f"{kind}s left " + ", ".join(bits))
    note = "" if limits.separate_upscales else " (upscales count as jobs)"
    return "Budget: " + "; ".join(parts) + note if parts else None


def _times(record: Record, bucket: str, account: str | None) -> list[float]:
    if account is not None:
        return [at for at, _ in record.get(account, {}).get(bucket, [])]
    return [at for buckets in record.values() for at, _ in buckets.get(bucket, [])]


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
    return f"{head} The next slot frees up at {when} (in {minutes(frees_at - now)})."


def minutes(seconds: float) -> str:
    """A wait as people say it: "7 min", "2 h 5 min" (at least a minute)."""
    whole = max(1, math.ceil(seconds / 60))
    if whole < 60:
        return f"{whole} min"
    return f"{whole // 60} h {whole % 60} min"
