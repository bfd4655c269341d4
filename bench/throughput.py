"""Figure 3: throughput and correctness at scale — 1,000 jobs over a pool of 10 accounts, over stdio.

The real server is spawned with `MJ_ACCOUNTS` (ten simulated accounts: the main one in the busy guild channel,
nine in their own DMs with the bot), each allowed 3 running jobs and 10 queued, as Midjourney allows. Every
job is what an agent does: `imagine(wait_seconds=0)` for a handle, then `get_message(handle, wait_seconds=55)`
until it completes. Prompts repeat (five distinct prompts for a thousand jobs), and other users run jobs with
the very same prompts in the guild channel, and chat there, the whole time.

Routing is checked against the simulator's own record, not against what the server says: each call's handle
leads to the nonce the server sent, the nonce to the simulator's job, and that job's uuid and result message
must be the ones the call returned, in the channel of the account that sent it. The wall time is compared
with the ideal schedule the per-account limits allow: ceil(jobs / (accounts × concurrency)) × job length.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .common import (
    Figure,
    Section,
    children_cpu_seconds,
    ms,
    percentile,
    server_env,
    spawn_server,
    structured,
    wait_for_sessions,
)
from .simproc import RemoteSimulator

PROMPTS = (
    "a lighthouse in a storm, oil painting",
    "a red fox in the snow --ar 3:2",
    "isometric city at night, neon",
    "a lighthouse in a storm, oil painting --v 6.1",
    "portrait of an astronaut, studio light",
)
STDIO_JOB_SECONDS = 1.5
"""Job length of the stdio run that is always judged: real jobs take ~45 s, so this is still 30× their pace. At
the in-process run's 0.5 s the tool calls, the previews and ten gateways' events keep the server's one core busy
nearly all the time on a 2-core machine that also runs the simulator; that run is kept, and judged only when its
CPU share shows that its core was not the limit (`_saturated`)."""
SATURATED = 0.85
"""CPU seconds per wall second from which a run counts as bound by the server's core: its work runs on one event
loop (a few worker threads only move bytes), so one core is all it can use."""
OTHER_USERS = ("1012983546824114217", "1012983546824114218", "1012983546824114219")


@dataclass
class ThroughputResult:
    """What one run of the pool benchmark measured and found."""

    jobs: int
    accounts: int
    concurrency: int
    queue_size: int
    job_seconds: float
    interaction_interval: float
    mode: str
    wall: float
    completed: int
    routed: int
    per_account: dict[str, int]
    problems: list[str] = field(default_factory=list)
    handoffs: list[float] = field(default_factory=list)
    noise_jobs: int = 0
    noise_messages: int = 0
    cpu_seconds: float | None = None  # the server's (stdio) or this process's (engine) CPU during the timed run

    @property
    def cpu_share(self) -> float | None:
        """CPU seconds per wall second while the jobs ran: 1.0 is one core kept busy the whole time."""
        return None if self.cpu_seconds is None else self.cpu_seconds / self.wall

    @property
    def ideal(self) -> float:
        """The schedule the per-account slot limits allow: full rounds of `accounts × concurrency` jobs."""
        return math.ceil(self.jobs / (self.accounts * self.concurrency)) * self.job_seconds

    @property
    def pacing_bound(self) -> float:
        """The least time the interaction pacing allows: each account sends its share one interval apart."""
        return math.ceil(self.jobs / self.accounts) * self.interaction_interval

    @property
    def ratio(self) -> float:
        return self.wall / max(self.ideal, self.pacing_bound)


def _witness(simulator: Any) -> dict[str, Any]:
    """The simulator's record of every job of our accounts (run on the simulator's loop)."""
    ours = {account.user_id: token for token, account in simulator.world.accounts.items()}
    jobs = {}
    for uuid, job in simulator.jobs.jobs.items():
        interaction = job.interaction
        if interaction is None or interaction.account is None or job.user_id not in ours:
            continue
        jobs[interaction.nonce] = {
            "uuid": uuid,
            "state": job.state,
            "channel": job.channel.id,
            "user": job.user_id,
            "result": job.result_message_id,
            "echo": job.echo,
        }
    nonces = {
        message.id: message.nonce
        for channel in simulator.world.channels.values()
        for message in channel.messages.values()
        if message.nonce
    }
    results = {
        message.id: channel.id
        for channel in simulator.world.channels.values()
        for message in channel.messages.values()
        if not message.deleted and message.attachments and not message.nonce
    }
    return {"jobs": jobs, "nonces": nonces, "results": results, "users": ours}


class Noise:
    """Other users' jobs (with our very prompts) and chat in the guild channel, from a thread of its own."""

    def __init__(self, sim: Any, period: float) -> None:
        self._sim = sim
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-noise", daemon=True)
        self.jobs = 0
        self.messages = 0

    def __enter__(self) -> Noise:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        k = 0
        while not self._stop.wait(self._period):
            user = OTHER_USERS[k % len(OTHER_USERS)]
            self._sim.inject_job(PROMPTS[k % len(PROMPTS)], username=f"other_{k % 3}", user_id=user)
            self.jobs += 1
            self._sim.inject_message(f"anyone tried {PROMPTS[k % len(PROMPTS)]}?", username=f"other_{k % 3}")
            self.messages += 1
            k += 1


