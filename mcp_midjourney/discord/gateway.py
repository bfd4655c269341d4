"""The Discord gateway session of a user account: identify, heartbeat with an ACK watchdog, resume, reconnect.

No Midjourney knowledge lives here: dispatches of the wanted event types go to a callback, and the caller
decides what they mean. A caller may hand in a pre-filter that sees each dispatch's raw text first and may skip
it unparsed (the engine's rule for frames it would drop anyway); the gateway keeps the sequence numbers and the
counts of those frames. The wire's frames and close codes are in `protocol.py`.
The loop never dies silently: a final close (bad token, 4010-4014) is recorded in `fatal` and every waiter is
told; every other drop reconnects with backoff and jitter, and resumes.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
from pydantic import SecretStr

if TYPE_CHECKING:
    from httpx2.websockets import AsyncWebSocketSession

# httpx2.websockets (and wsproto, h11) load with the first connection, not at import: they were ~35 ms of the
# server's start-up before it could answer `initialize` (bench/coldstart.py).

from .protocol import (
    COMPACT_DISPATCH,
    FATAL_CLOSE_CODES,
    MAX_MESSAGE_BYTES,
    RESUMABLE_CLOSE,
    SESSION_EVENTS,
    SESSION_LOST_CODES,
    GatewayFatal,
    heartbeat_payload,
    identify_payload,
    resume_payload,
)
from .rest import USER_AGENT, DiscordHTTPError, DiscordRest, Unauthorized

log = logging.getLogger(__name__)

__all__ = ["FATAL_CLOSE_CODES", "Dispatch", "Gateway", "GatewayFatal", "Prefilter", "ReadyHook", "identify_payload"]

Dispatch = Callable[[str, dict[str, Any]], None]
ReadyHook = Callable[[bool], None]
# Called with (event name, raw frame text) for dispatches in Discord's compact layout: True skips the frame
# unparsed (its sequence number is still recorded). The caller's rule, not the gateway's.
Prefilter = Callable[[str, str], bool]


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
        prefilter: Prefilter | None = None,
    ) -> None:
        """`wanted_events` None hands every dispatch to `on_dispatch`; `prefilter` (see `Prefilter`) may skip
        dispatches before they are parsed."""
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
        self.frames_skipped = 0  # dispatches the pre-filter dropped before json.loads
        self.prefilter = prefilter  # may be replaced or set to None at any time (bench/dispatch.py compares)
        self._acked = [True]  # the current connection's "heartbeat acknowledged" flag, shared with its heartbeat
        self._had_session = False
        self._reached_ready = False  # the current connection got READY or RESUMED
        self._recent_connects: list[float] = []

    # --- public ------------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The session is READY (or RESUMED) and not stopped for good."""
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
            await ws.send_text(json.dumps(resume_payload(token, self.session_id, self.seq)))
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
                    await ws.send_text(json.dumps(heartbeat_payload(self.seq)))
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
                await ws.send_text(json.dumps(heartbeat_payload(self.seq)))
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
        if self.prefilter is not None and self._skipped(raw, self.prefilter):
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

    def _record_seq(self, seq: Any, ready: bool) -> None:
        # Keep the highest sequence seen (a late or repeated frame must not move it back); READY starts anew.
        if isinstance(seq, int) and (ready or self.seq is None or seq > self.seq):
            self.seq = seq

    def _skipped(self, raw: str, prefilter: Prefilter) -> bool:
        """Whether a frame in Discord's compact dispatch layout is one the pre-filter drops; if so its sequence
        number is recorded and the event counted as if parsed. READY and RESUMED are always read."""
        match = COMPACT_DISPATCH.match(raw)  # the hot path: one regex, and the sequence read only when skipping
        if match is None or match[1] in SESSION_EVENTS or not prefilter(match[1], raw):
            return False
        self._record_seq(int(match[2]), False)
        self.events_received += 1
        self.frames_skipped += 1
        return True

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
