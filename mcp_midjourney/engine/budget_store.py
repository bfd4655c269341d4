"""Where the usage budget's record lives: behind `BudgetStore`, a JSON file shared by processes, or memory.

The file keeps the count across restarts, and two server processes may share it: every change re-reads the file
under a cross-process lock (flock on a sidecar file), and every write replaces the file atomically, so readers
never see half a file and the last slot is spent once. A file that cannot be read or written is logged and never
stops the server: the record then holds in memory. Another backend (SQLite, Redis) implements the same two methods.
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
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Protocol

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


def _copy(record: Record) -> Record:
    return {account: {b: list(entries) for b, entries in buckets.items()} for account, buckets in record.items()}


class MemoryStore:
    """The record in this process only: nothing survives a restart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._record: Record = {}

    def load(self) -> Record:
        with self._lock:
            return _copy(self._record)

    @contextlib.contextmanager
    def update(self) -> Iterator[Record]:
        with self._lock:
            record = _copy(self._record)
            yield record
            self._record = record


class JsonFileStore:
    """The record in a JSON file, {"version": 1, "spends": {account: {bucket: [[time, id], ...]}}}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._memory: Record = {}  # the last state read or written: the fallback when the file fails us
        self._file_ok = True  # False after a failed write: memory is then ahead of the file
        self._warned_lock = False

    def load(self) -> Record:
        with self._lock:
            return self._read()

    @contextlib.contextmanager
    def update(self) -> Iterator[Record]:
        with self._lock, self._file_lock():
            record = self._read()
            yield record
            self._write(record)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
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

    def _read(self) -> Record:
        """The record in the file; the in-memory one when the file fails us.

        Reading needs no file lock: writes replace the file atomically, so a reader sees the old or the new one.
        """
        if not self._file_ok:
            return _copy(self._memory)
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}  # a first run, or the user deleted the file to reset the count
        except OSError as exc:
            log.warning("budget file %s unreadable (%s); counting from memory", self.path, exc)
            return _copy(self._memory)
        return _parse(raw, self.path)

    def _write(self, record: Record) -> None:
        self._memory = _copy(record)
        data = {"version": FILE_VERSION, "spends": record}
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


def _parse(raw: str, path: Path) -> Record:
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
