"""End-to-end harness: the real server spawned over stdio, driven by the mcp SDK's own client, against the simulator."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_midjourney.commands.demo import server_env
from mcp_midjourney.simulator import SimulatorServer


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(job_seconds=0.4) as simulator:
        yield simulator


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    return tmp_path / "server-stderr.log"


@asynccontextmanager
async def spawn(
    sim: SimulatorServer | None,
    log_path: Path,
    *,
    mode: str = "legacy",
    env: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> AsyncIterator[Client]:
    """Spawn `python -m mcp_midjourney` with the simulator's settings; stderr goes to `log_path`."""
    environment = server_env(sim, MJ_LOG_LEVEL="DEBUG") if sim is not None else {}
    environment.update(env or {})
    for name in drop:
        environment.pop(name, None)
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_midjourney"], env=environment)
    with log_path.open("a", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:  # type: ignore[arg-type]
            yield client


def data(result: Any) -> dict[str, Any]:
    """The structured content of a successful tool result."""
    assert not result.is_error, text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
