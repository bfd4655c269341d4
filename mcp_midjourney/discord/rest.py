"""Discord REST for a user account: interactions, the command index, messages — with rate limits in one place.

No Midjourney knowledge lives here. Errors are typed so the engine can tell the model what to do, and no
error message ever carries the token (it travels only in the Authorization header).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from pydantic import SecretStr

log = logging.getLogger(__name__)

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
_ID_IN_PATH = re.compile(r"/(\d{15,21})")
_MAJOR = ("channels", "guilds", "webhooks")


class DiscordHTTPError(Exception):
    """Discord answered with an error; `status` and Discord's JSON `code` say which."""

    def __init__(self, status: int, message: str, code: int | None = None, errors: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.errors = errors or []


class Unauthorized(DiscordHTTPError):
    """401: the token is wrong, expired or revoked."""


class Forbidden(DiscordHTTPError):
    """403: the account cannot see or write in that channel."""


class NotFound(DiscordHTTPError):
    """404: unknown channel, guild or message."""


class InvalidRequest(DiscordHTTPError):
    """400: Discord refused the body (for interactions: often a stale command version, code 50035)."""

    @property
    def stale_command(self) -> bool:
        return any("INVALID_VERSION" in e or "UNKNOWN_APPLICATION_COMMAND" in e for e in self.errors)


class DiscordUnavailable(DiscordHTTPError):
    """Discord could not be reached or kept failing (network errors, 5xx, a Cloudflare block)."""


@dataclass
class _Bucket:
    remaining: int | None = None
    reset_at: float = 0.0


def _error_codes(payload: Any) -> list[str]:
    """Collect every ``{"code": "...", "message": ...}`` leaf of a Discord error body."""
    found: list[str] = []
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            code = item.get("code")
            if isinstance(code, str):
                found.append(code)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


class DiscordRest:
    """An async REST client of one Discord account.

    Honours per-bucket limits before sending (``X-RateLimit-Remaining``/``Reset-After``), waits out 429s
    (global, user or shared scope), retries network errors and 5xx with capped backoff, and paces
    interactions so one account never fires them faster than a person could.
    """

    def __init__(
        self,
        api_base: str,
        token: SecretStr,
        *,
        interaction_interval: float = 0.35,
        max_retries: int = 4,
        max_rate_limit_wait: float = 60.0,
        timeout: float = 15.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self._token = token
        self._interval = interaction_interval
        self._max_retries = max_retries
        self._max_wait = max_rate_limit_wait
        self._client = httpx2.AsyncClient(
            base_url=self.api_base,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        self._buckets: dict[str, _Bucket] = {}
        self._route_bucket: dict[str, str] = {}
        self._global_until = 0.0
        self._pace_lock = anyio.Lock()
        self._last_interaction = 0.0
        self.requests: Counter[str] = Counter()  # "METHOD /route" -> count, for benchmarks and tests

    @property
    def client(self) -> httpx2.AsyncClient:
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- the calls we make -------------------------------------------------------------------------------

    async def gateway_url(self) -> str:
        """The gateway's websocket URL, as ``GET /gateway`` gives it (never hard-coded)."""
        data = await self.request("GET", "/gateway")
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise DiscordUnavailable(200, "GET /gateway returned no url")
        return url

    async def me(self) -> dict[str, Any]:
        data = await self.request("GET", "/users/@me")
        return data if isinstance(data, dict) else {}

    async def command_index(self, *, guild_id: str | None, channel_id: str) -> dict[str, Any]:
        """Every slash command's current id and version (guild index, or the DM channel's)."""
        path = (
            f"/guilds/{guild_id}/application-command-index"
            if guild_id
            else f"/channels/{channel_id}/application-command-index"
        )
        data = await self.request("GET", path)
        return data if isinstance(data, dict) else {}

    async def messages(self, channel_id: str, *, limit: int = 50, after: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if after:
            params["after"] = after
        data = await self.request("GET", f"/channels/{channel_id}/messages", params=params)
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    async def message(self, channel_id: str, message_id: str) -> dict[str, Any]:
        data = await self.request("GET", f"/channels/{channel_id}/messages/{message_id}")
        return data if isinstance(data, dict) else {}

    async def interaction(self, body: dict[str, Any]) -> None:
        """``POST /interactions``: Discord answers 204 and the result comes on the gateway."""
        async with self._pace_lock:
            wait = self._last_interaction + self._interval - time.monotonic()
            if wait > 0:
                await anyio.sleep(wait)
            try:
                await self.request("POST", "/interactions", json=body, idempotent=False)
            finally:
                self._last_interaction = time.monotonic()

    # --- the machinery ------------------------------------------------------------------------------------

    @staticmethod
    def route_key(method: str, path: str) -> str:
        """The rate-limit route: ids in major positions (channel, guild) kept, others folded."""

        def fold(match: re.Match[str]) -> str:
            before = path[: match.start()].rsplit("/", 1)[-1]
            return match.group(0) if before in _MAJOR else "/{id}"

        return f"{method} {_ID_IN_PATH.sub(fold, path)}"

    async def _respect_limits(self, route: str) -> None:
        now = time.monotonic()
        wait = self._global_until - now
        bucket_id = self._route_bucket.get(route)
        bucket = self._buckets.get(bucket_id) if bucket_id else None
        if bucket and bucket.remaining == 0 and bucket.reset_at > now:
            wait = max(wait, bucket.reset_at - now)
        if wait > 0:
            log.info("rate limit: waiting %.2fs before %s", wait, route)
            await anyio.sleep(min(wait, self._max_wait))

    def _learn_limits(self, route: str, response: httpx2.Response) -> None:
        headers = response.headers
        bucket_id = headers.get("x-ratelimit-bucket")
        if not bucket_id:
            return
        self._route_bucket[route] = bucket_id
        bucket = self._buckets.setdefault(bucket_id, _Bucket())
        try:
            bucket.remaining = int(headers.get("x-ratelimit-remaining", "1"))
            bucket.reset_at = time.monotonic() + float(headers.get("x-ratelimit-reset-after", "0"))
        except ValueError:
            pass

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one request, handling limits and retries; return the decoded JSON (None for 204)."""
        route = self.route_key(method, path)
        attempt = 0
        while True:
            attempt += 1
            await self._respect_limits(route)
            self.requests[route] += 1
            try:
                response = await self._client.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers={"Authorization": self._token.get_secret_value()},
                )
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                # The request never reached Discord: safe to retry even for interactions.
                if attempt > self._max_retries:
                    raise DiscordUnavailable(
                        0, f"cannot reach Discord at {self.api_base}: {type(exc).__name__}"
                    ) from None
                await anyio.sleep(self._backoff(attempt))
                continue
            except httpx2.HTTPError as exc:
                if not idempotent or attempt > self._max_retries:
                    raise DiscordUnavailable(0, f"request to Discord failed: {type(exc).__name__}") from None
                await anyio.sleep(self._backoff(attempt))
                continue

            self._learn_limits(route, response)
            status = response.status_code
            if status == 429:
                delay = self._retry_after(response)
                if attempt > self._max_retries + 4 or delay > self._max_wait:
                    raise DiscordUnavailable(429, f"Discord rate limit: retry after {delay:.0f}s")
                log.warning("429 on %s (%s): retrying in %.2fs", route, self._scope(response), delay)
                await anyio.sleep(delay)
                continue
            if status >= 500:
                if attempt > self._max_retries:
                    raise DiscordUnavailable(status, f"Discord kept failing with HTTP {status}")
                await anyio.sleep(self._backoff(attempt))
                continue
            if status < 400 and (status == 204 or not response.content):
                return None
            if status < 400:
                try:
                    return response.json()
                except ValueError:
                    raise DiscordUnavailable(status, f"Discord sent a body that is not JSON on {route}") from None
            raise self._error(status, response)

    def _retry_after(self, response: httpx2.Response) -> float:
        try:
            body = response.json()
        except ValueError:
            body = None
        value: Any = body.get("retry_after") if isinstance(body, dict) else None
        if value is None:
            value = response.headers.get("retry-after", "1")
        try:
            delay = float(value)
        except (TypeError, ValueError):
            delay = 1.0
        if isinstance(body, dict) and body.get("global"):
            self._global_until = time.monotonic() + delay
        elif body is None:
            # An HTML 429 is Cloudflare, not Discord: back off harder.
            delay = max(delay, 5.0)
        return max(delay, 0.0)

    @staticmethod
    def _scope(response: httpx2.Response) -> str:
        return response.headers.get(
            "x-ratelimit-scope", "html" if "html" in response.headers.get("content-type", "") else "?"
        )

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random())

    @staticmethod
    def _error(status: int, response: httpx2.Response) -> DiscordHTTPError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        message = str(body.get("message") or f"HTTP {status}")
        code = body.get("code") if isinstance(body.get("code"), int) else None
        errors = _error_codes(body.get("errors"))
        kind: type[DiscordHTTPError] = {
            400: InvalidRequest,
            401: Unauthorized,
            403: Forbidden,
            404: NotFound,
        }.get(status, DiscordHTTPError)
        return kind(status, message, code, errors)
