"""The shared state on a Redis server (MJ_STATE_URL=redis://host:port/db): every machine's servers share it.

redis-py, from the optional `[redis]` extra: its asyncio client for the engine's calls (leases, the job index), and
its blocking client for the budget's store, whose methods the engine calls in worker threads. A lease or a line
ticket is a member of a sorted set scored by when it expires (Redis's own clock, so machines need not agree); each
acquisition is one Lua script, atomic on the server. The budget's record is one JSON value, changed under a lock
key (SET NX with an expiry, so a server that dies holding it frees it).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .budget_rules import Record
from .budget_store import BudgetStore, carry_over, copy_record, parse_record
from .state import JOB_TTL, StateError, safe_url, unreachable

try:
    import redis
    import redis.asyncio as aredis
except ImportError:  # pragma: no cover - the optional extra is not installed
    redis = None  # type: ignore[assignment]
    aredis = None  # type: ignore[assignment]

PREFIX = "mcp-midjourney:"
TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0, "decode_responses": True}

# KEYS: leases, line, line expiries, ticket->account; ARGV: ticket, since, capacity, ttl, account
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ticket, since, cap, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ex = redis.call('HGETALL', KEYS[3])
for i = 1, #ex, 2 do
  if tonumber(ex[i + 1]) < now then
    redis.call('ZREM', KEYS[2], ex[i])
    redis.call('HDEL', KEYS[3], ex[i])
  end
end
redis.call('HSET', KEYS[4], ticket, ARGV[5])
if redis.call('ZSCORE', KEYS[1], ticket) then return 1 end
local free = cap - redis.call('ZCARD', KEYS[1])
if free > 0 then
  local ahead = 0
  local older = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', since, 'WITHSCORES')
  for i = 1, #older, 2 do
    local other, at = older[i], tonumber(older[i + 1])
    if other ~= ticket and (at < since or other < ticket) then ahead = ahead + 1 end
  end
  if ahead < free then
    redis.call('ZADD', KEYS[1], now + ttl, ticket)
    redis.call('ZREM', KEYS[2], ticket)
    redis.call('HDEL', KEYS[3], ticket)
    return 1
  end
end
redis.call('ZADD', KEYS[2], since, ticket)
redis.call('HSET', KEYS[3], ticket, now + ttl)
return 0
"""

# KEYS: ticket->account; ARGV: prefix, ttl (renew) or -1 (release), tickets...
TOUCH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local prefix, ttl = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV do
  local ticket = ARGV[i]
  local account = redis.call('HGET', KEYS[1], ticket)
  if account then
    local leases, line = prefix .. 'lease:' .. account, prefix .. 'line:' .. account
    local linex = prefix .. 'linex:' .. account
    if ttl < 0 then
      redis.call('ZREM', leases, ticket)
      redis.call('ZREM', line, ticket)
      redis.call('HDEL', linex, ticket)
      redis.call('HDEL', KEYS[1], ticket)
    else
      redis.call('ZADD', leases, 'XX', now + ttl, ticket)
      if redis.call('HEXISTS', linex, ticket) == 1 then redis.call('HSET', linex, ticket, now + ttl) end
    end
  end
end
return 0
"""

UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _require() -> None:
    if redis is None:
        raise StateError(
            "MJ_STATE_URL names a Redis server, but redis-py is not installed: pip install 'mcp-midjourney[redis]'."
        )


class RedisStore:
    """The budget's record as one Redis value, changed under a lock key every process respects."""

    def __init__(self, url: str, *, carry_from: Path | None = None) -> None:
        _require()
        self.url = url
        self._client = redis.Redis.from_url(url, **TIMEOUTS)
        self._cache: Record = {}
        self._carry_from = carry_from
        self._opened = False

    def load(self) -> Record:
        """The record as last seen by this process (every update and `refresh` renew it): no I/O."""
        return copy_record(self._cache)

    def refresh(self) -> None:
        try:
            raw = self._client.get(PREFIX + "budget")
        except redis.RedisError as exc:
            raise unreachable(self.url, exc) from None
        self._cache = parse_record(str(raw), Path(safe_url(self.url))) if raw else {}

    @contextlib.contextmanager
    def update(self) -> Iterator[Record]:
        key, token = PREFIX + "budget", uuid.uuid4().hex
        try:
            deadline = time.monotonic() + 15.0
            while not self._client.set(key + ":lock", token, nx=True, px=10_000):
                if time.monotonic() > deadline:
                    raise StateError(f"The budget's lock at MJ_STATE_URL={safe_url(self.url)} stayed held for 15 s.")
                time.sleep(0.002)
            try:
                raw = self._client.get(key)
                record = parse_record(str(raw), Path(safe_url(self.url))) if raw else {}
                if not self._opened and self._carry_from is not None:
                    carry_over(record, self._carry_from)  # an old budget.json of this state folder, once
                self._opened = True
                yield record
                self._client.set(key, json.dumps({"version": 1, "spends": record}, separators=(",", ":")))
            finally:
                with contextlib.suppress(redis.RedisError):
                    self._client.eval(UNLOCK, 1, key + ":lock", token)
        except redis.RedisError as exc:
            raise unreachable(self.url, exc) from None
        self._cache = copy_record(record)

    def close(self) -> None:
        self._client.close()


