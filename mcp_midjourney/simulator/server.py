"""Serving the simulator with uvicorn: in a background thread for tests, or as a task for the CLI."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import anyio
import uvicorn
from anyio.abc import TaskStatus
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .app import Simulator
from .state import DEFAULT_TOKEN, SimulatorConfig

logger = logging.getLogger("mcp_midjourney.simulator")

T = TypeVar("T")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _public_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


async def run(
    simulator: Simulator,
    sock: socket.socket,
    *,
    stop: anyio.Event | None = None,
    task_status: TaskStatus[uvicorn.Server] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `simulator` on an already bound socket until cancelled (or until `stop` is set)."""
    host, port = sock.getsockname()[:2]
    simulator.bind(f"http://{_public_host(host)}:{port}")
    # log_config=None: uvicorn must not reconfigure logging (its access log writes to stdout).
    config = uvicorn.Config(
        simulator.app,
        lifespan="off",
        ws="wsproto",
        # Discord's gateway offers no permessage-deflate (it compresses with ?compress=zlib-stream): clients that
        # offer it must see it declined, or those that cannot inflate it (curl_cffi) fail the handshake.
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    async with simulator.running(), anyio.create_task_group() as group:
        await server.startup(sockets=[sock])
        if stop is not None:
            group.start_soon(_stop_when, stop, server)
        task_status.started(server)
        try:
            await server.main_loop()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await server.shutdown(sockets=[sock])
            group.cancel_scope.cancel()


async def _stop_when(stop: anyio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True


async def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    job_seconds: float = 45.0,
    token: str = DEFAULT_TOKEN,
    config: SimulatorConfig | None = None,
    task_status: TaskStatus[Simulator] = anyio.TASK_STATUS_IGNORED,
    **overrides: Any,
) -> None:
    """Run the simulator until cancelled (`mcp-midjourney simulate`); logs where it is to stderr.

    With `await task_group.start(serve, ...)` the caller gets the `Simulator` once it accepts connections.
    """
    simulator = Simulator(config, job_seconds=job_seconds, token=token, **overrides)
    sock = _listen(host, port)
    async with anyio.create_task_group() as group:
        await group.start(partial(run, simulator, sock))
        logger.info(
            "Midjourney simulator on %s: REST %s, gateway %s, Midjourney CDN %s",
            simulator.base_url,
            simulator.api_base,
            simulator.gateway_url,
            simulator.mj_cdn_base,
        )
        # The default token is made up and meant to be copied into a client's settings; a chosen one is not shown.
        shown = simulator.token if simulator.token == DEFAULT_TOKEN else "<as given>"
        logger.info(
            "token=%s guild=%s channel=%s user=%s job_seconds=%s",
            shown,
            simulator.guild_id,
            simulator.channel_id,
            simulator.user_id,
            simulator.config.job_seconds,
        )
        task_status.started(simulator)


class SimulatorServer:
    """The simulator on 127.0.0.1 and a free port, in a background thread with its own event loop.

    ```
    with SimulatorServer(job_seconds=0.3) as sim:
        client = MyClient(api_base=sim.api_base, token=sim.token)
        sim.inject_job("a cat")            # control methods are thread-safe
    ```
    """

    def __init__(self, config: SimulatorConfig | None = None, **overrides: Any) -> None:
        self.simulator = Simulator(config, **overrides)
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._stop: anyio.Event | None = None
        self._future: Future[None] | None = None

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving; returns once the server accepts connections."""
        portal = self._stack.enter_context(start_blocking_portal("asyncio"))
        self._portal = portal
        self._stop = portal.call(anyio.Event)
        sock = _listen("127.0.0.1", 0)
        future, _ = portal.start_task(partial(run, self.simulator, sock, stop=self._stop))
        self._future = future
        logger.info("simulator serving at %s", self.simulator.base_url)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._portal is not None and self._stop is not None and self._future is not None:
            self._portal.call(self._stop.set)
            self._future.result(timeout=15)
        self._portal = None
        self._stack.close()

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a function of the simulator on its event loop, from any thread, and return its result."""
        if self._portal is None:
            raise RuntimeError("the simulator server is not running")
        return self._portal.call(partial(function, *args, **kwargs))

    # -- where things are --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return self.simulator.base_url

    @property
    def api_base(self) -> str:
        """`…/api/v9`."""
        return self.simulator.api_base

    @property
    def gateway_url(self) -> str:
        """`ws://127.0.0.1:<port>`."""
        return self.simulator.gateway_url

    @property
    def mj_cdn_base(self) -> str:
        """`…/mjcdn`."""
        return self.simulator.mj_cdn_base

    @property
    def token(self) -> str:
        """The main account's token."""
        return self.simulator.token

    @property
    def guild_id(self) -> str:
        """The guild id."""
        return self.simulator.guild_id

    @property
    def channel_id(self) -> str:
        """The main channel id."""
        return self.simulator.channel_id

    @property
    def user_id(self) -> str:
        """The main account's user id."""
        return self.simulator.user_id

    # -- thread-safe controls ----------------------------------------------------------------------

    def set_job_duration(self, seconds: float) -> None:
        """See `Simulator.set_job_duration`."""
        self.call(self.simulator.set_job_duration, seconds)

    def configure(self, **changes: Any) -> None:
        """See `Simulator.configure`."""
        self.call(self.simulator.configure, **changes)

    def set_rate_limit(self, requests: int | None, per_seconds: float = 1.0) -> None:
        """See `Simulator.set_rate_limit`."""
        self.call(self.simulator.set_rate_limit, requests, per_seconds)

    def set_remix(self, enabled: bool) -> None:
        """See `Simulator.set_remix`."""
        self.call(self.simulator.set_remix, enabled)

    def set_mode(self, mode: str) -> None:
        """See `Simulator.set_mode`."""
        self.call(self.simulator.set_mode, mode)

    def bump_command_versions(self, names: list[str] | None = None, *, new_ids: bool = False) -> dict[str, Any]:
        """See `Simulator.bump_command_versions`."""
        return self.call(self.simulator.bump_command_versions, names, new_ids=new_ids)

    def add_account(self, token: str, username: str) -> str:
        """See `Simulator.add_account`."""
        return self.call(self.simulator.add_account, token, username)

    def inject_job(self, prompt: str, *, username: str = "other_user", user_id: str | None = None) -> str:
        """See `Simulator.inject_job`."""
        return self.call(self.simulator.inject_job, prompt, username=username, user_id=user_id)

    def inject_message(self, content: str, *, username: str = "other_user") -> str:
        """See `Simulator.inject_message`."""
        return self.call(self.simulator.inject_message, content, username=username)

    def drop_connections(self, *, abrupt: bool = True, code: int = 4000) -> int:
        """See `Simulator.drop_connections`."""
        return self.call(self.simulator.drop_connections, abrupt=abrupt, code=code)

    def revoke_account(self, token: str) -> int:
        """See `Simulator.revoke_account`."""
        return self.call(self.simulator.revoke_account, token)

    def account_channel(self, token: str) -> str:
        """See `Simulator.account_channel`."""
        return self.call(self.simulator.account_channel, token)

    def set_heartbeat_acks(self, enabled: bool) -> None:
        """See `Simulator.set_heartbeat_acks`."""
        self.call(self.simulator.set_heartbeat_acks, enabled)

    def request_heartbeat(self) -> int:
        """See `Simulator.request_heartbeat`."""
        return self.call(self.simulator.request_heartbeat)

    def send_reconnect(self) -> int:
        """See `Simulator.send_reconnect`."""
        return self.call(self.simulator.send_reconnect)

    def invalidate_sessions(self) -> int:
        """See `Simulator.invalidate_sessions`."""
        return self.call(self.simulator.invalidate_sessions)

    def stats(self) -> dict[str, int]:
        """See `Simulator.stats`."""
        return self.call(self.simulator.stats)

    def gateway_stats(self) -> dict[str, int]:
        """See `Simulator.gateway_stats`."""
        return self.call(self.simulator.gateway_stats)

    def channel_messages(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        """See `Simulator.channel_messages`."""
        return self.call(self.simulator.channel_messages, channel_id)

    def job_states(self) -> dict[str, str]:
        """See `Simulator.job_states`."""
        return self.call(self.simulator.job_states)

    def load_stats(self, user_id: str | None = None) -> dict[str, int]:
        """See `Simulator.load_stats`."""
        return self.call(self.simulator.load_stats, user_id)

    def results_sent(self) -> list[tuple[str, float]]:
        """See `Simulator.results_sent` (monotonic times compare with this process's `time.monotonic()`)."""
        return self.call(self.simulator.results_sent)

    # -- faults (see faults.py and the `Simulator` methods of the same names) ----------------------

    def fail_requests(
        self,
        status: int,
        count: int = 1,
        *,
        route: str | None = None,
        retry_after: float = 0.2,
        scope: str = "user",
        handled: bool = False,
    ) -> None:
        """See `Simulator.fail_requests`."""
        self.call(
            self.simulator.fail_requests,
            status,
            count,
            route=route,
            retry_after=retry_after,
            scope=scope,
            handled=handled,
        )

    def answer_with_embed(
        self,
        title: str,
        description: str,
        color: int = 16711680,
        *,
        prompt: str | None = None,
        after_start: bool = False,
        count: int = 1,
    ) -> None:
        """See `Simulator.answer_with_embed`."""
        self.call(
            self.simulator.answer_with_embed,
            title,
            description,
            color,
            prompt=prompt,
            after_start=after_start,
            count=count,
        )

    def answer_next_with_embed(self, title: str, description: str, color: int = 16711680) -> None:
        """See `Simulator.answer_next_with_embed`."""
        self.call(self.simulator.answer_next_with_embed, title, description, color)

    def set_event_faults(self, *, duplicate: float = 0.0, reorder: float = 0.0, garbage: float = 0.0) -> None:
        """See `Simulator.set_event_faults`."""
        self.call(self.simulator.set_event_faults, duplicate=duplicate, reorder=reorder, garbage=garbage)

    def stall_next_jobs(self, count: int = 1, *, after: int = 1) -> None:
        """See `Simulator.stall_next_jobs`."""
        self.call(self.simulator.stall_next_jobs, count, after=after)

    def shadow_prompts(self, enabled: bool = True) -> None:
        """See `Simulator.shadow_prompts`."""
        self.call(self.simulator.shadow_prompts, enabled)

    def freeze_connections(self) -> int:
        """See `Simulator.freeze_connections`."""
        return self.call(self.simulator.freeze_connections)

    def forget_sessions(self) -> int:
        """See `Simulator.forget_sessions`."""
        return self.call(self.simulator.forget_sessions)

    def clear_faults(self) -> None:
        """See `Simulator.clear_faults`."""
        self.call(self.simulator.clear_faults)

    def fault_log(self) -> list[tuple[float, str, str]]:
        """See `Simulator.fault_log` (monotonic times compare with this process's `time.monotonic()`)."""
        return self.call(self.simulator.fault_log)

    def job_of(self, any_id: str) -> str | None:
        """See `Simulator.job_of`."""
        return self.call(self.simulator.job_of, any_id)

    def job_info(self, uuid: str) -> dict[str, Any] | None:
        """See `Simulator.job_info`."""
        return self.call(self.simulator.job_info, uuid)
