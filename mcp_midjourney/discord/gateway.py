"""The Discord gateway session of a user account: identify, heartbeat with an ACK watchdog, resume, reconnect.

No Midjourney knowledge lives here: dispatches of the wanted event types go to a callback, and the engine
decides what they mean. The one exception, for a gateway given its account's channel, is a pre-filter on the raw
text (`_skip_unparsed`) that drops message dispatches the engine would drop anyway before parsing them. The loop
never dies silently: a final close (bad token, 4010-4014) is recorded in `fatal` and every waiter is told; every
other drop reconnects with backoff and jitter, and resumes.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeGuard

import anyio
import httpx2
from pydantic import SecretStr

if TYPE_CHECKING:
    from httpx2.websockets import AsyncWebSocketSession

# httpx2.websockets (and wsproto, h11) load with the first connection, not at import: they were ~35 ms of the
# server's start-up before it could answer `initialize` (bench/coldstart.py).

from .rest import USER_AGENT, DiscordHTTPError, DiscordRest, Unauthorized

log = logging.getLogger(__name__)

# Close codes after which reconnecting cannot help (authentication failed, bad shard/intents/version): the
# account stops, and its words reach the agent, so each says what a person must do.
FATAL_CLOSE_CODES = {
    4004: "authentication failed: the Discord token is invalid or revoked. Set a fresh user token "
    "(MJ_DISCORD_TOKEN, or the account's token in MJ_ACCOUNTS) and restart the server",
    4010: "Discord closed the gateway with code 4010 (invalid shard): this client sent a bad IDENTIFY; "
    "update mcp-midjourney",
    4011: "Discord closed the gateway with code 4011 (sharding required): a user account should never get this; "
    "check that the token is a user token, not a bot token",
    4012: "Discord closed the gateway with code 4012 (invalid API version): update mcp-midjourney",
    4013: "Discord closed the gateway with code 4013 (invalid intents): check that the token is a user token, "
    "not a bot token, and update mcp-midjourney",
    4014: "Discord closed the gateway with code 4014 (disallowed intents): check that the token is a user token, "
    "not a bot token",
}
# Codes after which the session is gone and we must identify afresh.
SESSION_LOST_CODES = {4007, 4009}
# A user account's READY carries every guild and channel: it can be several MB.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Closing with 1000/1001 would end the session on Discord's side; any other code keeps it resumable.
RESUMABLE_CLOSE = 4000
# The start of a dispatch exactly as Discord serialises it (compact, keys in the order t, s, op, d). Only frames
# that begin so may be skipped unparsed; any other shape is parsed in full.
_COMPACT_DISPATCH = re.compile(r'\{"t":"([A-Z0-9_]+)","s":(0|[1-9][0-9]*),"op":0,"d":\{')

Dispatch = Callable[[str, dict[str, Any]], None]
ReadyHook = Callable[[bool], None]


class GatewayFatal(Exception):
    """The gateway refused this account for good; the message says why."""


def identify_payload(token: str) -> dict[str, Any]:
    """A browser-style IDENTIFY of a user account: no intents, client properties like the web client's."""
    return {
        "op": 2,
        "d": {
            "token": token,
            "capabilities": 16381,
            "properties": {
                "os": "Windows",
                "browser": "Chrome",
                "device": "",
                "system_locale": "en-US",
                "browser_user_agent": USER_AGENT,
                "browser_version": "131.0.0.0",
                "os_version": "10",
                "referrer": "",
                "referring_domain": "",
                "referrer_current": "",
                "referring_domain_current": "",
                "release_channel": "stable",
                "client_build_number": 352804,
                "client_event_source": None,
            },
            "presence": {"status": "unknown", "since": 0, "activities": [], "afk": False},
            "compress": False,
            "client_state": {"guild_versions": {}},
        },
    }