def _pool(sim: Any, accounts: int, concurrency: int, queue_size: int) -> list[dict[str, Any]]:
    pool: list[dict[str, Any]] = [
        {"name": "main", "token": sim.token, "guild_id": sim.guild_id, "channel_id": sim.channel_id}
    ]
    for i in range(1, accounts):
        token = f"bench-pool-token-{i:02d}-not-a-secret"
        sim.add_account(token, f"bench_user_{i:02d}")
        pool.append({"name": f"pool{i:02d}", "token": token, "channel_id": sim.account_channel(token)})
    for account in pool:
        account |= {"concurrency": concurrency, "queue_size": queue_size}
    return pool


Driver = Callable[[int, str], Coroutine[Any, Any, tuple[str, dict[str, Any]]]]
"""Runs job `i` with a prompt to the end; returns the handle it got first and the final state."""


@asynccontextmanager
async def _stdio(sim: Any, env: dict[str, str], log: Path, accounts: int) -> AsyncIterator[Driver]:
    """Jobs through the real server over stdio: imagine for a handle, then get_message until done."""
    async with spawn_server(env, log) as client:
        await wait_for_sessions(sim, accounts)

        async def one(i: int, prompt: str) -> tuple[str, dict[str, Any]]:
            view = structured(await client.call_tool("imagine", {"prompt": prompt, "wait_seconds": 0}))
            handle = str(view["message_id"])
            for _ in range(4):
                if view["status"] in ("completed", "failed"):
                    break
                view = structured(
                    await client.call_tool("get_message", {"message_id": view["message_id"], "wait_seconds": 55})
                )
            return handle, view

        yield one


@asynccontextmanager
async def _in_process(sim: Any, env: dict[str, str], log: Path, accounts: int) -> AsyncIterator[Driver]:
    """Jobs through an `Engine` in this process: `imagine`, then `wait` until done (no MCP, no rendering)."""
    from mcp_midjourney.config import load_settings
    from mcp_midjourney.engine.engine import Engine

    engine = Engine(load_settings(env))
    async with anyio.create_task_group() as group:
        await group.start(engine.run)
        await wait_for_sessions(sim, accounts)
        for _ in range(600):
            if all(a.usable for a in engine.accounts):
                break
            await anyio.sleep(0.05)

        async def one(i: int, prompt: str) -> tuple[str, dict[str, Any]]:
            job = await engine.imagine(prompt)
            handle = job.nonce
            for _ in range(4):
                if job.status.finished:
                    break
                job = await engine.wait(job, 55)
            view = {
                "status": job.status.value,
                "job_uuid": job.job_uuid,
                "message_id": job.result_message_id or job.handle,
                "error": job.error,
            }
            return handle, view

        yield one
        group.cancel_scope.cancel()


