"""The default shared state: one SQLite file in the state folder, shared by every server on the machine.

stdlib sqlite3 in WAL mode (readers never wait for the writer); every write is one `BEGIN IMMEDIATE` transaction,
which SQLite serialises across processes, so a slot or the budget's last job is taken once. The engine's calls run
in worker threads, off the event loop.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import anyio

from .budget_rules import Record
from .budget_store import BudgetStore, carry_over, copy_record, parse_record
from .state import JOB_TTL, unreachable

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (account TEXT NOT NULL, ticket TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS line (account TEXT NOT NULL, ticket TEXT NOT NULL, since REAL NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (account, ticket));
CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, record TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS budget (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_account ON leases (account);
CREATE INDEX IF NOT EXISTS jobs_expires ON jobs (expires);
"""


def sqlite_path(url: str, state_dir: Path) -> Path:
    """`sqlite:///<path>`: an absolute path (four slashes) or one relative to the state folder (three)."""
    path = unquote(urlsplit(url).path)
    if path.startswith("//"):
        return Path(path[1:])
    return state_dir / path.lstrip("/") if path.strip("/") else state_dir / "state.sqlite3"


class _Db:
    """One connection, used by one thread at a time, with every failure turned into a `StateError`."""

    def __init__(self, url: str, path: Path) -> None:
        self.url, self.path = url, path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            self._conn = conn
        return self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT (ROLLBACK when the block raises): the write lock of every process."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
            except (sqlite3.Error, OSError) as exc:
                self._drop()
                raise unreachable(self.url, exc) from None
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise unreachable(self.url, exc) from None

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            with self.transaction() as conn:
                return fn(conn)
        except sqlite3.Error as exc:
            self._drop()
            raise unreachable(self.url, exc) from None

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class SqliteStore:
    """The budget's record as one row; `update` holds SQLite's write lock, which every process shares."""

    def __init__(self, path: Path, *, url: str | None = None, carry_from: Path | None = None) -> None:
        self._db = _Db(url or f"sqlite:///{path}", path)
        self._cache: Record = {}
        with self.update() as record:  # reads the record once; an old budget.json's spends come in once
            if carry_from is not None:
                carry_over(record, carry_from)

    def load(self) -> Record:
        """The record as last seen by this process (every update and `refresh` renew it): no I/O."""
        return copy_record(self._cache)

    def refresh(self) -> None:
        """Read the record afresh (other processes spend too)."""

        def read(conn: sqlite3.Connection) -> Record:
            row = conn.execute("SELECT record FROM budget WHERE id = 1").fetchone()
            return parse_record(row[0], self._db.path) if row else {}

        self._cache = self._db.run(read)

    @contextlib.contextmanager
    def update(self) -> Iterator[Record]:
        try:
            with self._db.transaction() as conn:
                row = conn.execute("SELECT record FROM budget WHERE id = 1").fetchone()
                record = parse_record(row[0], self._db.path) if row else {}
                yield record
                data = json.dumps({"version": 1, "spends": record}, separators=(",", ":"))
                conn.execute("INSERT OR REPLACE INTO budget (id, record) VALUES (1, ?)", (data,))
        except sqlite3.Error as exc:
            raise unreachable(self._db.url, exc) from None
        self._cache = copy_record(record)

    def close(self) -> None:
        self._db.close()


