"""`Simulator`: the fake Discord + Midjourney bot as one ASGI app, with the controls tests use.

Its state lives on one event loop; the control methods here must be called on that loop (from a
request, a task, or through `SimulatorServer`, which forwards them from any thread).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .bot import MidjourneyBot
from .chat import INTERACTION_COMMAND, Chat, Interaction
from .faults import EmbedAnswer, RestFault
from .gateway import TRANSPORT_SCOPE_KEY, Gateway
from .ids import job_uuid
from .jobs import ERROR_COLOUR, Job, Jobs
from .messages import user_object
from .prompts import echo, model_family
from .rest import RestApi
from .state import SimulatorConfig, World

JSON = dict[str, Any]

logger = logging.getLogger("mcp_midjourney.simulator")


def _expose_transport(app: ASGIApp) -> ASGIApp:
    """Let the gateway (and REST faults) reach a connection's TCP transport, to drop it without a word."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("websocket", "http"):
            # Under uvicorn, `send` is a bound method of the connection's protocol, which owns the transport.
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope = {**scope, TRANSPORT_SCOPE_KEY: transport}
        await app(scope, receive, send)

    return wrapped


async def _guarded(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run one job or delayed answer; a bug in it is logged, never allowed to end the whole simulator."""
    try:
        await work()
    except Exception:
        logger.exception("simulator task failed (the simulator goes on)")


async def _http_error(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    phrase = {404: "Not Found", 405: "Method Not Allowed"}.get(status, "Internal Server Error")
    return JSONResponse({"message": f"{status}: {phrase}", "code": 0}, status_code=status)


class Simulator:
    """A fake Discord (REST, gateway, CDN) with a fake Midjourney bot, as an ASGI app.

    `Simulator(job_seconds=0.3)` takes any `SimulatorConfig` field as a keyword. Serve `.app` while
    `async with simulator.running():` is open (it owns the jobs' task group), after `bind(base_url)`.
    """

    def __init__(self, config: SimulatorConfig | None = None, **overrides: Any) -> None:
        self.config = dataclasses.replace(config or SimulatorConfig(), **overrides)
        self.world = World(self.config)
        self.gateway = Gateway(self.world)
        self.chat = Chat(self.world, self.gateway)
        self.jobs = Jobs(self.world, self.chat, self._spawn)
        self.bot = MidjourneyBot(self.world, self.chat, self.jobs, self._spawn)
        self.rest = RestApi(self.world, self.gateway, self.chat, self.bot)
        self._group: TaskGroup | None = None
        api = self.rest.api_routes()
        root: list[Route | Mount | WebSocketRoute] = [
            Mount("/api/v9", routes=api),
            Mount("/api/v10", routes=api),
            *self.rest.cdn_routes(),
            WebSocketRoute("/", self.gateway.endpoint),
            WebSocketRoute("/gateway", self.gateway.endpoint),
            Route("/", self._index),
        ]
        starlette = Starlette(routes=root, exception_handlers={HTTPException: _http_error, Exception: _http_error})
        self.app: ASGIApp = _expose_transport(starlette)

    # -- running -----------------------------------------------------------------------------------

    def bind(self, base_url: str) -> None:
        """Tell the simulator the URL it is reachable at (it writes it into payloads)."""
        self.world.base_url = base_url.rstrip("/")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Simulator]:
        """Own the task group that jobs and delayed answers run in."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield self
            finally:
                self._group = None
                group.cancel_scope.cancel()

    def _spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._group is None:
            raise RuntimeError("the simulator is not running: use `async with simulator.running()`")
        self._group.start_soon(_guarded, work)

    async def _index(self, request: Request) -> Response:
        return JSONResponse({"simulator": "mcp-midjourney", "api": self.api_base, "gateway": self.gateway_url})

    # -- where things are --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return self.world.base_url

    @property
    def api_base(self) -> str:
        """The REST base, `…/api/v9`."""
        return f"{self.base_url}/api/v9"

    @property
    def gateway_url(self) -> str:
        """The websocket URL `GET /gateway` answers."""
        return self.base_url.replace("http://", "ws://", 1)

    @property
    def mj_cdn_base(self) -> str:
        """Stand-in for `https://cdn.midjourney.com`: `…/mjcdn/<uuid>/0_<i>.png`."""
        return f"{self.base_url}/mjcdn"

    @property
    def token(self) -> str:
        """The main account's user token."""
        return self.config.token

    @property
    def guild_id(self) -> str:
        """The guild of the main channel."""
        return self.config.guild_id

    @property
    def channel_id(self) -> str:
        """The channel where the bot is used."""
        return self.config.channel_id

    @property
    def user_id(self) -> str:
        """The main account's user id."""
        return self.world.main_account.user_id

    # -- controls (call on the simulator's loop) ---------------------------------------------------

    def set_job_duration(self, seconds: float) -> None:
        """Length of a fast job from start to result (relax takes twice, turbo half as long)."""
        self.config.job_seconds = seconds

    def configure(self, **changes: Any) -> None:
        """Change any `SimulatorConfig` field at run time (e.g. `max_running_jobs=1`)."""
        for name, value in changes.items():
            if not hasattr(self.config, name):
                raise AttributeError(f"SimulatorConfig has no field {name!r}")
            setattr(self.config, name, value)

    def set_rate_limit(self, requests: int | None, per_seconds: float = 1.0) -> None:
        """Limit interactions per account (429 beyond); None removes the limit."""
        self.config.interaction_rate_limit = None if requests is None else (requests, per_seconds)
        self.world.interaction_times.clear()

    def set_remix(self, enabled: bool, user_id: str | None = None) -> None:
        """Turn Remix mode on or off (V, 🔄 and pans then open a modal first)."""
        account = self.world.account_by_id(user_id or self.user_id)
        if account is not None:
            account.remix = enabled

    def set_mode(self, mode: str, user_id: str | None = None) -> None:
        """fast | relax | turbo, as /fast, /relax and /turbo would set it."""
        account = self.world.account_by_id(user_id or self.user_id)
        if account is not None:
            account.mode = mode

    def bump_command_versions(self, names: list[str] | None = None, *, new_ids: bool = False) -> dict[str, Any]:
        """Re-register commands with new versions (and ids): requests with the old ones get 400 50035."""
        return dict(self.world.commands.bump(names, new_ids=new_ids))

    def add_account(self, token: str, username: str) -> str:
        """Another user account on the same guild; returns its user id."""
        return self.world.add_account(token, username).user_id

    def inject_job(self, prompt: str, *, username: str = "other_user", user_id: str | None = None) -> str:
        """Run a job for another user in the main channel (same messages, their nonce); returns its uuid."""
        channel = self.world.channels[self.channel_id]
        user = user_object(user_id or "1012983546824114217", username)
        it = Interaction(
            self.world.snowflakes.next(),
            self.world.snowflakes.next(),
            INTERACTION_COMMAND,
            user,
            channel,
            name="imagine",
        )
        job = Job(job_uuid(), "imagine", echo(prompt), user, channel, it, family=model_family(prompt))
        self.jobs.submit(job)
        return job.uuid

    def inject_message(self, content: str, *, username: str = "other_user", user_id: str | None = None) -> str:
        """A plain message from a human in the main channel (noise a client must ignore); its id."""
        channel = self.world.channels[self.channel_id]
        author = user_object(user_id or "1012983546824114217", username)
        return self.chat.post(self.chat.compose(channel, content, author=author)).id

    def revoke_account(self, token: str) -> int:
        """Revoke an account's token: REST answers 401 and its gateway connections close with 4004."""
        return self.gateway.revoke(token)

    def account_channel(self, token: str) -> str:
        """The DM channel (with the bot) of an account, where it can run jobs of its own."""
        return self.world.accounts[token].dm_channel_id

    def drop_connections(self, *, abrupt: bool = True, code: int = 4000) -> int:
        """Cut every gateway connection: abruptly (no close frame), or closing it with `code`."""
        return self.gateway.drop_connections(abrupt=abrupt, code=code)

    def set_heartbeat_acks(self, enabled: bool) -> None:
        """Stop (or resume) answering heartbeats: the connection becomes a zombie."""
        self.gateway.ack_heartbeats = enabled

    def request_heartbeat(self) -> int:
        """Send op 1: clients must heartbeat at once."""
        return self.gateway.request_heartbeat()

    def send_reconnect(self) -> int:
        """Send op 7: clients must reconnect and resume."""
        return self.gateway.send_reconnect()

    def invalidate_sessions(self) -> int:
        """Forget every session (op 9, d false): clients must identify anew."""
        return self.gateway.invalidate_sessions()

    def stats(self) -> dict[str, int]:
        """REST requests so far, by `METHOD /route/{template}`."""
        return dict(self.world.rest_counts)

    def gateway_stats(self) -> dict[str, int]:
        """Gateway counters: connections, IDENTIFY, RESUME, HEARTBEAT, dispatches by event."""
        return dict(self.world.gateway_counts)

    def channel_messages(self, channel_id: str | None = None) -> list[JSON]:
        """Every message of a channel not deleted (ephemeral ones included), oldest first, as REST renders them."""
        channel = self.world.channels[channel_id or self.channel_id]
        return [self.world.render(m, gateway=False) for m in channel.messages.values() if not m.deleted]

    def job_states(self) -> dict[str, str]:
        """uuid -> queued | running | done | stopped, for every job the bot knows."""
        return {uuid: job.state for uuid, job in self.jobs.jobs.items()}

    def load_stats(self, user_id: str | None = None) -> dict[str, int]:
        """Of one user (the main account's by default): `peak_in_flight`, the most jobs running or queued at once,
        and `over_commits`, jobs that arrived while max_running_jobs of the user's ran already."""
        user = user_id or self.user_id
        return {"peak_in_flight": self.jobs.peak_in_flight[user], "over_commits": self.jobs.over_commits[user]}

    def results_sent(self) -> list[tuple[str, float]]:
        """(job uuid, `time.monotonic()`) of every final result so far (the last 100,000), oldest first, stamped
        as the result's MESSAGE_CREATE is written to a websocket of the job's user."""
        return list(self.world.results_sent)

    # -- faults (see faults.py) --------------------------------------------------------------------

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
        """The next `count` API requests (matching `route`, e.g. "POST /interactions") fail: 429 (`scope` user,
        shared, global or cloudflare), 5xx, or 0 = the connection drops (after handling the request if `handled`)."""
        self.world.faults.rest.append(RestFault(status, count, route, retry_after, scope, handled))

    def answer_with_embed(
        self,
        title: str,
        description: str,
        color: int = ERROR_COLOUR,
        *,
        prompt: str | None = None,
        after_start: bool = False,
        count: int = 1,
    ) -> None:
        """Answer the next prompt (containing `prompt`, if given) with this embed instead of running it; with
        `after_start`, the job starts and is refused midway. "Job queued" queues the job, which starts later."""
        self.world.faults.answers.append(EmbedAnswer(title, description, color, prompt, after_start, count))

    def answer_next_with_embed(self, title: str, description: str, color: int = ERROR_COLOUR) -> None:
        """`answer_with_embed` for the very next prompt."""
        self.answer_with_embed(title, description, color)

    def set_event_faults(self, *, duplicate: float = 0.0, reorder: float = 0.0, garbage: float = 0.0) -> None:
        """Chances that a gateway dispatch is sent twice, held back behind the next one, or preceded by garbage."""
        faults = self.world.faults
        faults.duplicate, faults.reorder, faults.garbage = duplicate, reorder, garbage

    def stall_next_jobs(self, count: int = 1, *, after: int = 1) -> None:
        """The next `count` jobs of our accounts stop making progress after `after` progress updates."""
        self.world.faults.stall_jobs, self.world.faults.stall_after = count, after

    def shadow_prompts(self, enabled: bool = True) -> None:
        """Another user runs a job with the same prompt, in the same channel, beside each of ours."""
        self.world.faults.mirror_prompts = enabled

    def freeze_connections(self) -> int:
        """Every open gateway connection becomes a zombie (no more frames, no heartbeat ACKs)."""
        return self.gateway.freeze_connections()

    def forget_sessions(self) -> int:
        """Forget every session silently: the next RESUME gets op 9 and the client must identify anew."""
        return self.gateway.forget_sessions()

    def clear_faults(self) -> None:
        """Disarm every fault and answer heartbeats again."""
        self.world.faults.clear()
        self.gateway.ack_heartbeats = True

    def fault_log(self) -> list[tuple[float, str, str]]:
        """(time.monotonic(), kind, detail) of every fault that fired, oldest first."""
        return list(self.world.faults.log)

    def job_of(self, any_id: str) -> str | None:
        """The uuid of the job an id belongs to: its nonce, interaction id, first, queued or result message."""
        for job in self.jobs.jobs.values():
            it = job.interaction
            ids = {job.result_message_id, job.queued_message_id, job.start_message_id}
            if it is not None:
                ids |= {it.nonce, it.id}
            if any_id in ids:
                return job.uuid
        return None

    def job_info(self, uuid: str) -> JSON | None:
        """What the bot knows of a job: prompt (as echoed), state, user id, kind, result message id."""
        job = self.jobs.jobs.get(uuid)
        if job is None:
            return None
        return {
            "uuid": job.uuid,
            "echo": job.echo,
            "state": job.state,
            "user_id": job.user_id,
            "kind": job.kind,
            "result_message_id": job.result_message_id,
            "nonce": job.interaction.nonce if job.interaction else None,
        }
