"""Where the usage budget's record lives: behind `BudgetStore`, in the shared state (state.py: a SQLite file by
default, or Redis), or in memory.

A store's `update` holds a lock every process sharing the store respects, so the last slot is spent once. The
JSON file earlier versions kept (<state folder>/budget.json, under a flock) is read once by `carry_over`: its
spends join the shared record and the file is renamed, so they are counted once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from .budget_rules import Record

log = logging.getLogger(__name__)

FILE_VERSION = 1


class BudgetStore(Protocol):
    """The record's storage. The budget prunes and decides; the store only keeps the record, atomically."""

    def load(self) -> Record:
        """A snapshot of the record, to read (it may still hold spends older than a day)."""
        ...

    def update(self) -> AbstractContextManager[Record]:
        """Hold the store's lock (across processes, where it can) and yield the current record: what the block
        leaves in it is saved when the block ends without an exception; nothing is saved when it raises."""
        ...


def copy_record(record: Record) -> Record:
    return {account: {b: list(entries) for b, entries in buckets.items()} for account, buckets in record.items()}


class MemoryStore:
    """The record in this process only: nothing survives a restart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._record: Record = {}

    def load(self) -> Record:
        with self._lock:
            return copy_record(self._record)

    @contextlib.contextmanager
    def update(self) -> Iterator[Record]:
        with self._lock:
            record = copy_record(self._record)
            yield record
            self._record = record


def parse_record(raw: str, path: Path) -> Record:
    """The spends in a budget file (or a shared store's row), keeping every entry that makes sense, logging the rest."""
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        log.warning("budget file %s is corrupt (%s); starting from an empty record", path, exc)
        return {}
    spends = data.get("spends") if isinstance(data, dict) else None
    if not isinstance(spends, dict):
        log.warning("budget file %s has no 'spends' object; starting from an empty record", path)
        return {}
    record: Record = {}
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


def carry_over(record: Record, path: Path) -> bool:
    """Add the spends of an old JSON budget file to `record` (inside the store's lock), then rename the file to
    <name>.carried-over so no process adds them again. False when there was no file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("old budget file %s unreadable (%s); its spends are not carried over", path, exc)
        return False
    for account, buckets in parse_record(raw, path).items():
        for bucket, entries in buckets.items():
            mine = record.setdefault(account, {}).setdefault(bucket, [])
            seen = {spend_id for _at, spend_id in mine}
            mine.extend(entry for entry in entries if not entry[1] or entry[1] not in seen)
            mine.sort()
    try:
        os.replace(path, path.with_name(path.name + ".carried-over"))
    except OSError as exc:
        log.warning("old budget file %s not renamed (%s)", path, exc)
    log.info("carried the spends of %s over to the shared state", path)
    return True
