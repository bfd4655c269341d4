"""Two servers on one account share its state (issue 17): the budget, the account's slots, and every job.

Each server is spawned over stdio against the same simulator; by default they share the SQLite file in the state
folder (MJ_STATE_URL unset). tests/e2e/test_shared_redis.py runs the same over a real redis-server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.e2e.conftest import data, spawn, text

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def two_servers(sim: Any, log: Path, envs: list[dict[str, str]]) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(spawn(sim, log, env=env)) for env in envs]


async def budget_of_three(sim: Any, log: Path, envs: list[dict[str, str]]) -> None:
    """Four concurrent imagines, two on each server, under one budget of 3: exactly 3 run."""
    results: list[Any] = []
    async with two_servers(sim, log, [env | {"MJ_MAX_JOBS_PER_HOUR": "3"} for env in envs]) as servers:

        async def one(client: Client, i: int) -> None:
            results.append(await client.call_tool("imagine", {"prompt": f"shared budget {i}", "wait_seconds": 30}))

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(one, servers[i % 2], i)
    refused = [r for r in results if r.is_error]
    assert len(refused) == 1, [text(r) for r in results]
    assert "MJ_MAX_JOBS_PER_HOUR" in text(refused[0])
    assert [data(r)["status"] for r in results if not r.is_error] == ["completed"] * 3
    assert len(sim.job_states()) == 3


async def concurrency_of_two(sim: Any, log: Path, envs: list[dict[str, str]]) -> None:
    """Six concurrent jobs, three on each server, on an account that runs 2: never more than 2 at the simulator,
    and each server's calls get its own jobs though the prompts are the same."""
    settings = {"MJ_CONCURRENCY": "2", "MJ_QUEUE_SIZE": "0"}  # in flight = running (no queue at Midjourney)
    sim.set_job_duration(0.6)
    async with two_servers(sim, log, [env | settings for env in envs]) as servers:
        views: list[dict[str, Any]] = []

        async def one(client: Client, i: int) -> None:
            # The very same prompt on both servers: each must still get its own job, not the other server's.
            view = data(await client.call_tool("imagine", {"prompt": "shared slots", "wait_seconds": 0}))
            views.append(
                data(await client.call_tool("get_message", {"message_id": view["message_id"], "wait_seconds": 40}))
            )

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, servers[i % 2], i)
    assert [v["status"] for v in views] == ["completed"] * 6
    assert len({v["job_uuid"] for v in views}) == 6, views
    assert sim.load_stats() == {"peak_in_flight": 2, "over_commits": 0}


async def followed_from_the_other(sim: Any, log: Path, envs: list[dict[str, str]]) -> None:
    """A job started on one server completes through get_message on the other, by every id a tool returned."""
    sim.set_job_duration(1.0)
    async with two_servers(sim, log, envs) as (first, second):
        started = data(await first.call_tool("imagine", {"prompt": "followed elsewhere", "wait_seconds": 0}))
        seen = data(await second.call_tool("get_message", {"message_id": started["message_id"], "wait_seconds": 0}))
        assert seen["status"] in ("queued", "in_progress"), seen
        done = data(await second.call_tool("get_message", {"message_id": started["message_id"], "wait_seconds": 40}))
        assert done["status"] == "completed", done
        assert done["image_url"]
        # The result's id finds the same job on either server, with its buttons: the other server presses them.
        again = data(await second.call_tool("get_message", {"message_id": done["message_id"]}))
        assert again["message_id"] == done["message_id"]
        upscale = data(
            await second.call_tool(
                "press_button", {"message_id": done["message_id"], "button": "U1", "wait_seconds": 40}
            )
        )
        assert upscale["status"] == "completed"
        # The first server knows that press was made: a second U1 through it returns the same upscale.
        twice = data(await first.call_tool("press_button", {"message_id": done["message_id"], "button": "U1"}))
        assert twice["message_id"] == upscale["message_id"]


def sqlite_envs(tmp_path: Path) -> list[dict[str, str]]:
    """Two servers with default settings: the same state folder, so the same SQLite file."""
    return [{"MJ_STATE_DIR": str(tmp_path / "state")}] * 2


async def test_one_budget_of_three_lets_exactly_three_of_four_run(sim, server_log: Path, tmp_path: Path) -> None:
    await budget_of_three(sim, server_log, sqlite_envs(tmp_path))
    assert (tmp_path / "state" / "state.sqlite3").exists()


async def test_two_servers_never_run_more_than_the_accounts_concurrency(sim, server_log: Path, tmp_path: Path) -> None:
    await concurrency_of_two(sim, server_log, sqlite_envs(tmp_path))


async def test_a_job_started_on_one_server_completes_through_the_other(sim, server_log: Path, tmp_path: Path) -> None:
    await followed_from_the_other(sim, server_log, sqlite_envs(tmp_path))