class RedisBackend:
    """Leases, the job index and the budget on a Redis server (see the module's docstring)."""

    def __init__(self, url: str, state_dir: Path) -> None:
        _require()
        self.url = url
        # Calls beyond the pool's connections wait for one (a thousand tool calls at once must not fail).
        pool = aredis.BlockingConnectionPool.from_url(url, max_connections=32, timeout=10.0, **TIMEOUTS)
        self._client = aredis.Redis(connection_pool=pool)
        self._carry_from = state_dir / "budget.json"
        self._budget: RedisStore | None = None
        self._acquire = self._client.register_script(ACQUIRE)
        self._touch = self._client.register_script(TOUCH)

    def budget_store(self) -> BudgetStore:
        if self._budget is None:
            self._budget = RedisStore(self.url, carry_from=self._carry_from)
            with contextlib.suppress(StateError):  # unreachable now: the first spend tells the caller
                self._budget.refresh()
        return self._budget

    async def _run(self, coro: Any) -> Any:
        try:
            return await coro
        except redis.RedisError as exc:
            raise unreachable(self.url, exc) from None
        except OSError as exc:
            raise unreachable(self.url, exc) from None

    async def acquire(self, account: str, ticket: str, since: float, capacity: int, ttl: float) -> bool:
        keys = [PREFIX + f"lease:{account}", PREFIX + f"line:{account}", PREFIX + f"linex:{account}"]
        keys.append(PREFIX + "tickets")
        granted = await self._run(self._acquire(keys=keys, args=[ticket, since, capacity, ttl, account]))
        return bool(granted)

    async def release(self, tickets: Sequence[str]) -> None:
        if tickets:
            await self._run(self._touch(keys=[PREFIX + "tickets"], args=[PREFIX, -1, *tickets]))

    async def renew(self, tickets: Sequence[str], ttl: float) -> None:
        if tickets:
            await self._run(self._touch(keys=[PREFIX + "tickets"], args=[PREFIX, ttl, *tickets]))
        if self._budget is not None:  # other servers spend too: the budget's snapshot follows them
            import anyio

            await anyio.to_thread.run_sync(self._budget.refresh)

    async def count(self, account: str) -> int:
        key = PREFIX + f"lease:{account}"
        return int(await self._run(self._client.zcount(key, time.time(), "+inf")))

    async def put_jobs(self, records: Sequence[tuple[dict[str, Any], Sequence[str]]]) -> None:
        if not records:
            return
        pipe = self._client.pipeline(transaction=False)
        ttl = int(JOB_TTL)
        for record, ids in records:
            pipe.set(PREFIX + f"job:{record['key']}", json.dumps(record, separators=(",", ":")), ex=ttl)
            for key in ids:
                pipe.set(PREFIX + f"id:{key}", record["key"], ex=ttl)
        await self._run(pipe.execute())

    async def get_job(self, key: str) -> dict[str, Any] | None:
        job_key = await self._run(self._client.get(PREFIX + f"id:{key}"))
        if job_key is None:
            return None
        raw = await self._run(self._client.get(PREFIX + f"job:{job_key}"))
        found: dict[str, Any] | None = json.loads(raw) if raw else None
        return found

    async def get_records(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        raws = await self._run(self._client.mget([PREFIX + f"job:{key}" for key in keys]))
        return [json.loads(raw) if raw else None for raw in raws]

    async def ping(self) -> None:
        await self._run(self._client.ping())

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.aclose()
        if self._budget is not None:
            self._budget.close()