class Gateway:
    """One account's websocket session. Run `run()` in a long-lived task; wait on `wait_ready()`."""

    def __init__(
        self,
        rest: DiscordRest,
        token: SecretStr,
        *,
        on_dispatch: Dispatch,
        on_ready: ReadyHook | None = None,
        wanted_events: frozenset[str] | None = None,
        max_backoff: float = 30.0,
        channel_id: str | None = None,
        authors: frozenset[str] = frozenset(),
        prefilter: bool = True,
    ) -> None:
        self._rest = rest
        self._token = token
        self._on_dispatch = on_dispatch
        self._on_ready = on_ready
        self._wanted = wanted_events
        self._max_backoff = max_backoff
        self.session_id: str | None = None
        self.user_id: str | None = None
        self.seq: int | None = None
        self._resume_url: str | None = None
        self._gateway_url: str | None = None
        self._ready = anyio.Event()
        self._state_changed = anyio.Event()
        self.fatal: str | None = None
        self.connected_at: float | None = None
        self.last_ack: float | None = None
        self.reconnects = 0
        self.events_received = 0
        self.malformed_frames = 0
        self.frames_skipped = 0  # message dispatches dropped before json.loads (see `_skip_unparsed`)
        self.prefilter = prefilter  # drop provably irrelevant message dispatches before json.loads
        # Only an all-digit id (a snowflake) is looked for in the raw text: it has one spelling in JSON. Without
        # one, nothing is skipped.
        self._channel_needle = f'"channel_id":"{channel_id}"' if _is_snowflake(channel_id) else None
        # Only messages created by these users matter to the caller (empty: anyone's).
        self._authors = tuple(a for a in authors if _is_snowflake(a))
        self._acked = [True]  # the current connection's "heartbeat acknowledged" flag, shared with its heartbeat
        self._kept: OrderedDict[str, None] = OrderedDict()  # ids whose frames are never skipped (see `keep`)
        self._had_session = False
        self._reached_ready = False  # the current connection got READY or RESUMED
        self._recent_connects: list[float] = []

    # --- public ------------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self.fatal is None

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the session is READY (or RESUMED). Raise `GatewayFatal` or `TimeoutError`."""
        deadline = time.monotonic() + timeout
        while True:
            if self.fatal:
                raise GatewayFatal(self.fatal)
            if self._ready.is_set():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the Discord gateway did not become ready")
            with anyio.move_on_after(remaining):
                await self._state_changed.wait()

    async def run(self) -> None:
        """Connect, and keep reconnecting until a final close or cancellation."""
        failures = 0  # connections in a row that never got READY/RESUMED
        while True:
            self._reached_ready = False
            self._recent_connects = [t for t in self._recent_connects if t > time.monotonic() - 60] + [time.monotonic()]
            try:
                await self._connect_once()
            except GatewayFatal as exc:
                self._fail(str(exc))
                return
            except Unauthorized:
                self._fail(FATAL_CLOSE_CODES[4004])
                return
            except _connection_errors() as exc:
                log.warning("gateway connection failed: %s", _describe(exc))
            except BaseExceptionGroup as group:  # httpx2's websocket wraps errors in a group
                fatal = _first(group, GatewayFatal)
                if fatal is not None:
                    self._fail(str(fatal))
                    return
                if group.subgroup(lambda e: isinstance(e, anyio.get_cancelled_exc_class())):
                    raise
                log.warning("gateway connection failed: %s", _describe(_first(group, Exception) or group))
            self._set_ready(False)
            self.reconnects += 1
            failures = 0 if self._reached_ready else failures + 1
            delay = self.reconnect_delay(failures, len(self._recent_connects))
            log.info("gateway reconnecting in %.2fs (%s)", delay, "resume" if self._can_resume else "identify")
            await anyio.sleep(delay)

    def reconnect_delay(self, failures: int, recent: int) -> float:
        """Seconds before the next connection: at once (with jitter) after a healthy one dropped; exponential
        backoff with jitter, capped, while connections keep failing; never a tight loop of identifies."""
        if failures == 0:
            delay = random.uniform(0.05, 0.5)
        else:
            delay = min(self._max_backoff, 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)
        if recent > 10:  # more than 10 connections in a minute: something is wrong, slow right down
            delay = max(delay, random.uniform(5.0, 10.0))
        return delay

    @property
    def _can_resume(self) -> bool:
        return bool(self.session_id and self._resume_url and self.seq is not None)

    # --- one connection ------------------------------------------------------------------------------------

    async def _connect_once(self) -> None:
        resuming = self._can_resume
        if resuming:
            base = self._resume_url
        else:
            if self._gateway_url is None:
                self._gateway_url = await self._rest.gateway_url()
            base = self._gateway_url
        url = f"{str(base).rstrip('/')}/?v=9&encoding=json"
        async with self._rest.client.websocket(
            url,
            max_message_size_bytes=MAX_MESSAGE_BYTES,
            keepalive_ping_interval_seconds=None,  # the gateway's own heartbeat is the liveness check
            headers={"User-Agent": USER_AGENT},
        ) as ws:
            self.connected_at = time.monotonic()
            await self._session(ws, resuming)

    async def _session(self, ws: AsyncWebSocketSession, resuming: bool) -> None:
        hello = json.loads(await ws.receive_text(timeout=30))
        if hello.get("op") != 10:
            raise ValueError(f"expected HELLO (op 10), got op {hello.get('op')}")
        interval = float(hello["d"]["heartbeat_interval"]) / 1000.0
        token = self._token.get_secret_value()
        if resuming:
            await ws.send_text(
                json.dumps({"op": 6, "d": {"token": token, "session_id": self.session_id, "seq": self.seq}})
            )
        else:
            await ws.send_text(json.dumps(identify_payload(token)))

        acked = [True]  # handed to the read loop, which sets it on each ACK
        zombie = [False]
        async with anyio.create_task_group() as tg:

            async def heartbeat() -> None:
                await anyio.sleep(interval * random.random())
                while True:
                    if not acked[0]:
                        # No ACK since the last beat: the connection is a zombie. Drop it and resume.
                        log.warning("gateway heartbeat not acknowledged: reconnecting")
                        zombie[0] = True
                        tg.cancel_scope.cancel()
                        return
                    acked[0] = False
                    await ws.send_text(json.dumps({"op": 1, "d": self.seq}))
                    await anyio.sleep(interval)

            tg.start_soon(heartbeat)
            try:
                await self._read_loop(ws, acked)
            finally:
                tg.cancel_scope.cancel()
        if zombie[0]:
            with anyio.move_on_after(1):
                await ws.close(RESUMABLE_CLOSE, "heartbeat not acknowledged")

    async def _read_loop(self, ws: AsyncWebSocketSession, acked: list[bool]) -> None:
        from httpx2.websockets import WebSocketDisconnect, WebSocketInvalidTypeReceived

        self._acked = acked
        while True:
            try:
                raw = await ws.receive_text()
            except WebSocketDisconnect as exc:
                self._on_close(exc.code, exc.reason)
                return
            except WebSocketInvalidTypeReceived:
                self._malformed("a binary frame")
                continue
            message = self.handle_frame(raw)
            if message is None:
                continue
            op = message.get("op")
            if op == 1:
                await ws.send_text(json.dumps({"op": 1, "d": self.seq}))
            elif op == 7:
                log.info("gateway asked us to reconnect (op 7): resuming")
                await ws.close(RESUMABLE_CLOSE, "reconnect requested")
                return
            elif op == 9:
                # No interaction may name this session any more: stop taking work until the new one is ready.
                self._set_ready(False)
                if not message.get("d"):
                    log.info("gateway session invalidated (op 9): identifying anew")
                    self._forget_session()
                else:
                    log.info("gateway session interrupted (op 9, resumable): resuming")
                await anyio.sleep(random.uniform(1, 3))
                await ws.close(RESUMABLE_CLOSE, "invalid session")
                return

    def handle_frame(self, raw: str) -> dict[str, Any] | None:
        """Apply one text frame: sequence, ACK, dispatch. Return the message when the caller must answer it
        on the socket (ops 1, 7, 9), else None."""
        if self.prefilter and self._skip_unparsed(raw):
            return None
        try:
            message = json.loads(raw)
        except ValueError:
            self._malformed("a frame that is not JSON")
            return None
        if not isinstance(message, dict):
            self._malformed("a frame that is not a JSON object")
            return None
        op = message.get("op")
        if op == 0:
            self._record_seq(message.get("s"), message.get("t") == "READY")
            self._handle_dispatch(message.get("t"), message.get("d"))
        elif op == 11:
            self._acked[0] = True
            self.last_ack = time.monotonic()
        elif op in (1, 7, 9):
            return message
        return None

    def keep(self, *ids: str | None) -> None:
        """Never skip frames that contain these ids: messages the engine follows although they do not name our
        user (another user's job looked up by id, and its job uuid). The most recent 64 are kept."""
        for snowflake in ids:
            # Only ids long enough to be unique in a frame: a snowflake (15+ digits) or a job uuid.
            if snowflake and snowflake.isascii() and len(snowflake) >= 15 and (snowflake.isdigit() or "-" in snowflake):
                self._kept[snowflake] = None
                self._kept.move_to_end(snowflake)
        while len(self._kept) > 64:
            self._kept.popitem(last=False)

    def _record_seq(self, seq: Any, ready: bool) -> None:
        # Keep the highest sequence seen (a late or repeated frame must not move it back); READY starts anew.
        if isinstance(seq, int) and (ready or self.seq is None or seq > self.seq):
            self.seq = seq

    def _skip_unparsed(self, raw: str) -> bool:
        """Whether a frame is a dispatch the caller would drop, decided on the raw text: an event type it does not
        want; a message in another channel; a message created by none of `authors`; or a created or updated message
        that names someone (`<@`) and never contains our user id (the engine's rule for other users' jobs) unless
        it holds an id the engine asked to `keep`. Only for a gateway that knows its channel, and only in Discord's
        own compact layout; the sequence number is recorded and the event counted as if parsed."""
        needle = self._channel_needle
        if needle is None:
            return False
        match = _COMPACT_DISPATCH.match(raw)
        if match is None:
            return False
        event = match[1]
        if event in ("READY", "RESUMED"):
            return False
        if self._wanted is None or event in self._wanted:
            if not event.startswith("MESSAGE_"):
                return False
            if needle in raw:  # maybe our channel
                if event == "MESSAGE_DELETE":
                    return False
                by_anyone = event != "MESSAGE_CREATE" or not self._authors or any(a in raw for a in self._authors)
                if by_anyone and not self._names_someone_else(raw):
                    return False
        self._record_seq(int(match[2]), False)
        self.events_received += 1
        self.frames_skipped += 1
        return True

    def _names_someone_else(self, raw: str) -> bool:
        """A message naming a user (`<@`) whose text never contains our user id, nor an id the engine follows."""
        if "<@" not in raw:
            return False
        me = self.user_id
        if not _is_snowflake(me) or me in raw:
            return False
        return not (self._kept and any(kept in raw for kept in self._kept))

    def _malformed(self, what: str) -> None:
        self.malformed_frames += 1
        log.warning("gateway sent %s; ignored", what)

    def _handle_dispatch(self, event: Any, data: Any) -> None:
        if not isinstance(event, str) or not isinstance(data, dict):
            self._malformed("a dispatch without an event name or data")
            return
        self.events_received += 1
        if event == "READY":
            self.session_id = data.get("session_id")
            self._resume_url = data.get("resume_gateway_url") or self._gateway_url
            user = data.get("user")
            self.user_id = user.get("id") if isinstance(user, dict) else None
            reconnected = self._had_session
            self._had_session = True
            log.info("gateway ready (session established)")
            self._reached_ready = True
            self._set_ready(True)
            if self._on_ready:
                # A new session after an earlier one means events may have been missed: the engine reconciles.
                self._on_ready(reconnected)
            return
        if event == "RESUMED":
            log.info("gateway session resumed")
            self._reached_ready = True
            self._set_ready(True)
            return
        if self._wanted is not None and event not in self._wanted:
            return
        try:
            self._on_dispatch(event, data)
        except Exception:  # one bad event must never stop the session
            log.exception("error while handling a %s event", event)

    def _on_close(self, code: int, reason: str | None) -> None:
        if code in FATAL_CLOSE_CODES:
            raise GatewayFatal(FATAL_CLOSE_CODES[code])
        if code in SESSION_LOST_CODES:
            self._forget_session()
        log.info("gateway closed with code %s (%s): reconnecting", code, reason or "no reason")

    def _forget_session(self) -> None:
        self.session_id = None
        self.seq = None
        self._resume_url = None

    def _set_ready(self, ready: bool) -> None:
        if ready and not self._ready.is_set():
            self._ready.set()
        elif not ready and self._ready.is_set():
            self._ready = anyio.Event()
        self._state_changed.set()
        self._state_changed = anyio.Event()

    def _fail(self, reason: str) -> None:
        log.error("gateway stopped: %s", reason)
        self.fatal = reason
        self._set_ready(False)


def _is_snowflake(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.isascii() and value.isdigit()


def _connection_errors() -> tuple[type[Exception], ...]:
    """What a failed connection raises (the websocket module is imported when an error is being matched)."""
    from httpx2.websockets import HTTPXWSException

    return (DiscordHTTPError, HTTPXWSException, httpx2.HTTPError, OSError, ValueError, TimeoutError)


def _first(group: BaseExceptionGroup[BaseException], kind: type[BaseException]) -> BaseException | None:
    """The first leaf exception of a kind in a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _first(exc, kind)
            if found is not None:
                return found
        elif isinstance(exc, kind):
            return exc
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
