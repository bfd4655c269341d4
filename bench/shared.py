"""Shared state (issue 17): several servers on the same ten accounts, one account's slots across all of them.

Two runs. Three HTTP server processes share one Redis (`MJ_STATE_URL=redis://…`, each in a state folder of its
own, as on three machines); every job's `imagine` goes to one replica and its `get_message` to the next (round
robin, as a load balancer spreads requests), so every job is followed from a server that did not start it. And
three stdio servers share the default SQLite file of one state folder, each job's two calls on one server (a host
keeps its stdio server), the jobs spread over the three.

Each account runs `concurrency` jobs and queues none (`queue_size=0`), so a job in flight is a job running; the
simulator enforces the same limit and counts, per user, the most jobs in flight at once and the jobs that arrived
when the user already ran its limit (over-commits). Routing is checked against the simulator's record (handle →
nonce → the simulator's job → its uuid and result message, in the sending account's channel), as in the pool
benchmark. The wall time is compared with the ideal schedule: ceil(jobs / (accounts × concurrency)) rounds, each
as long as a slot is taken by one job at the simulator: from the interaction (the bot answers `ACK_SECONDS` later)
to the result (`job_seconds` after that). With no queue at Midjourney the next job of a slot can only be sent once
the last one ended, so the acknowledgement is part of every round (the pool benchmark's queue hides it).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .common import (
    ROOT,
    Figure,
    Section,
    children_cpu_seconds,
    server_env,
    spawn_server,
    structured,
    wait_for_sessions,
)
from .simproc import RemoteSimulator
from .throughput import PROMPTS, _pool

HTTP_TOKEN = "bench-http-token-0123456789abcdef"
JOB_SECONDS = 2.0
ACK_SECONDS = 0.25  # the simulator's delay from an interaction to the bot's first message (its default)
TARGET = 1.15

Call = Callable[[int, str, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]
"""Calls tool `name` with `args` on server number `n`."""


def _load(simulator: Any) -> dict[str, dict[str, int]]:
    """Per user of the simulator: the most jobs in flight at once and the over-commits (on the simulator's loop)."""
    users = {account.user_id for account in simulator.world.accounts.values()}
    return {user: simulator.load_stats(user) for user in users}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:g} s")


