"""What every benchmark shares: the figure it reports, the machine it ran on, and the real server over stdio.

A `Figure` is one row of the table: a measured value, its target, and whether the target is met. The server is
spawned exactly as a host spawns it (`python -m mcp_midjourney` over stdio, driven by the `mcp` SDK's own
client) against the in-repo simulator on 127.0.0.1.
"""

from __future__ import annotations

import datetime as _dt
import io
import math
import os
import platform
import sys
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


@dataclass
class Figure:
    """One measured figure: its value as shown, its target and whether the target is met (None: no target)."""

    name: str
    value: str
    target: str
    met: bool | None
    note: str = ""
    waived: str = ""  # why this run's value was not judged against the target (then `met` is None)

    @property
    def verdict(self) -> str:
        """`met`, `not met`, `not applied` (see `waived`), or `—` for a figure reported without a target."""
        if self.waived:
            return "not applied"
        return "—" if self.met is None else ("met" if self.met else "**not met**")


@dataclass
class Section:
    """The figures of one benchmark, with how it was measured (one paragraph for the report)."""

    title: str
    figures: list[Figure]
    method: str
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method: a value that was really measured."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def machine() -> dict[str, str]:
    """Cores, RAM, CPU model, Python and OS of this machine, for the report's header."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = "?"
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": f"{usable} usable ({os.cpu_count()} online)",
        "cpu": cpu,
        "ram": ram,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- the simulator, made cheap where it is not what we measure ----------------------------------------------


def _tiny_png() -> bytes:
    """A valid 1x1 PNG, built by hand (no Pillow)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    buffer = io.BytesIO()
    buffer.write(b"\x89PNG\r\n\x1a\n")
    buffer.write(chunk(b"IHDR", header))
    buffer.write(chunk(b"IDAT", zlib.compress(b"\x00\xff\x80\x00")))
    buffer.write(chunk(b"IEND", b""))
    return buffer.getvalue()


class FlatImages:
    """Stands in for the simulator's image cache: one tiny picture for every key.

    The simulator draws and encodes real pictures (tens of milliseconds each, six per job); at a thousand jobs
    that is the fake Discord's CPU, not ours. The benchmarks that count jobs swap this in so the figures
    measure the client.
    """

    def __init__(self) -> None:
        self._png = _tiny_png()

    def get(self, key: object) -> tuple[bytes, str, int, int]:
        """The same 1x1 PNG, whatever is asked."""
        return self._png, "image/png", 1024, 1024


async def _no_prerender(key: object) -> None:
    """Nothing to draw ahead of time: `FlatImages` answers at once."""


def flatten_images(sim: Any) -> None:
    """Make a running `SimulatorServer` answer every image with `FlatImages` (on its own loop).

    The simulator draws each progress frame and result in a worker thread before it sends the message; with
    nothing to draw, that thread hop (six per job) only adds scheduling delay to the fake Discord's jobs, so
    it is skipped too.
    """

    def swap() -> None:
        sim.simulator.world.images = FlatImages()
        sim.simulator.jobs._prerender = _no_prerender

    sim.call(swap)


def children_cpu_seconds(marker: str = "mcp_midjourney") -> float | None:
    """CPU seconds (user + system, every thread) used so far by this process's live children whose command line
    contains `marker`: the spawned server. None when there is no such child, or no /proc to ask (not Linux)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total: float | None = None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != os.getpid() or marker not in (entry / "cmdline").read_text(errors="replace"):
                continue
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
        total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return total


# --- the real server over stdio -----------------------------------------------------------------------------


def server_env(sim: Any, **extra: str) -> dict[str, str]:
    """The environment of a spawned server pointed at `sim` (warnings only, so stderr stays quiet)."""
    from mcp_midjourney.commands.demo import server_env as demo_env

    env = demo_env(sim, MJ_LOG_LEVEL="WARNING")
    env.update(extra)
    return env


# Set by `python -m bench --profile DIR`: every spawned server then runs under cProfile and saves its stats there.
PROFILE_DIR: Path | None = None


@asynccontextmanager
async def spawn_server(env: dict[str, str], errlog: Path, *, mode: str = "legacy") -> AsyncIterator[Any]:
    """`python -m mcp_midjourney` over stdio with this environment, as an initialised `mcp.Client`."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    args = ["-m", "mcp_midjourney"]
    if PROFILE_DIR is not None:  # made by `python -m bench --profile DIR`
        args = ["-m", "cProfile", "-o", str(PROFILE_DIR / f"{errlog.stem}.prof"), *args]
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(ROOT))
    with errlog.open("a", encoding="utf-8") as log:
        async with Client(stdio_client(params, errlog=log), mode=mode) as client:
            yield client


async def wait_for_sessions(sim: Any, count: int, timeout: float = 30.0) -> None:
    """Wait until the simulator has seen `count` gateway IDENTIFYs (the server's accounts are connected)."""
    for _ in range(int(timeout / 0.05)):
        if sim.gateway_stats().get("IDENTIFY", 0) >= count:
            return
        await anyio.sleep(0.05)
    raise RuntimeError(f"the server did not open {count} gateway sessions within {timeout:g} s")


def structured(result: Any) -> dict[str, Any]:
    """The structured content of a tool result; raises with the text when the call failed."""
    if result.is_error or not isinstance(result.structured_content, dict):
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        raise RuntimeError(f"tool call failed: {text}")
    data: dict[str, Any] = result.structured_content
    return data


def ms(seconds: float) -> str:
    """Seconds shown as milliseconds with a sensible precision."""
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
