"""What lives as long as the server: the settings, the budget, the shared HTTP client, the engine, the renderer.

`lifespan` reads the configuration and starts the Discord side in the background, so the client's `initialize`
is answered at once; a tool waits for it with `ready_state`, which turns a failed start into the `ToolError`
that says what to fix.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from ..config import ConfigError, Settings, load_settings
from ..discord.rest import tls_context
from ..engine.budget import Budget
from ..engine.engine import Engine
from ..engine.state import StateBackend, StateError, open_backend
from .calls import Calls
from .render import Renderer

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What lives as long as the server: the engine, the budget, or why there is none."""

    engine: Engine | None = None
    settings: Settings | None = None
    config_error: str | None = None
    budget: Budget | None = None
    backend: StateBackend | None = None  # the state shared with every server of the accounts (MJ_STATE_URL)
    http: httpx2.AsyncClient | None = None
    renderer: Renderer | None = None
    calls: Calls = field(default_factory=Calls)  # recent tool calls: a retry takes its abandoned call's job
    started: anyio.Event = field(default_factory=anyio.Event)  # the HTTP client and the engine are up (or failed)


@asynccontextmanager
async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
    """Read the configuration, then start the Discord side in the background: the client's `initialize` is answered
    at once, and a bad configuration is reported at the first tool call."""
    state = AppState()
    try:
        state.settings = load_settings()
    except ConfigError as exc:
        # Nothing runs on a configuration half read: a malformed budget must not mean no budget.
        state.settings, state.config_error = None, str(exc)
        log.error("%s The server keeps running; tools will report this.", exc)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_run_backend, state)
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()


def _http_client() -> httpx2.AsyncClient:
    """The shared HTTP client, built in a worker thread: its transport imports and the CA bundle (~0.2 s of CPU)
    stay off the event loop, which answers the client meanwhile. The gateway's websocket module loads here too."""
    import httpx2.websockets  # loaded for the gateway, off the event loop

    return httpx2.AsyncClient(timeout=15.0, follow_redirects=False, verify=tls_context())


async def _budget_store(backend: StateBackend) -> Any:
    """The backend's budget store, opened in a worker thread (it reads the record, and carries an old file over)."""
    return await anyio.to_thread.run_sync(backend.budget_store)


async def _run_backend(state: AppState) -> None:
    """The shared HTTP client and the engine (every account's gateway session), until the server stops."""
    if state.settings is not None:
        # The shared state opens here, after `initialize` was answered (its SQLite file, the budget's record).
        try:
            state.backend = open_backend(state.settings.state_url, state.settings.state_dir)
            state.budget = Budget.from_settings(state.settings, await _budget_store(state.backend))
        except StateError as exc:
            state.settings, state.config_error = None, str(exc)
            log.error("%s The server keeps running; tools will report this.", exc)
    try:
        client = await anyio.to_thread.run_sync(_http_client)
        async with client as http, anyio.create_task_group() as tg:
            state.http = http
            if state.settings is not None:
                engine = Engine(state.settings, budget=state.budget, shared=state.backend)
                await tg.start(engine.run)
                state.engine = engine
                state.renderer = Renderer(state.settings, http)
            # The ~90,000 objects of start-up (the SDK's models, the HTTP stack) live as long as the process: a
            # full collection that walks them all takes ~50 ms and lands on some unlucky tool call. Freeze them.
            gc.freeze()
            state.started.set()
            await anyio.sleep_forever()
    except Exception as exc:  # never kill the server: every tool call says what went wrong
        log.exception("the Discord side stopped")
        state.engine = state.renderer = state.http = None
        state.config_error = state.config_error or (
            f"The server's Discord side stopped ({type(exc).__name__}: {exc}); restart the server. The log (stderr) "
            "has the details."
        )
    finally:
        state.started.set()


async def ready_state(ctx: Context[AppState]) -> AppState:
    """The server's state once the Discord side is up; a `ToolError` saying why when it is not."""
    state: AppState = ctx.request_context.lifespan_context
    with anyio.move_on_after(30):
        await state.started.wait()
    if state.engine is None:
        raise ToolError(state.config_error or "The server is still starting: try again in a few seconds.")
    return state