@contextmanager
def _redis(workdir: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no redis-server on PATH (Debian: apt-get install redis-server)")
    port = _free_port()
    folder = workdir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", ""]
    with (folder / "redis.log").open("ab") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, process, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _start_http(env: dict[str, str], i: int, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`serve --transport http` on a free port, listening."""
    port = _free_port()
    with (workdir / f"shared-http-{i}.log").open("ab") as log:
        command = [sys.executable, "-m", "mcp_midjourney", "serve", "--transport", "http", "--port", str(port)]
        # Replicas behind a load balancer, taking a thousand calls at once: above the default cap of 64 connections.
        env = env | {"MJ_HTTP_TOKEN": HTTP_TOKEN, "MJ_HTTP_STATELESS": "on", "MJ_HTTP_MAX_CONNECTIONS": "2000"}
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    _wait_port(port, process, f"HTTP server {i}")
    return process, port


@asynccontextmanager
async def _http_servers(envs: list[dict[str, str]], workdir: Path) -> AsyncIterator[Call]:
    """`serve --transport http` once per environment; yields a caller that reaches replica `n`."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    processes: list[subprocess.Popen[bytes]] = []
    async with AsyncExitStack() as stack:
        clients = []
        try:
            for i, env in enumerate(envs):
                process, port = _start_http(env, i, workdir)
                processes.append(process)
                # A thousand calls at once, each held up to a minute: no pool limit, no timeout of our own.
                http = httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {HTTP_TOKEN}"},
                    timeout=httpx2.Timeout(None),
                    limits=httpx2.Limits(max_connections=None, max_keepalive_connections=None),
                )
                await stack.enter_async_context(http)
                url = f"http://127.0.0.1:{port}/mcp"
                clients.append(await stack.enter_async_context(Client(streamable_http_client(url, http_client=http))))

            async def call(n: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
                return structured(await clients[n % len(clients)].call_tool(name, args))

            yield call
        finally:
            await stack.aclose()
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


@asynccontextmanager
async def _stdio_servers(envs: list[dict[str, str]], workdir: Path) -> AsyncIterator[Call]:
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(spawn_server(env, workdir / f"shared-stdio-{i}.log"))
            for i, env in enumerate(envs)
        ]

        async def call(n: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
            return structured(await clients[n % len(clients)].call_tool(name, args))

        yield call


@dataclass
class SharedResult:
    transport: str
    state: str
    servers: int
    accounts: int
    jobs: int
    concurrency: int
    job_seconds: float
    ack_seconds: float
    wall: float
    routed: int
    followed_elsewhere: int
    peak: int
    over_commits: int
    problems: list[str] = field(default_factory=list)
    cpu_seconds: float | None = None  # the servers' CPU while the jobs ran (all of them together)

    @property
    def rounds(self) -> int:
        return math.ceil(self.jobs / (self.accounts * self.concurrency))

    @property
    def ideal(self) -> float:
        return self.rounds * (self.ack_seconds + self.job_seconds)

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal


async def measure(
    *,
    transport: str,
    workdir: Path,
    servers: int = 3,
    accounts: int = 10,
    jobs: int = 1000,
    concurrency: int = 3,
    job_seconds: float = JOB_SECONDS,
) -> SharedResult:
    """Run `jobs` jobs through `servers` servers of one pool; "http" shares a Redis, "stdio" the SQLite file."""
    limits = {"max_running_jobs": concurrency, "max_queued_jobs": 10, "ack_seconds": ACK_SECONDS}
    with RemoteSimulator(job_seconds=job_seconds, **limits) as sim:
        pool = _pool(sim, accounts, concurrency, 0)
        async with AsyncExitStack() as stack:
            base = server_env(sim, MJ_ACCOUNTS=json.dumps(pool), MJ_WAIT_CEILING="55", MJ_INTERACTION_INTERVAL="0.05")
            for variable in ("MJ_DISCORD_TOKEN", "MJ_CHANNEL_ID", "MJ_GUILD_ID"):
                base.pop(variable, None)
            if transport == "http":
                url = stack.enter_context(_redis(workdir))
                envs = [
                    base | {"MJ_STATE_URL": url, "MJ_STATE_DIR": str(workdir / f"state-{i}")} for i in range(servers)
                ]
                state = "one Redis"
                call = await stack.enter_async_context(_http_servers(envs, workdir))
            else:
                envs = [base | {"MJ_STATE_DIR": str(workdir / "state-sqlite")} for _ in range(servers)]
                state = "the default SQLite file"
                call = await stack.enter_async_context(_stdio_servers(envs, workdir))
            await wait_for_sessions(sim, accounts * servers)
            follow_on = 1 if transport == "http" else 0  # the replica that follows job i: the next one over HTTP

            async def one(i: int, prompt: str) -> tuple[str, dict[str, Any]]:
                view = await call(i, "imagine", {"prompt": prompt, "wait_seconds": 0})
                handle = str(view["message_id"])
                for _ in range(6):
                    if view["status"] in ("completed", "failed"):
                        break
                    args = {"message_id": view["message_id"], "wait_seconds": 55}
                    view = await call(i + follow_on, "get_message", args)
                return handle, view

            async with anyio.create_task_group() as group:  # warm-up: every server reads its command indexes
                for i in range(servers * accounts):
                    group.start_soon(one, i, f"warm-up {i}")
            warm = len(sim.run("bench.throughput:_witness")["jobs"])
            handles: list[str] = [""] * jobs
            finals: list[dict[str, Any]] = [{}] * jobs
            done_at = [0.0] * jobs

            async def timed(i: int) -> None:
                handles[i], finals[i] = await one(i, PROMPTS[i % len(PROMPTS)])
                done_at[i] = time.monotonic()

            cpu_before = children_cpu_seconds()
            started = time.monotonic()
            async with anyio.create_task_group() as group:
                for i in range(jobs):
                    group.start_soon(timed, i)
            wall = max(done_at) - started
            cpu_after = children_cpu_seconds()
        witness = sim.run("bench.throughput:_witness")
        load = sim.run("bench.shared:_load")
    problems, routed = _check(handles, finals, witness, pool)
    if len(witness["jobs"]) - warm != jobs:
        problems.append(f"the simulator ran {len(witness['jobs']) - warm} jobs of ours for {jobs} calls")
    return SharedResult(
        transport=transport,
        state=state,
        servers=servers,
        accounts=accounts,
        jobs=jobs,
        concurrency=concurrency,
        job_seconds=job_seconds,
        ack_seconds=ACK_SECONDS,
        wall=wall,
        routed=routed,
        followed_elsewhere=jobs if follow_on else 0,
        peak=max((stats["peak_in_flight"] for stats in load.values()), default=0),
        over_commits=sum(stats["over_commits"] for stats in load.values()),
        problems=problems,
        cpu_seconds=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    )


def _check(
    handles: list[str], finals: list[dict[str, Any]], witness: dict[str, Any], pool: list[dict[str, Any]]
) -> tuple[list[str], int]:
    """Each call's result against the simulator's own record: (problems, jobs routed right)."""
    channel_of_user = {
        user: next(a["channel_id"] for a in pool if a["token"] == token) for user, token in witness["users"].items()
    }
    problems: list[str] = []
    routed = 0
    uuids: set[str] = set()
    for i, (handle, view) in enumerate(zip(handles, finals, strict=True)):
        if view.get("status") != "completed":
            problems.append(f"job {i} ended {view.get('status')}: {view.get('error')}")
            continue
        record = witness["jobs"].get(witness["nonces"].get(handle, handle))
        if record is None:
            problems.append(f"job {i}: the simulator has no job for handle {handle}")
            continue
        if view["job_uuid"] != record["uuid"] or view["message_id"] != record["result"]:
            problems.append(f"job {i}: got {view['job_uuid']} / {view['message_id']}, sent {record['uuid']}")
        elif witness["results"].get(view["message_id"]) != channel_of_user.get(record["user"]):
            problems.append(f"job {i}: result {view['message_id']} not in its account's channel")
        elif view["job_uuid"] in uuids:
            problems.append(f"job {i}: uuid {view['job_uuid']} returned twice")
        else:
            routed += 1
        uuids.add(str(view["job_uuid"]))
    return problems, routed


def figures(result: SharedResult) -> list[Figure]:
    job_time = result.rounds * result.job_seconds
    how = f"{result.servers} {result.transport.upper() if result.transport == 'http' else 'stdio'} servers"
    how += f" on {result.state}"
    return [
        Figure(
            f"Shared state ({how}): wall time / ideal, {result.jobs:,} jobs on {result.accounts} accounts",
            f"{result.ratio:.3f}",
            f"≤ {TARGET:.2f}",
            result.ratio <= TARGET,
            f"wall {result.wall:.2f} s, ideal ceil({result.jobs}/({result.accounts}×{result.concurrency}))"
            f"×({result.ack_seconds:g} + {result.job_seconds:g}) s = {result.ideal:.2f} s (against the job time "
            f"alone, {job_time:.0f} s: {result.wall / job_time:.3f})"
            + (
                f"; the {result.servers} servers' CPU: {result.cpu_seconds:.0f} s, "
                f"{result.cpu_seconds / result.wall:.0%} of one core (the machine has 2, shared with the simulator, "
                "Redis and this driver)"
                if result.cpu_seconds is not None
                else ""
            ),
        ),
        Figure(
            f"Shared state ({how}): jobs completed and routed right",
            f"{result.routed:,}/{result.jobs:,}",
            "all",
            result.routed == result.jobs and not result.problems,
            "; ".join(result.problems[:3])
            or (
                f"each job followed from another replica than the one that started it ({result.followed_elsewhere:,})"
                if result.followed_elsewhere
                else "each job's calls on one server, the jobs spread over the three"
            ),
        ),
        Figure(
            f"Shared state ({how}): over-commits counted by the simulator",
            f"{result.over_commits}",
            "0",
            result.over_commits == 0,
            f"most jobs in flight at once on one account: {result.peak} (its concurrency: {result.concurrency})",
        ),
    ]


async def run(quick: bool, workdir: Path) -> Section:
    started = time.monotonic()
    jobs = 300 if quick else 1000
    http = await measure(transport="http", jobs=jobs, workdir=workdir)
    stdio = await measure(transport="stdio", jobs=jobs, workdir=workdir)
    details = [f"problem ({r.transport}): {p}" for r in (http, stdio) for p in r.problems[:10]]
    return Section(
        "Shared state across servers",
        figures(http) + figures(stdio),
        f"{http.accounts} simulated accounts in `MJ_ACCOUNTS`, each allowed {http.concurrency} running jobs and "
        "none queued (`queue_size=0`: a job in flight is a job running), the simulator enforcing the same; "
        f"{http.job_seconds:g} s jobs, {jobs:,} jobs at once after a warm-up. First {http.servers} HTTP server "
        "processes (stateless streamable HTTP) sharing one private redis-server, each in its own state folder; "
        "job i's `imagine(wait_seconds=0)` goes to replica i mod 3 and its `get_message(wait_seconds=55)` to the "
        f"next one, so every job is followed from a server that did not start it. Then {stdio.servers} stdio "
        "servers in one state folder (the default `MJ_STATE_URL`, its SQLite file), job i on server i mod 3. "
        "Routing is checked against the simulator's record (handle → nonce → the simulator's job → its uuid and "
        "result message, in the sending account's channel); the simulator counts, per user, the most jobs in "
        "flight at once and every job that arrived while the user already ran its limit (an over-commit).",
        time.monotonic() - started,
        details,
    )
