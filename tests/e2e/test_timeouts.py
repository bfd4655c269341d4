"""One job per prompt through client timeouts (issue 13): a framework that gives up on a call after 5 s and tells
the model to try again must not start a paid job per retry, and identical calls sent at once still each get one.

The real server over stdio, the SDK's client with `read_timeout_seconds=5` (what openai-agents and google-adk use
by default), against a simulator whose jobs outlast that timeout several times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_midjourney.simulator import SimulatorServer
from tests.e2e.conftest import data, spawn, text

pytestmark = pytest.mark.anyio
TIMEOUT = 5.0


async def call_until_answered(client: Any, tool: str, arguments: dict[str, Any], attempts: int) -> tuple[Any, int]:
    """Call like an agent framework at a 5 s timeout: on each timeout the model calls again, the same way."""
    for attempt in range(1, attempts + 1):
        try:
            return await client.call_tool(tool, arguments, read_timeout_seconds=TIMEOUT), attempt
        except Exception as exc:  # the client's timeout: what the framework turns into "please try again"
            if "tim" not in f"{type(exc).__name__} {exc}".lower():
                raise
    raise AssertionError(f"{tool} never answered within {TIMEOUT:g}s in {attempts} attempts")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_retries_after_client_timeouts_pay_one_job(mode: str, server_log: Path) -> None:
    with SimulatorServer(job_seconds=16, progress_steps=4) as sim:
        async with spawn(sim, server_log, mode=mode) as client:
            first, attempts = await call_until_answered(client, "imagine", {"prompt": "a slow  lighthouse"}, 4)
            job = data(first)
            print("attempts", attempts, text(first))
            assert attempts >= 2, "the first call should have timed out: the job outlasts the client's timeout"
            assert job["status"] in ("queued", "in_progress")
            assert "identical earlier imagine" in text(first)  # the result says it is the earlier call's job
            followed = job
            for _ in range(12):
                answer, _ = await call_until_answered(
                    client, "get_message", {"message_id": followed["message_id"], "wait_seconds": 30}, 3
                )
                followed = data(answer)
                if followed["status"] == "completed":
                    break
            assert followed["status"] == "completed", followed
            assert len(followed["image_urls"]) == 4
            assert followed["prompt"] == "a slow lighthouse"
        assert sim.stats().get("POST /interactions", 0) == 1  # one paid job, however many calls


async def test_identical_imagines_sent_at_once_each_make_a_job(server_log: Path) -> None:
    with SimulatorServer(job_seconds=0.4) as sim:
        async with spawn(sim, server_log) as client:
            results: list[dict[str, Any]] = []

            async def one() -> None:
                results.append(data(await client.call_tool("imagine", {"prompt": "six at once", "wait_seconds": 20})))

            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(one)
            again = data(await client.call_tool("imagine", {"prompt": "six at once", "wait_seconds": 20}))
        assert all(r["status"] == "completed" for r in results)
        assert len({r["job_uuid"] for r in results}) == 6
        assert again["job_uuid"] not in {r["job_uuid"] for r in results}  # answered calls hand nothing on
        assert sim.stats().get("POST /interactions", 0) == 7


async def test_get_message_without_an_id_lists_the_recent_jobs(sim: SimulatorServer, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        empty = await client.call_tool("get_message", {})
        assert empty.is_error and "imagine" in text(empty)
        first = data(await client.call_tool("imagine", {"prompt": "first of two", "wait_seconds": 20}))
        second = data(await client.call_tool("imagine", {"prompt": "second of two", "wait_seconds": 20}))
        latest = await client.call_tool("get_message", {})
    view = data(latest)
    assert view["message_id"] == second["message_id"] and view["prompt"] == "second of two"
    assert any(first["message_id"] in line and "first of two" in line for line in view["recent"])
    assert "first of two" in text(latest)


async def test_preview_false_is_honoured_and_mj_preview_off_sends_no_image(
    sim: SimulatorServer, server_log: Path
) -> None:
    async with spawn(sim, server_log) as client:
        started = data(await client.call_tool("imagine", {"prompt": "no picture", "wait_seconds": 0}))
        waited = await client.call_tool(
            "get_message", {"message_id": started["message_id"], "wait_seconds": 20, "preview": False}
        )
        assert data(waited)["status"] == "completed"
        assert [b.type for b in waited.content] == ["text"]
        shown = await client.call_tool("get_message", {"message_id": started["message_id"], "wait_seconds": 1})
        assert [b.type for b in shown.content] == ["text", "image"]
    async with spawn(sim, server_log, env={"MJ_PREVIEW": "off"}) as client:
        grid = await client.call_tool("imagine", {"prompt": "never a picture", "wait_seconds": 20, "preview": True})
        assert data(grid)["status"] == "completed"
        assert [b.type for b in grid.content] == ["text"]
        assert data(grid)["image_url"] in text(grid)
