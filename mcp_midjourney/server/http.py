"""The MCP server over streamable HTTP (``mcp-midjourney serve --transport http``), for agents that connect by URL.

Safe by default: bound to 127.0.0.1 it may run without a token; bound to any other address it refuses to
start unless ``MJ_HTTP_TOKEN`` is set, and then every request must carry ``Authorization: Bearer <token>``
(compared in constant time). DNS-rebinding protection (the SDK's Host/Origin checks) is always on, so a web
page cannot reach a loopback server through a hostname it controls. Logs go to stderr; stdout stays unused.

Bounded against a client that holds on: a connection must send each request's headers within
``MJ_HTTP_HEADER_TIMEOUT``, at most ``MJ_HTTP_MAX_CONNECTIONS`` are open at once, at most ``MJ_HTTP_MAX_SESSIONS``
MCP sessions, each closed after ``MJ_HTTP_SESSION_IDLE`` seconds without a request; refusals are logged at
most once a minute (with how many there were).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MIN_TOKEN_LENGTH = 16
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class Throttled:
    """A warning logged at most once per `period` seconds, saying how many times it happened meanwhile."""

    def __init__(self, message: str, period: float = 60.0) -> None:
        self.message, self.period = message, period
        self._count, self._logged_at = 0, -period

    def __call__(self, detail: str) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._logged_at >= self.period:
            log.warning("%s (%d since the last such warning; latest: %s)", self.message, self._count, detail)
            self._count, self._logged_at = 0, now


class RefusedToStart(Exception):
    """The HTTP server must not start as configured; the message says why and what to set."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Raise `RefusedToStart` when binding `host` with `token` would expose the server unsafely."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise RefusedToStart(
            f"MJ_HTTP_TOKEN is too short ({len(token)} characters; at least {MIN_TOKEN_LENGTH}). Make one with: "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    if token is None and not is_loopback(host):
        raise RefusedToStart(
            f"refusing to serve MCP over HTTP on {host} without a token: anyone who can reach that address could "
            "use your Midjourney account. Set MJ_HTTP_TOKEN to a long random secret (clients then send "
            "'Authorization: Bearer <token>'), or bind to 127.0.0.1."
        )


class BearerAuth:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>``, or gets a JSON 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        # Compare digests: equal length, so the comparison time says nothing about the token's length either.
        self._digest = hashlib.sha256(token.encode()).digest()
        self._refused = Throttled("refused HTTP requests without a valid bearer token")

    def authorized(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        offered = hashlib.sha256(value.strip().encode()).digest()
        return hmac.compare_digest(offered, self._digest) and scheme.lower() == "bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan events carry no request
            await self.app(scope, receive, send)
            return
        if not self.authorized(Headers(scope=scope).get("authorization")):
            client = scope.get("client")
            self._refused(f"from {client[0] if client else '?'}")
            response = JSONResponse(
                {
                    "error": "unauthorized",
                    "error_description": "Send 'Authorization: Bearer <MJ_HTTP_TOKEN>' with every request.",
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="mcp-midjourney"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> list[str]:
    """Host header values to accept (DNS-rebinding protection): the bound name, loopback names, and `extra`.

    Bound to all interfaces (``0.0.0.0``/``::``), the machine's own name and addresses are added; any other
    name clients use goes in ``MJ_HTTP_ALLOWED_HOSTS``.
    """
    names: list[str] = list(_LOOPBACK_NAMES)
    bare = host.strip().strip("[]")
    if bare in ("0.0.0.0", "::", ""):
        machine = socket.gethostname()
        names += [machine, socket.getfqdn()]
        with contextlib.suppress(OSError):
            names += [str(info[4][0]) for info in socket.getaddrinfo(machine, None)]
    elif bare not in names:
        names.append(bare)  # 127.0.0.2 is loopback too, and clients of a server bound there send it as Host
    names += [name.strip() for name in extra if name.strip()]
    hosts: list[str] = []
    for name in names:
        shown = f"[{name}]" if ":" in name and not name.startswith("[") else name
        for value in (shown, f"{shown}:{port}"):
            if value not in hosts:
                hosts.append(value)
    return hosts


def build_app(
    host: str, port: int, token: str | None, extra_hosts: Iterable[str] = (), settings: Settings | None = None
) -> ASGIApp:
    """The ASGI app: the MCP server's streamable HTTP endpoint at ``/mcp``, behind the bearer check if any."""
    check_binding(host, token)  # before the heavy imports: a refusal should be instant

    from mcp.server.transport_security import TransportSecuritySettings

    from ..config import Settings
    from .app import build_server

    limits = settings or Settings.model_construct()  # a broken configuration still gets the default caps
    hosts = allowed_hosts(host, port, extra_hosts)
    origins = [f"{scheme}://{name}" for name in hosts for scheme in ("http", "https")]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    log.info("accepted Host headers: %s", ", ".join(hosts))
    if limits.http_stateless:
        # No session lives in this process, so any replica behind a load balancer serves any request (the jobs,
        # slots and budget they share live in the shared state, MJ_STATE_URL). Sessions to cap: none.
        sessions: dict[str, Any] = {"stateless_http": True}
    else:
        sessions = {"session_idle_timeout": limits.http_session_idle, "max_sessions": limits.http_max_sessions}
    app: ASGIApp = build_server().streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=security, host=host, **sessions
    )
    return BearerAuth(app, token) if token else app


def guarded_protocol(header_timeout: float, max_connections: int) -> type[Any]:
    """uvicorn's h11 protocol with a deadline for each request's headers and a cap on open connections.

    uvicorn has neither: a client that opens connections and never finishes a request holds them forever.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    too_many = Throttled(f"closed HTTP connections beyond MJ_HTTP_MAX_CONNECTIONS ({max_connections})")
    too_slow = Throttled(f"closed HTTP connections that sent no complete request in {header_timeout:g} s")

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                too_many(f"from {self.client[0] if self.client else '?'}")
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                too_slow(f"from {self.client[0] if self.client else '?'}")
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a request's headers are complete: it is the app's to answer now
                self._disarm()

        def on_response_complete(self) -> None:
            cycle = self.cycle
            super().on_response_complete()
            if self.cycle is cycle and not self.transport.is_closing():
                self._arm()  # kept alive: the next request's headers get the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def run_http(
    host: str, port: int, token: str | None, extra_hosts: Iterable[str] = (), settings: Settings | None = None
) -> None:
    """Serve MCP over streamable HTTP on `host`:`port` until interrupted; raise `RefusedToStart` if unsafe."""
    import uvicorn

    from ..config import Settings

    limits = settings or Settings.model_construct()
    app = build_app(host, port, token, extra_hosts, limits)
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "MCP over streamable HTTP at http://%s:%d%s (%s)",
        shown,
        port,
        MCP_PATH,
        "bearer token required" if token else "no token: loopback only",
    )
    # log_config=None keeps uvicorn from installing its own handlers (its access log writes to stdout).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws="none",
        http=guarded_protocol(limits.http_header_timeout, limits.http_max_connections),
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
