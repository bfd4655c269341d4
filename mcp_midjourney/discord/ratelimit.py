"""Discord's rate limits as its answers teach them: per bucket, per route, global, and Cloudflare's block.

No I/O and no sleeping: `DiscordRest` asks `wait_before(route)` how long to hold a request, tells `learn` every
answer's headers, and hands a 429 to `limited`, which records how long its scope must wait. The clock is
injected, so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

_ID_IN_PATH = re.compile(r"/(\d{15,21})")
_MAJOR = ("channels", "guilds", "webhooks")


def route_key(method: str, path: str) -> str:
    """The rate-limit route: ids in major positions (channel, guild) kept, others folded."""

    def fold(match: re.Match[str]) -> str:
        before = path[: match.start()].rsplit("/", 1)[-1]
        return match.group(0) if before in _MAJOR else "/{id}"

    return f"{method} {_ID_IN_PATH.sub(fold, path)}"


@dataclass
class _Bucket:
    remaining: int | None = None
    reset_at: float = 0.0


class RateLimits:
    """What Discord said about its limits, per route, per bucket and globally, on one account's client."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._route_bucket: dict[str, str] = {}
        self._global_until = 0.0
        self._route_until: dict[str, float] = {}  # routes told to wait by a 429 that named no bucket

    def wait_before(self, route: str) -> float:
        """Seconds a request on `route` must wait now (0 when it may go at once)."""
        now = self._clock()
        wait = max(self._global_until, self._route_until.get(route, 0.0)) - now
        bucket_id = self._route_bucket.get(route)
        bucket = self._buckets.get(bucket_id) if bucket_id else None
        if bucket and bucket.remaining == 0 and bucket.reset_at > now:
            wait = max(wait, bucket.reset_at - now)
        return max(0.0, wait)

    def learn(self, route: str, headers: Mapping[str, str]) -> None:
        """Read an answer's ``X-RateLimit-*`` headers: the route's bucket, what remains, when it resets."""
        bucket_id = headers.get("x-ratelimit-bucket")
        if not bucket_id:
            return
        self._route_bucket[route] = bucket_id
        bucket = self._buckets.setdefault(bucket_id, _Bucket())
        try:
            bucket.remaining = int(headers.get("x-ratelimit-remaining", "1"))
            bucket.reset_at = self._clock() + float(headers.get("x-ratelimit-reset-after", "0"))
        except ValueError:
            pass

    def limited(self, route: str, response: httpx2.Response) -> float:
        """Read a 429 and record how long its scope must wait; returns the delay in seconds."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        headers = response.headers
        value: Any = body.get("retry_after") if isinstance(body, dict) else None
        if value is None:
            value = headers.get("retry-after")
        try:
            delay = max(0.0, float(value))
        except (TypeError, ValueError):
            delay = -1.0
        until = self._clock()
        if not isinstance(body, dict):
            # An HTML 429 is Cloudflare, not Discord: it blocks every request from here, so wait globally, and
            # without a Retry-After wait a good while.
            delay = delay if delay >= 0 else 5.0
            self._global_until = max(self._global_until, until + delay)
            return delay
        delay = delay if delay >= 0 else 1.0
        if body.get("global") or headers.get("x-ratelimit-global") or headers.get("x-ratelimit-scope") == "global":
            self._global_until = max(self._global_until, until + delay)
            return delay
        bucket_id = headers.get("x-ratelimit-bucket")
        bucket = self._buckets.get(bucket_id) if bucket_id else None
        if bucket is not None:
            bucket.remaining = 0
            bucket.reset_at = max(bucket.reset_at, until + delay)
        else:
            self._route_until[route] = until + delay
        return delay


def scope(response: httpx2.Response) -> str:
    """A 429's scope for the log: Discord's ``X-RateLimit-Scope``, "html" for Cloudflare's page, else "?"."""
    return response.headers.get(
        "x-ratelimit-scope", "html" if "html" in response.headers.get("content-type", "") else "?"
    )