async def measure(
    *,
    mode: str = "engine",
    jobs: int = 1000,
    accounts: int = 10,
    job_seconds: float = 0.5,
    concurrency: int = 3,
    queue_size: int = 10,
    interaction_interval: float = 0.05,
    noise_period: float = 0.5,
    workdir: Path,
    name: str = "throughput",
) -> ThroughputResult:
    """Run `jobs` jobs over a pool of `accounts` simulated accounts and check every one's routing.

    `mode` is "stdio" (the real server, spawned, driven by the SDK client) or "engine" (an `Engine` in this
    process). The simulator runs in a process of its own either way.
    """
    drivers = {"stdio": _stdio, "engine": _in_process}
    with RemoteSimulator(job_seconds=job_seconds, max_running_jobs=concurrency, max_queued_jobs=queue_size) as sim:
        pool = _pool(sim, accounts, concurrency, queue_size)
        env = server_env(
            sim,
            MJ_ACCOUNTS=json.dumps(pool),
            MJ_WAIT_CEILING="55",
            MJ_INTERACTION_INTERVAL=str(interaction_interval),
        )
        for variable in ("MJ_DISCORD_TOKEN", "MJ_CHANNEL_ID", "MJ_GUILD_ID"):
            env.pop(variable, None)
        channel_of = {a["name"]: a["channel_id"] for a in pool}
        async with drivers[mode](sim, env, workdir / f"{name}-server.log", accounts) as run_job:
            # Warm-up: one job per account reads its command index (once per session, not per job).
            async with anyio.create_task_group() as group:
                for i in range(accounts):
                    group.start_soon(run_job, i, f"warm-up {i}")

            handles: list[str] = [""] * jobs
            finals: list[dict[str, Any]] = [{}] * jobs
            done_at: list[float] = [0.0] * jobs

            async def one(i: int) -> None:
                handles[i], finals[i] = await run_job(i, PROMPTS[i % len(PROMPTS)])
                done_at[i] = time.monotonic()

            cpu = children_cpu_seconds if mode == "stdio" else time.process_time
            with Noise(sim, noise_period) as noise:
                cpu_before = cpu()
                started = time.monotonic()
                async with anyio.create_task_group() as group:
                    for i in range(jobs):
                        group.start_soon(one, i)
                wall = max(done_at) - started
                cpu_after = cpu()
            witness = sim.run("bench.throughput:_witness")
            sent_at = dict(sim.results_sent())

    account_of_user = {}
    for account in pool:
        user = next((u for u, token in witness["users"].items() if token == account["token"]), None)
        account_of_user[user] = account["name"]
    problems: list[str] = []
    per_account: Counter[str] = Counter()
    seen_uuids: Counter[str] = Counter()
    completed = 0
    routed = 0
    handoffs: list[float] = []
    for i, (handle, view) in enumerate(zip(handles, finals, strict=True)):
        prompt = PROMPTS[i % len(PROMPTS)]
        if view.get("status") != "completed":
            problems.append(f"job {i} ended {view.get('status')}: {view.get('error')}")
            continue
        completed += 1
        nonce = witness["nonces"].get(handle, handle)
        record = witness["jobs"].get(nonce)
        if record is None:
            problems.append(f"job {i}: the simulator has no job for handle {handle}")
            continue
        account = account_of_user.get(record["user"], "?")
        per_account[account] += 1
        seen_uuids[str(view["job_uuid"])] += 1
        before = len(problems)
        if view["job_uuid"] != record["uuid"] or view["message_id"] != record["result"]:
            problems.append(f"job {i}: got {view['job_uuid']} / {view['message_id']}, sent {record['uuid']}")
        if not record["echo"].startswith(prompt):
            problems.append(f"job {i}: prompt {prompt!r} but the simulator ran {record['echo']!r}")
        if witness["results"].get(view["message_id"]) != channel_of.get(account):
            problems.append(f"job {i}: result {view['message_id']} not in the channel of account {account}")
        routed += len(problems) == before
        if view["job_uuid"] in sent_at:
            handoffs.append(done_at[i] - sent_at[view["job_uuid"]])
    duplicates = [u for u, n in seen_uuids.items() if n > 1]
    if duplicates:
        problems.append(f"{len(duplicates)} job uuids returned to more than one call")
    sent = len(witness["jobs"]) - accounts
    if sent != jobs:
        problems.append(f"the simulator ran {sent} jobs of ours for {jobs} calls (lost or duplicated sends)")
    return ThroughputResult(
        jobs=jobs,
        accounts=accounts,
        concurrency=concurrency,
        queue_size=queue_size,
        job_seconds=job_seconds,
        interaction_interval=interaction_interval,
        mode=mode,
        wall=wall,
        completed=completed,
        routed=routed,
        per_account=dict(sorted(per_account.items())),
        problems=problems,
        handoffs=handoffs,
        noise_jobs=noise.jobs,
        noise_messages=noise.messages,
        cpu_seconds=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    )


