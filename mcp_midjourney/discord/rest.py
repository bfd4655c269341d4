"""Discord REST for a user account: interactions, the command index, messages — with rate limits in one place
(`ratelimit.py` keeps what Discord said; this module waits, retries and paces).

No Midjourney knowledge lives here. Errors are typed so the engine can tell the model what to do, and no
error message ever carries the token (it travels only in the Authorization header).
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
from pydantic import SecretStr

from .ratelimit import RateLimits, route_key, scope

log = logging.getLogger(__name__)

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

_tls_lock = threading.Lock()
_tls: list[ssl.SSLContext] = []


def tls_context() -> ssl.SSLContext:
    """The verified TLS context every client shares (httpx2's default: system CAs, ``SSL_CERT_*`` honoured).

    Loading the CA bundle costs ~50 ms per context; one per account's client plus the server's own was the
    largest part of start-up after the imports (bench/coldstart.py).
    """
    with _tls_lock:
        if not _tls:
            _tls.append(httpx2.create_ssl_context())
        return _tls[0]


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

    @property
    def invalid_session(self) -> bool:
        """The interaction named a gateway session Discord no longer knows (sent across a reconnect)."""
        return any("SESSION_ID" in e for e in self.errors)


class DiscordUnavailable(DiscordHTTPError):
    """Discord could not be reached or kept failing (network errors, 5xx, a Cloudflare block)."""


Confirm = Callable[[], Awaitable[bool]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


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
    interactions so one account never fires them faster than a person could. Every wait reads `clock` and
    goes through `sleep` (monotonic time and `anyio.sleep` unless a test hands in its own).
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
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
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
            verify=tls_context(),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        self._clock = clock
        self._sleep = sleep
        self.limits = RateLimits(clock)
        self._pace_lock = anyio.Lock()
        self._last_interaction = 0.0
        self.requests: Counter[str] = Counter()  # "METHOD /route" -> count, for benchmarks and tests

    @property
    def client(self) -> httpx2.AsyncClient:
        """The account's HTTP client (its transport, TLS and User-Agent; no token: that goes per request)."""
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

    async def interaction(self, body: dict[str, Any], *, confirm: Confirm | None = None) -> None:
        """``POST /interactions``: Discord answers 204 and the result comes on the gateway.

        An interaction is not idempotent: after an answer that leaves it unknown whether Discord took it (the
        connection dropped mid-request, a 5xx), `confirm` is asked (e.g. "did the gateway echo our nonce?") and
        the request is sent again only if it says no. Without `confirm` such a failure raises.
        """
        async with self._pace_lock:
            wait = self._last_interaction + self._interval - self._clock()
            if wait > 0:
                await self._sleep(wait)
            try:
                await self.request("POST", "/interactions", json=body, idempotent=False, confirm=confirm)
            finally:
                self._last_interaction = self._clock()

    async def upload(self, channel_id: str, filename: str, data: bytes) -> str:
        """Discord's attachment flow: ask for an upload slot, PUT the bytes there; return the uploaded filename."""
        slots = await self.request(
            "POST",
            f"/channels/{channel_id}/attachments",
            json={"files": [{"id": "0", "filename": filename, "file_size": len(data)}]},
        )
        slot = (slots or {}).get("attachments", [None])[0] if isinstance(slots, dict) else None
        if not isinstance(slot, dict) or not slot.get("upload_url") or not slot.get("upload_filename"):
            raise DiscordUnavailable(200, "Discord gave no upload slot for the attachment")
        # The upload URL is a signed storage URL: it takes no Authorization header.
        response = await self._client.put(str(slot["upload_url"]), content=data, headers={"Authorization": ""})
        self.requests["PUT upload"] += 1
        if response.status_code >= 400:
            status = response.status_code
            raise DiscordUnavailable(status, f"the attachment upload failed with HTTP {status}")
        return str(slot["upload_filename"])

    async def post_message(self, channel_id: str, content: str, attachments: list[dict[str, Any]]) -> dict[str, Any]:
        """Post a message (with uploaded attachments) in a channel; return the message Discord made."""
        body = {"content": content, "attachments": attachments, "nonce": None, "tts": False}
        data = await self.request("POST", f"/channels/{channel_id}/messages", json=body, idempotent=False)
        return data if isinstance(data, dict) else {}

    # --- the machinery ------------------------------------------------------------------------------------

    @staticmethod
    def route_key(method: str, path: str) -> str:
        """The rate-limit route: ids in major positions (channel, guild) kept, others folded."""
        return route_key(method, path)

    async def _respect_limits(self, route: str) -> None:
        wait = self.limits.wait_before(route)
        if wait > 0:
            log.info("rate limit: waiting %.2fs before %s", wait, route)
            await self._sleep(min(wait, self._max_wait))

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
        confirm: Confirm | None = None,
    ) -> Any:
        """Send one request, handling limits and retries; return the decoded JSON (None for 204).

        429s are waited out (per bucket, per route, or globally; a Cloudflare HTML 429 like a global one) up to
        a cap; 5xx and network errors are retried with capped, jittered backoff. A request that is not
        idempotent is retried after such an error only when `confirm` says Discord did not take it.
        """
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
                await self._sleep(self._backoff(attempt))
                continue
            except httpx2.HTTPError as exc:
                failure = DiscordUnavailable(0, f"request to Discord failed: {type(exc).__name__}")
                log.warning("%s on %s (attempt %d)", type(exc).__name__, route, attempt)
                if await self._give_up(failure, attempt, idempotent, confirm):
                    return None
                continue

            self.limits.learn(route, response.headers)
            status = response.status_code
            if status == 429:
                delay = self.limits.limited(route, response)
                if attempt > self._max_retries + 4 or delay > self._max_wait:
                    raise DiscordUnavailable(429, f"Discord rate limit: retry after {delay:.0f}s")
                log.warning("429 on %s (%s): retrying in %.2fs", route, scope(response), delay)
                continue
            if status >= 500:
                failure = DiscordUnavailable(status, f"Discord kept failing with HTTP {status}")
                log.warning("HTTP %d on %s (attempt %d)", status, route, attempt)
                if await self._give_up(failure, attempt, idempotent, confirm):
                    return None
                continue
            if status < 400 and (status == 204 or not response.content):
                return None
            if status < 400:
                try:
                    return response.json()
                except ValueError:
                    raise DiscordUnavailable(status, f"Discord sent a body that is not JSON on {route}") from None
            raise self._error(status, response)

    async def _give_up(
        self, failure: DiscordUnavailable, attempt: int, idempotent: bool, confirm: Confirm | None
    ) -> bool:
        """After an error that may or may not have reached Discord: True = it did (stop, success), False = retry.

        Raises `failure` when retrying is not allowed or the retries are spent.
        """
        if not idempotent:
            if confirm is None:
                raise failure
            if await confirm():
                return True
        if attempt > self._max_retries:
            raise failure
        await self._sleep(self._backoff(attempt))
        return False

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(8.0, 0.25 * 2.0 ** (attempt - 1)) * (0.5 + random.random())

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
