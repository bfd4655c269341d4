"""Figure 6: cold start — process spawn to the `initialize` response over stdio, against a bare `MCPServer`.

Both servers are spawned by the SDK client (`mode="legacy"`: the initialize handshake Claude Desktop uses) with
the same environment (pointed at a running simulator, so ours starts its gateway session as it would for
real). Runs alternate, ours then the bare one, so drift in the machine's load hits both alike; the figure is
the ratio of the medians. `python -X importtime -m mcp_midjourney` shows where an import-time regression
comes from.
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from .common import ROOT, Figure, Section, ms, server_env
from .simproc import RemoteSimulator

TARGET = 1.15
BARE = ROOT / "bench" / "bare_server.py"


@dataclass
class ColdStart:
    """Spawn-to-initialize times in seconds, ours and the bare server's, in the order they ran."""

    ours: list[float]
    bare: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.bare)


async def _time_initialize(args: list[str], env: dict[str, str], errlog: Path) -> float:
    """Seconds from spawning `python <args>` to the `initialize` response."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(ROOT))
    async with AsyncExitStack() as stack:
        log = stack.enter_context(errlog.open("a", encoding="utf-8"))
        started = time.monotonic()
        await stack.enter_async_context(Client(stdio_client(params, errlog=log), mode="legacy"))
        return time.monotonic() - started


async def measure(*, runs: int = 15, workdir: Path) -> ColdStart:
    """`runs` spawns of each server, interleaved (after one discarded warm-up of each)."""
    ours: list[float] = []
    bare: list[float] = []
    log = workdir / "coldstart-server.log"
    with RemoteSimulator(job_seconds=1.0) as sim:
        env = server_env(sim)
        for i in range(runs + 1):
            a = await _time_initialize(["-m", "mcp_midjourney"], env, log)
            b = await _time_initialize([str(BARE)], env, log)
            if i:  # the first pair warms the OS page cache and the bytecode caches
                ours.append(a)
                bare.append(b)
    return ColdStart(ours, bare)


def figures(result: ColdStart) -> list[Figure]:
    """The table rows of a `ColdStart`."""
    return [
        Figure(
            "Cold start: spawn → initialize, ours / bare MCPServer",
            f"{result.ratio:.2f}",
            f"≤ {TARGET:.2f}",
            result.ratio <= TARGET,
            f"medians of {len(result.ours)} interleaved runs: ours {ms(statistics.median(result.ours))}, "
            f"bare {ms(statistics.median(result.bare))} (ours {ms(min(result.ours))}–{ms(max(result.ours))}, "
            f"bare {ms(min(result.bare))}–{ms(max(result.bare))})",
        )
    ]


async def run(quick: bool, workdir: Path) -> Section:
    """Measure and describe figure 6."""
    started = time.monotonic()
    result = await measure(runs=5 if quick else 15, workdir=workdir)
    return Section(
        "Cold start",
        figures(result),
        "`python -m mcp_midjourney` and `python bench/bare_server.py` (an `MCPServer` with one tool, nothing else) "
        "spawned by the SDK client in legacy mode, which times from the spawn to the `initialize` result. Same "
        "environment for both (pointed at a running simulator); runs alternate; one warm-up pair is discarded.",
        time.monotonic() - started,
    )