def figures(result: ThroughputResult, *, waive_when_saturated: bool = False) -> list[Figure]:
    """The table rows of a `ThroughputResult`.

    `waive_when_saturated`: when the server's one core was busy nearly the whole run (`_saturated`), its wall
    time measures that core rather than the schedule, so the ratio is shown without a verdict, with the reason
    and what the verdict would have been (routing and balance are judged at any load).
    """
    counts = list(result.per_account.values()) or [0]
    mean = result.jobs / result.accounts
    balanced = len(result.per_account) == result.accounts and max(abs(c - mean) for c in counts) <= 0.1 * mean
    routing_ok = not result.problems and result.routed == result.jobs
    bound = max(result.ideal, result.pacing_bound)
    how = "engine in-process" if result.mode == "engine" else "real server over stdio"
    how += f", {result.job_seconds:g} s jobs"
    rate = result.jobs / result.wall
    notes = f"; {rate:.1f} jobs/s (the schedule allows at most {result.jobs / bound:.1f}/s)"
    if result.handoffs:
        notes += (
            f"; result → call returning under this load: p50 {ms(percentile(result.handoffs, 50))}, "
            f"p99 {ms(percentile(result.handoffs, 99))}"
        )
    if result.cpu_share is not None:
        whose = "the server process" if result.mode == "stdio" else "this process (the engine and the driver)"
        notes += f"; CPU of {whose}: {result.cpu_seconds:.1f} s, {result.cpu_share:.0%} of one core"
    within = result.ratio <= 1.10
    waived = ""
    if waive_when_saturated and _saturated(result) and result.cpu_share is not None:
        waived = (
            f"the server's CPU time was {result.cpu_share:.0%} of the wall time (≥ {SATURATED:.0%}): the run "
            f"measured its core, not the schedule; ≤ 1.10 would {'be' if within else 'not be'} met"
        )
    return [
        Figure(
            f"Pool ({how}): wall time / ideal, {result.jobs:,} jobs on {result.accounts} accounts",
            f"{result.ratio:.3f}" + (f" (server CPU {result.cpu_share:.0%})" if waived else ""),
            "≤ 1.10",
            None if waived else within,
            f"wall {result.wall:.2f} s, ideal ceil({result.jobs}/({result.accounts}×{result.concurrency}))"
            f"×{result.job_seconds:g} s = {bound:.2f} s (interaction pacing alone would allow "
            f"{result.pacing_bound:.2f} s){notes}",
            waived,
        ),
        Figure(
            f"Pool ({how}): jobs completed and routed right",
            f"{result.routed:,}/{result.jobs:,}",
            "all; no uuid twice; each in its account's channel",
            routing_ok,
            "; ".join(result.problems[:3])
            or f"checked against the simulator's record; meanwhile {result.noise_jobs} other users' jobs (same "
            f"prompts) and {result.noise_messages} chat messages in the guild channel",
        ),
        Figure(
            f"Pool ({how}): jobs per account",
            f"{min(counts)}–{max(counts)}",
            "each within ±10% of the mean",
            balanced,
            ", ".join(f"{name} {n}" for name, n in result.per_account.items()),
        ),
    ]


