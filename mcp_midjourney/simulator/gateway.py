"""The gateway: Discord's websocket, speaking its opcodes, sessions, sequence numbers and resume.

One `Session` per IDENTIFY, numbered dispatches kept for replay; a `Connection` per websocket. A session
outlives its connection for `resume_window_seconds`: a client that RESUMEs with its last `seq` gets
every dispatch it missed, then RESUMED. Every dispatch goes to every live session of each account that
may see it (other users' jobs included), as on Discord.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.websockets import WebSocket

from .faults import GARBAGE_FRAMES
from .ids import session_id as new_session_id
from .members import GuildMembers
from .ready import ready_payload, ready_supplemental
from .state import Account, World

JSON = dict[str, Any]

logger = logging.getLogger("mcp_midjourney.simulator")

TRANSPORT_SCOPE_KEY = "mcp_midjourney.simulator.transport"
_REPLAY_LIMIT = 5_000
_API_VERSIONS = {"6", "7", "8", "9", "10"}
# Opcodes a user client may send that a Midjourney simulator accepts without acting on them (presence, voice,
# calls, lobbies, activities...); 8 (request guild members), 14 and 37 (guild subscriptions) are answered.
_ACCEPTED_OPS = {3, 4, 13, 31, 34, 35, 36, 40, 41}
_REQUEST_GUILD_MEMBERS, _GUILD_SUBSCRIBE, _BULK_GUILD_SUBSCRIBE = 8, 14, 37


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclass(frozen=True)
class _Abort:
    """Cut the TCP connection without a close frame, as a network failure would."""


_Frame = JSON | _Close | _Abort


@dataclass
class Session:
    """A gateway session: its sequence numbers and the dispatches a RESUME may replay."""

    id: str
    account: Account
    seq: int = 0
    sent: deque[JSON] = field(default_factory=lambda: deque(maxlen=_REPLAY_LIMIT))
    connection: Connection | None = None
    disconnected_at: float | None = None

    def emit(self, event: str, data: Any) -> None:
        """Number a dispatch, keep it for replay and send it if a connection is attached."""
        self.seq += 1
        frame: JSON = {"t": event, "s": self.seq, "op": 0, "d": data}
        self.sent.append(frame)
        if self.connection is not None:
            self.connection.send(frame)


class Connection:
    """One websocket: an ordered outbox drained by a single writer task."""

    def __init__(self, websocket: WebSocket, compress: bool) -> None:
        self.websocket = websocket
        self.session: Session | None = None
        self.last_heartbeat = time.monotonic()
        self.closing = False
        self.frozen = False  # a zombie: the socket stays open but nothing more is written to it
        self._deflate = zlib.compressobj() if compress else None
        self._outbox: MemoryObjectSendStream[_Frame]
        self.inbox: MemoryObjectReceiveStream[_Frame]
        self._outbox, self.inbox = anyio.create_memory_object_stream[_Frame](max_buffer_size=100_000)
        transport = websocket.scope.get(TRANSPORT_SCOPE_KEY)
        self.transport: asyncio.Transport | None = transport if isinstance(transport, asyncio.Transport) else None

    def send(self, frame: JSON) -> None:
        """Queue a payload; never blocks, so dispatching stays synchronous and ordered."""
        if self.closing:
            return
        try:
            self._outbox.send_nowait(frame)
        except anyio.WouldBlock:  # a client that stopped reading: Discord drops such connections too
            logger.warning("gateway: client not reading, dropping its connection")
            self.closing = True
            if self.transport is not None:
                self.transport.abort()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.closing = True

    def close(self, code: int, reason: str) -> None:
        """Queue a close frame after whatever is already queued."""
        if not self.closing:
            self._outbox.send_nowait(_Close(code, reason))
            self.closing = True

    def abort(self) -> None:
        """Drop the connection with no close frame."""
        if not self.closing:
            self._outbox.send_nowait(_Abort())
            self.closing = True

    def encode(self, frame: JSON) -> str | bytes:
        """Text JSON, or a zlib-stream chunk ending in `00 00 ff ff` when the client asked for it."""
        return self.encode_text(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))

    def encode_text(self, text: str) -> str | bytes:
        """Any text as this connection sends it (through its zlib stream when compressed)."""
        if self._deflate is None:
            return text
        return self._deflate.compress(text.encode()) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def _is_event(frame: JSON) -> bool:
    """A dispatch a fault may duplicate, reorder or surround with garbage (never the session's own)."""
    return frame.get("op") == 0 and frame.get("t") not in ("READY", "READY_SUPPLEMENTAL", "RESUMED")


def _op(op: int, data: Any = None) -> JSON:
    return {"t": None, "s": None, "op": op, "d": data}


class Gateway:
    """Every session and connection, the websocket endpoint and the test controls."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.ack_heartbeats = True
        self.members = GuildMembers(world)

    # -- dispatching -------------------------------------------------------------------------------

    def live_sessions(self, user_id: str | None = None) -> list[Session]:
        """Sessions connected or still resumable (of one user, or of everyone)."""
        self._expire()
        return [s for s in self.sessions.values() if user_id is None or s.account.user_id == user_id]

    def dispatch(self, event: str, data: Any, users: Iterable[str]) -> None:
        """Send one event to every live session of these users."""
        wanted = set(users)
        self.world.gateway_counts[f"dispatch {event}"] += 1
        for session in self.live_sessions():
            if session.account.user_id in wanted:
                session.emit(event, data)

    def _expire(self) -> None:
        limit = time.monotonic() - self.world.config.resume_window_seconds
        for sid, session in list(self.sessions.items()):
            if session.connection is None and session.disconnected_at is not None and session.disconnected_at < limit:
                del self.sessions[sid]

    # -- controls ----------------------------------------------------------------------------------

    def drop_connections(self, *, abrupt: bool = True, code: int = 4000, reason: str = "Unknown error.") -> int:
        """Cut every connection (no close frame) or close it with a code; sessions stay resumable."""
        for connection in list(self.connections):
            if abrupt:
                connection.abort()
            else:
                connection.close(code, reason)
        return len(self.connections)

    def freeze_connections(self) -> int:
        """Turn every open connection into a zombie: nothing more reaches the client, heartbeat ACKs included."""
        for connection in self.connections:
            connection.frozen = True
        self.world.faults.note("freeze", str(len(self.connections)))
        return len(self.connections)

    def forget_sessions(self) -> int:
        """Forget every session without a word (as when a resume window expired): a RESUME then gets op 9."""
        count = len(self.sessions)
        self.sessions.clear()
        self.world.faults.note("forget sessions", str(count))
        return count

    def revoke(self, token: str) -> int:
        """The account's token stops working (revoked, banned): its connections close with 4004."""
        account = self.world.accounts.pop(token, None)
        if account is None:
            return 0
        for session_id in [k for k, s in self.sessions.items() if s.account is account]:
            del self.sessions[session_id]
        closed = 0
        for connection in list(self.connections):
            if connection.session is not None and connection.session.account is account:
                connection.close(4004, "Authentication failed.")
                closed += 1
        return closed

    def send_reconnect(self) -> int:
        """Op 7 on every connection: the client should reconnect and resume."""
        for connection in list(self.connections):
            connection.send(_op(7))
        return len(self.connections)

    def invalidate_sessions(self) -> int:
        """Forget every session and tell connected clients (op 9, d false): they must IDENTIFY anew."""
        count = len(self.sessions)
        for connection in list(self.connections):
            if connection.session is not None:
                connection.session = None
                connection.send(_op(9, False))
        self.sessions.clear()
        return count

    def request_heartbeat(self) -> int:
        """Op 1 from the server: the client must heartbeat at once."""
        for connection in list(self.connections):
            connection.send(_op(1))
        return len(self.connections)

    # -- the websocket -----------------------------------------------------------------------------

    async def endpoint(self, websocket: WebSocket) -> None:
        """Serve one gateway connection from HELLO to close."""
        await websocket.accept()
        connection = Connection(websocket, websocket.query_params.get("compress") == "zlib-stream")
        self.connections.add(connection)
        self.world.gateway_counts["connections"] += 1
        interval = self.world.config.heartbeat_interval_ms
        connection.send(_op(10, {"heartbeat_interval": interval, "_trace": ['["gateway-prd-sim",{}]']}))
        if websocket.query_params.get("v", "9") not in _API_VERSIONS:
            connection.close(4012, "Invalid API version")
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._write, connection, group.cancel_scope)
                group.start_soon(self._watch_heartbeats, connection)
                await self._read(connection)
                group.cancel_scope.cancel()
        finally:
            self.connections.discard(connection)
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
                session.disconnected_at = time.monotonic()

    async def _write(self, connection: Connection, scope: anyio.CancelScope) -> None:
        websocket = connection.websocket
        faults = self.world.faults
        held: JSON | None = None  # a dispatch held back behind the next frame (the reorder fault)
        try:
            while True:
                frame: _Frame | None = None
                if held is None:
                    try:
                        frame = await connection.inbox.receive()
                    except anyio.EndOfStream:
                        break
                else:
                    with anyio.move_on_after(0.2):
                        frame = await connection.inbox.receive()
                if frame is None:  # nothing came to overtake it: the held dispatch goes now
                    frame, held = held, None
                    assert frame is not None
                    await self._send(connection, frame)
                    continue
                if isinstance(frame, _Close):
                    await websocket.close(frame.code, frame.reason)
                    break
                if isinstance(frame, _Abort):
                    if connection.transport is not None:
                        connection.transport.abort()
                    else:  # not under uvicorn: the closest we can do is a resumable close
                        await websocket.close(4000, "Unknown error.")
                    break
                if connection.frozen:
                    continue
                if held is None and _is_event(frame) and faults.chance(faults.reorder):
                    held = frame
                    faults.note("reorder", str(frame.get("t")))
                    continue
                await self._send(connection, frame)
                if held is not None:
                    await self._send(connection, held)
                    held = None
        except Exception as error:  # the peer vanished mid-send: nothing left to write to
            logger.debug("gateway writer stopped: %r", error)
        scope.cancel()

    async def _send(self, connection: Connection, frame: JSON) -> None:
        """Write one frame, with whatever garbage or duplicate the armed faults add."""
        faults = self.world.faults
        event = _is_event(frame)
        if event and faults.chance(faults.garbage):
            junk = GARBAGE_FRAMES[faults.pick(len(GARBAGE_FRAMES))]
            faults.note("garbage", junk[:40])
            await self._write_encoded(connection, connection.encode_text(junk))
        encoded = connection.encode(frame)
        if event and frame.get("t") == "MESSAGE_CREATE" and connection.session is not None:
            data = frame.get("d")
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                self.world.stamp_result(data["id"], connection.session.account.user_id)
        await self._write_encoded(connection, encoded)
        if event and faults.chance(faults.duplicate):
            faults.note("duplicate", str(frame.get("t")))
            await self._write_encoded(connection, connection.encode(frame))

    @staticmethod
    async def _write_encoded(connection: Connection, encoded: str | bytes) -> None:
        if isinstance(encoded, str):
            await connection.websocket.send_text(encoded)
        else:
            await connection.websocket.send_bytes(encoded)

    async def _watch_heartbeats(self, connection: Connection) -> None:
        # A client that stops heartbeating is gone; Discord closes such a connection.
        limit = self.world.config.heartbeat_interval_ms / 1000 * 1.5 + 1.0
        while not connection.closing:
            await anyio.sleep(min(limit / 4, 5.0))
            if time.monotonic() - connection.last_heartbeat > limit:
                logger.info("gateway: no heartbeat for %.1f s, closing", limit)
                connection.close(4009, "Session timed out.")

    async def _read(self, connection: Connection) -> None:
        websocket = connection.websocket
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") if message.get("text") is not None else message.get("bytes")
            try:
                payload = json.loads(raw or "")
                op = payload["op"]
            except (ValueError, TypeError, KeyError):
                connection.close(4002, "Error while decoding payload.")
                continue
            if not isinstance(op, int) or isinstance(op, bool):
                connection.close(4001, "Unknown opcode.")
            elif not connection.closing:
                try:
                    self._handle(connection, op, payload.get("d"))
                except Exception:  # a simulator bug: say so in the log, answer as Discord does a payload it rejects
                    logger.exception("gateway: failed on op %s", op)
                    connection.close(4002, "Error while decoding payload.")

    def _handle(self, connection: Connection, op: int, data: Any) -> None:
        counts = self.world.gateway_counts
        if op == 1:
            counts["HEARTBEAT"] += 1
            connection.last_heartbeat = time.monotonic()
            if self.ack_heartbeats and not connection.frozen:
                connection.send(_op(11))
        elif op == 2:
            counts["IDENTIFY"] += 1
            self._identify(connection, data if isinstance(data, dict) else {})
        elif op == 6:
            counts["RESUME"] += 1
            self._resume(connection, data if isinstance(data, dict) else {})
        elif connection.session is None:
            connection.close(4003, "Not authenticated.")
        elif op == _REQUEST_GUILD_MEMBERS:
            counts["REQUEST_GUILD_MEMBERS"] += 1
            for chunk in self.members.chunks(data, self._online_ids()):
                connection.session.emit("GUILD_MEMBERS_CHUNK", chunk)
        elif op in (_GUILD_SUBSCRIBE, _BULK_GUILD_SUBSCRIBE):
            counts["GUILD_SUBSCRIPTIONS"] += 1
            data = data if isinstance(data, dict) else {}
            # op 37 carries {"subscriptions": {guild_id: {...}}}; the older op 14 one guild's {...} itself.
            wanted = data.get("subscriptions") if op == _BULK_GUILD_SUBSCRIBE else {str(data.get("guild_id")): data}
            for update in self.members.list_updates(wanted, self._online_ids()):
                connection.session.emit("GUILD_MEMBER_LIST_UPDATE", update)
        elif op not in _ACCEPTED_OPS:
            connection.close(4001, "Unknown opcode.")

    def _online_ids(self) -> set[str]:
        """User ids of the accounts with a connected session."""
        return {s.account.user_id for s in self.sessions.values() if s.connection is not None}

    def _account(self, token: Any) -> Account | None:
        return self.world.accounts.get(token) if isinstance(token, str) else None

    def _identify(self, connection: Connection, data: JSON) -> None:
        if connection.session is not None:
            connection.close(4005, "Already authenticated.")
            return
        account = self._account(data.get("token"))
        if account is None:
            connection.close(4004, "Authentication failed.")
            return
        session = Session(new_session_id(), account)
        self.sessions[session.id] = session
        session.connection = connection
        connection.session = session
        resume_url = self.world.base_url.replace("http://", "ws://", 1)
        capabilities = data.get("capabilities")
        if not isinstance(capabilities, int) or isinstance(capabilities, bool):
            capabilities = 0  # no capabilities: the oldest READY, legacy settings included
        ready = ready_payload(self.world, account, session.id, resume_url, capabilities)
        session.emit("READY", ready)
        session.emit("READY_SUPPLEMENTAL", ready_supplemental([str(g["id"]) for g in ready["guilds"]]))
        logger.info("gateway: %s identified, session %s", account.username, session.id)

    def _resume(self, connection: Connection, data: JSON) -> None:
        account = self._account(data.get("token"))
        if account is None:
            connection.close(4004, "Authentication failed.")
            return
        self._expire()
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        oldest = session.sent[0]["s"] if session is not None and session.sent else 1
        if (
            session is None
            or session.account is not account
            or not isinstance(seq, int)
            or seq > session.seq
            or seq < oldest - 1
        ):
            connection.send(_op(9, False))
            return
        previous = session.connection
        if previous is not None and previous is not connection:
            previous.session = None
            previous.abort()  # Discord keeps one connection per session: the new one wins
        session.connection = connection
        session.disconnected_at = None
        connection.session = session
        # Replay and RESUMED are queued in one synchronous step: no live dispatch can slip in between.
        for frame in session.sent:
            if frame["s"] > seq:
                connection.send(frame)
        session.emit("RESUMED", {"_trace": ['["gateway-prd-sim",{}]']})
        logger.info("gateway: session %s resumed from seq %s", session.id, seq)