class SqliteBackend:
    """Leases, the job index and the budget in one SQLite file (see the module's docstring)."""

    def __init__(self, url: str, state_dir: Path) -> None:
        self.url = url
        self.path = sqlite_path(url, state_dir)
        self._db = _Db(url, self.path)
        self._carry_from = state_dir / "budget.json"
        self._budget: SqliteStore | None = None
        self._writes = 0

    def budget_store(self) -> BudgetStore:
        if self._budget is None:
            self._budget = SqliteStore(self.path, url=self.url, carry_from=self._carry_from)
        return self._budget

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._db.run, fn)

    async def acquire(self, account: str, ticket: str, since: float, capacity: int, ttl: float) -> bool:
        def go(conn: sqlite3.Connection) -> bool:
            now = time.time()
            conn.execute("DELETE FROM leases WHERE expires < ?", (now,))
            conn.execute("DELETE FROM line WHERE expires < ?", (now,))
            if conn.execute("SELECT 1 FROM leases WHERE ticket = ?", (ticket,)).fetchone():
                return True
            (live,) = conn.execute("SELECT COUNT(*) FROM leases WHERE account = ?", (account,)).fetchone()
            (ahead,) = conn.execute(
                "SELECT COUNT(*) FROM line WHERE account = ? AND ticket != ? AND (since < ? OR (since = ? AND "
                "ticket < ?))",
                (account, ticket, since, since, ticket),
            ).fetchone()
            if capacity - live > 0 and ahead < capacity - live:
                conn.execute(
                    "INSERT INTO leases (account, ticket, expires) VALUES (?, ?, ?)", (account, ticket, now + ttl)
                )
                conn.execute("DELETE FROM line WHERE ticket = ?", (ticket,))
                return True
            conn.execute(
                "INSERT OR REPLACE INTO line (account, ticket, since, expires) VALUES (?, ?, ?, ?)",
                (account, ticket, since, now + ttl),
            )
            return False

        return await self._call(go)

    async def release(self, tickets: Sequence[str]) -> None:
        def go(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM leases WHERE ticket = ?", [(t,) for t in tickets])
            conn.executemany("DELETE FROM line WHERE ticket = ?", [(t,) for t in tickets])

        if tickets:
            await self._call(go)

    async def renew(self, tickets: Sequence[str], ttl: float) -> None:
        def go(conn: sqlite3.Connection) -> None:
            expires = time.time() + ttl
            conn.executemany("UPDATE leases SET expires = ? WHERE ticket = ?", [(expires, t) for t in tickets])
            conn.executemany("UPDATE line SET expires = ? WHERE ticket = ?", [(expires, t) for t in tickets])

        if tickets:
            await self._call(go)
        if self._budget is not None:  # other processes spend too: the budget's snapshot follows them
            await anyio.to_thread.run_sync(self._budget.refresh)

    async def count(self, account: str) -> int:
        def go(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM leases WHERE account = ? AND expires >= ?", (account, time.time())
            ).fetchone()
            return int(row[0])

        return await self._call(go)

    async def put_jobs(self, records: Sequence[tuple[dict[str, Any], Sequence[str]]]) -> None:
        self._writes += 1
        prune = self._writes % 500 == 0

        def go(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.executemany(
                "INSERT OR REPLACE INTO jobs (key, record, expires) VALUES (?, ?, ?)",
                [(r["key"], json.dumps(r, separators=(",", ":")), now + JOB_TTL) for r, _ids in records],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO ids (id, key) VALUES (?, ?)",
                [(i, r["key"]) for r, ids in records for i in ids],
            )
            if prune:
                conn.execute("DELETE FROM ids WHERE key IN (SELECT key FROM jobs WHERE expires < ?)", (now,))
                conn.execute("DELETE FROM jobs WHERE expires < ?", (now,))

        if records:
            await self._call(go)

    async def get_job(self, key: str) -> dict[str, Any] | None:
        def go(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT jobs.record FROM ids JOIN jobs ON jobs.key = ids.key WHERE ids.id = ? AND jobs.expires >= ?",
                (key, time.time()),
            ).fetchone()
            return str(row[0]) if row else None

        raw = await self._call(go)
        found: dict[str, Any] | None = json.loads(raw) if raw else None
        return found

    async def get_records(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        def go(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, record FROM jobs WHERE key IN ({marks}) AND expires >= ?", (*chunk, time.time())
                )
                found.update((str(k), str(r)) for k, r in rows)
            return found

        raw = await self._call(go) if keys else {}
        return [json.loads(raw[k]) if k in raw else None for k in keys]

    async def ping(self) -> None:
        await self._call(lambda conn: conn.execute("SELECT COUNT(*) FROM leases").fetchone())

    async def aclose(self) -> None:
        self._db.close()
        if self._budget is not None:
            self._budget.close()