def _saturated(result: ThroughputResult) -> bool:
    """True when the server kept its core busy nearly the whole run: its wall time then measures the CPU."""
    return result.cpu_share is not None and result.cpu_share >= SATURATED


async def run(quick: bool, workdir: Path) -> Section:
    """Measure and describe figure 3: in-process, over stdio, and over stdio at the in-process run's pace."""
    started = time.monotonic()
    jobs = 300 if quick else 1000
    engine = await measure(mode="engine", jobs=jobs, workdir=workdir)
    stdio = await measure(mode="stdio", jobs=jobs, job_seconds=STDIO_JOB_SECONDS, workdir=workdir, name="pool-stdio")
    fast = await measure(mode="stdio", jobs=jobs, workdir=workdir, name="pool-stdio-fast")
    runs = {"engine": engine, "stdio": stdio, f"stdio, {fast.job_seconds:g} s jobs": fast}
    details = [f"problem ({name}): {p}" for name, r in runs.items() for p in r.problems[:10]]
    if fast.cpu_share is None:
        verdict = "the server's CPU could not be read here (no /proc), so the target applies"
    elif _saturated(fast):
        verdict = (
            f"in this run its CPU time was {fast.cpu_share:.0%} of the wall time, at least {SATURATED:.0%}: that "
            "run measured the server's core rather than the schedule, so its ratio is shown without a verdict, "
            "with the verdict it would have had (see Reading the figures)"
        )
    else:
        verdict = (
            f"in this run its CPU time was {fast.cpu_share:.0%} of the wall time, below the {SATURATED:.0%} "
            "from which a run would measure the server's core rather than the schedule, so the target applies"
        )
    return Section(
        "Throughput and routing at scale",
        figures(engine) + figures(stdio) + figures(fast, waive_when_saturated=True),
        f"{engine.accounts} simulated accounts in `MJ_ACCOUNTS` (the main one in the busy guild channel, the "
        f"others in their DMs with the bot), each allowed {engine.concurrency} running + {engine.queue_size} "
        "queued jobs; the simulator enforces the same limits (`Job queued` beyond the running ones, `Queue full` "
        f"beyond the queue). `MJ_INTERACTION_INTERVAL={engine.interaction_interval:g}`. All {jobs:,} jobs start "
        f"at once, {len(PROMPTS)} distinct prompts (~{jobs // len(PROMPTS)} identical each), while other users "
        "run jobs with the same prompts in the guild channel and chat there (every account's gateway receives "
        "that channel). Three runs: an `Engine` in the benchmark process (`imagine`, then `wait`: the "
        f"scheduling and correlation alone) with {engine.job_seconds:g} s jobs; the real server spawned over "
        "stdio, each job as an agent runs it (`imagine(wait_seconds=0)`, then `get_message(wait_seconds=55)`, "
        f"which also fetches the result's preview), with {stdio.job_seconds:g} s jobs (30× a real job's pace); "
        f"and the same with {fast.job_seconds:g} s jobs (90×). The server does all its work on one event loop, "
        f"so on one core; for the {fast.job_seconds:g} s run {verdict}. Routing "
        "is checked against the simulator's own record: the handle a call got → the nonce sent → the "
        "simulator's job → its uuid and result message, which must be the ones the call returned, in the "
        "sending account's channel. The simulator runs in its own process, and its images are a 1×1 PNG here "
        "(drawing 6,000 real pictures would measure Pillow in the fake Discord).",
        time.monotonic() - started,
        details,
    )
