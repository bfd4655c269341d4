"""Figure 2: hand-off latency, from the simulator sending a job's final MESSAGE_CREATE to the tool call returning.

The simulator records `time.monotonic()` as it sends each final result (`SimulatorServer.results_sent`);
the SDK client records it when `call_tool` returns. Both run in this process (the simulator in a thread), and
CLOCK_MONOTONIC is one clock for the whole machine anyway, so the two compare directly. The interval covers
the simulator's websocket write, the server's gateway read and JSON parse, correlation, waking the waiting
call, rendering the result, the JSON-RPC reply over stdio and the client's parse and validation.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from .common import Figure, Section, ms, percentile, server_env, spawn_server, structured
from .simproc import RemoteSimulator

TARGET_P99 = 0.020


@dataclass
class HandoffResult:
    """Hand-off latencies in seconds, one per job, without and with the result's preview."""

    plain: list[float]  # preview=false: the result as soon as the engine has it
    preview: list[float]  # the default: the result image is fetched and downscaled into the tool result
    job_seconds: float


async def measure(*, jobs: int = 200, job_seconds: float = 0.1, workdir: Path) -> HandoffResult:
    """Run `jobs` imagines of each kind, alternating, one at a time, and time every hand-off."""
    returned: dict[str, tuple[bool, float]] = {}
    with RemoteSimulator(job_seconds=job_seconds) as sim:
        async with spawn_server(server_env(sim), workdir / "handoff-server.log") as client:
            structured(await client.call_tool("imagine", {"prompt": "warm-up", "wait_seconds": 30}))
            for i in range(2 * jobs):
                preview = i % 2 == 1
                arguments = {"prompt": f"hand-off {i}", "wait_seconds": 30, "preview": preview}
                result = await client.call_tool("imagine", arguments)
                now = time.monotonic()
                view = structured(result)
                if view["status"] != "completed" or not view["job_uuid"]:
                    raise RuntimeError(f"job {i} did not complete: {view}")
                returned[str(view["job_uuid"])] = (preview, now)
            sent = dict(sim.results_sent())
    missing = [uuid for uuid in returned if uuid not in sent]
    if missing:
        raise RuntimeError(f"the simulator has no send time for {len(missing)} results")
    plain = [at - sent[u] for u, (preview, at) in returned.items() if not preview]
    with_preview = [at - sent[u] for u, (preview, at) in returned.items() if preview]
    return HandoffResult(plain, with_preview, job_seconds)


def _spread(latencies: list[float]) -> str:
    return (
        f"{len(latencies)} jobs; min {ms(min(latencies))}, mean {ms(statistics.fmean(latencies))}, "
        f"max {ms(max(latencies))}"
    )


def figures(result: HandoffResult) -> list[Figure]:
    """The table rows of a `HandoffResult`."""
    p99 = percentile(result.plain, 99)
    return [
        Figure("Hand-off latency p50", ms(percentile(result.plain, 50)), "—", None, _spread(result.plain)),
        Figure("Hand-off latency p99", ms(p99), "< 20 ms", p99 < TARGET_P99, _spread(result.plain)),
        Figure(
            "Hand-off with the preview image (default) p50 / p99",
            f"{ms(percentile(result.preview, 50))} / {ms(percentile(result.preview, 99))}",
            "—",
            None,
            _spread(result.preview) + "; adds the result image's download from the CDN and its downscaling "
            "(a 1×1 PNG here: real grids cost more, see docs/benchmarks-preview.md)",
        ),
    ]


async def run(quick: bool, workdir: Path) -> Section:
    """Measure and describe figure 2."""
    started = time.monotonic()
    result = await measure(jobs=30 if quick else 200, workdir=workdir)
    return Section(
        "Hand-off latency",
        figures(result),
        "From the simulator's send of a job's final `MESSAGE_CREATE` (a `time.monotonic()` stamp it records as it "
        'sends) to the SDK client\'s `call_tool("imagine", wait_seconds=30)` returning the completed job; '
        "CLOCK_MONOTONIC is one clock for the machine, so the simulator's process and the client's compare. The "
        f"real server over stdio, one job at a time ({result.job_seconds:g} s jobs), so each figure is the path "
        "itself (websocket read, correlation, waking the waiting call, rendering, JSON-RPC over stdio, the "
        "client's parse and schema validation), not a queue behind other work. Jobs alternate between "
        "`preview=false` (the hand-off proper, with the target) and the default, which also fetches the result "
        "image to show the model.",
        time.monotonic() - started,
    )
