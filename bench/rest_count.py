"""Figure 1: Discord REST requests per completed job, counted at the simulator.

The real server is spawned over stdio and driven by the SDK client. The simulator counts every REST request
by route. Start-up requests (the gateway URL, the command index read before the first command) are counted
apart as per-session overhead; then `jobs` imagines and `jobs` U1 presses run to completion, and the
requests they caused are divided by the number of jobs. A quiet spell after the jobs checks that nothing
polls while idle.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anyio

from .common import Figure, Section, server_env, spawn_server, structured, wait_for_sessions
from .simproc import RemoteSimulator

INTERACTION = "POST /interactions"
# The simulator's stand-ins for Discord's and Midjourney's CDNs (attachments, media proxy, cdn.midjourney.com).
CDN_PREFIXES = ("/attachments/", "/media/", "/mjcdn/")


@dataclass
class RestResult:
    """REST requests the server made, by phase."""

    jobs: int
    startup: Counter[str]
    first_job_extra: Counter[str]  # beyond the interaction: the command index, read once per session
    imagine: Counter[str]
    press: Counter[str]
    idle: Counter[str]
    idle_seconds: float
    job_seconds: float


def _diff(after: dict[str, int], before: dict[str, int]) -> Counter[str]:
    return Counter({k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)})


async def _settle(seconds: float = 0.3) -> None:
    """Let in-flight requests land before a snapshot of the counters."""
    await anyio.sleep(seconds)


async def measure(*, jobs: int = 6, job_seconds: float = 2.5, idle_seconds: float = 3.0, workdir: Path) -> RestResult:
    """Run `jobs` imagines and `jobs` U1 presses (concurrently, `job_seconds` each) and count REST requests."""
    with RemoteSimulator(job_seconds=job_seconds) as sim:
        env = server_env(sim)
        async with spawn_server(env, workdir / "rest-server.log") as client:
            await wait_for_sessions(sim, 1)
            await _settle()
            startup = Counter(sim.stats())

            first = structured(await client.call_tool("imagine", {"prompt": "warm-up", "wait_seconds": 40}))
            if first["status"] != "completed":
                raise RuntimeError(f"warm-up job did not complete: {first}")
            await _settle()
            after_first = sim.stats()
            first_job_extra = _diff(after_first, startup)
            first_job_extra[INTERACTION] -= 1
            first_job_extra = +first_job_extra

            grids: list[dict[str, object]] = []

            async def imagine(i: int) -> None:
                view = structured(await client.call_tool("imagine", {"prompt": f"rest count {i}", "wait_seconds": 40}))
                grids.append(view)

            async with anyio.create_task_group() as group:
                for i in range(jobs):
                    group.start_soon(imagine, i)
            await _settle()
            after_imagine = sim.stats()

            presses: list[dict[str, object]] = []

            async def press(grid: dict[str, object]) -> None:
                view = structured(
                    await client.call_tool(
                        "press_button", {"message_id": grid["message_id"], "button": "U1", "wait_seconds": 40}
                    )
                )
                presses.append(view)

            async with anyio.create_task_group() as group:
                for grid in grids:
                    group.start_soon(press, grid)
            await _settle()
            after_press = sim.stats()
            await anyio.sleep(idle_seconds)
            after_idle = sim.stats()

    unfinished = [v for v in grids + presses if v["status"] != "completed"]
    if unfinished:
        raise RuntimeError(f"{len(unfinished)} jobs did not complete: {unfinished[:2]}")
    return RestResult(
        jobs=jobs,
        startup=startup,
        first_job_extra=first_job_extra,
        imagine=_diff(after_imagine, after_first),
        press=_diff(after_press, after_imagine),
        idle=_diff(after_idle, after_press),
        idle_seconds=idle_seconds,
        job_seconds=job_seconds,
    )


def _listing(counts: Counter[str]) -> str:
    return ", ".join(f"{route} ×{n}" for route, n in sorted(counts.items())) or "none"


def is_cdn(route: str) -> bool:
    """Whether a simulator route stands for a CDN download (cdn.discordapp.com, media.discordapp.net, Midjourney's
    CDN), not for Discord's REST API."""
    return route.split(" ", 1)[-1].startswith(CDN_PREFIXES)


def _split(counts: Counter[str]) -> tuple[Counter[str], Counter[str]]:
    api = Counter({r: n for r, n in counts.items() if not is_cdn(r)})
    cdn = Counter({r: n for r, n in counts.items() if is_cdn(r)})
    return api, cdn


def figures(result: RestResult) -> list[Figure]:
    """The table rows of a `RestResult`."""
    rows = []
    downloads: list[str] = []
    for label, counts in (("imagine", result.imagine), ("button press (U1)", result.press)):
        api, cdn = _split(counts)
        only_interactions = set(api) <= {INTERACTION}
        rows.append(
            Figure(
                f"REST requests per {label}",
                f"{sum(api.values()) / result.jobs:.2f}",
                "= 1 (the interaction), no polling",
                only_interactions and api[INTERACTION] == result.jobs,
                f"{result.jobs} jobs of {result.job_seconds:g} s: {_listing(api)}",
            )
        )
        downloads.append(f"{label}: {sum(cdn.values()) / result.jobs:.2f} ({_listing(cdn)})")
    rows.append(
        Figure(
            "CDN image downloads per job (the result's preview)",
            f"{sum(_split(result.imagine)[1].values()) / result.jobs:.2f}",
            "—",
            None,
            "not Discord's API: the result image from the CDN, downscaled into the tool result; "
            + "; ".join(downloads),
        )
    )
    rows.append(
        Figure(
            f"REST requests while idle ({result.idle_seconds:g} s)",
            str(sum(result.idle.values())),
            "= 0",
            not result.idle,
            _listing(result.idle),
        )
    )
    overhead, _ = _split(result.startup + result.first_job_extra)
    rows.append(
        Figure(
            "REST requests per session (start-up, once)",
            str(sum(overhead.values())),
            "—",
            None,
            _listing(overhead),
        )
    )
    return rows


async def run(quick: bool, workdir: Path) -> Section:
    """Measure and describe figure 1."""
    started = time.monotonic()
    result = await measure(jobs=3 if quick else 6, idle_seconds=2.0 if quick else 3.0, workdir=workdir)
    return Section(
        "REST requests per job",
        figures(result),
        'The real server over stdio (SDK client, `mode="legacy"`) against the simulator, which counts every '
        "REST request by route. Imagines run concurrently, then a U1 press on each grid; each job lasts "
        f"{result.job_seconds:g} s, long enough that any polling would show. Start-up requests (the gateway URL, "
        "and the command index read before the first command) are reported apart as per-session overhead.",
        time.monotonic() - started,
    )
