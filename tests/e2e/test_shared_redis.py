"""The shared state over a real redis-server (issue 17): two servers in different state folders share the budget,
the account's slots and every job; a Redis outage gives clear errors, charges nothing twice, and ends on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_midjourney.engine.state_redis import RedisStore
from tests.e2e.conftest import data, spawn, text
from tests.e2e.test_shared_state import budget_of_three, concurrency_of_two, followed_from_the_other

pytestmark = pytest.mark.anyio


def redis_envs(redis_server: Any, tmp_path: Path) -> list[dict[str, str]]:
    """Two servers that share nothing but MJ_STATE_URL (as on two machines)."""
    return [{"MJ_STATE_URL": redis_server.url, "MJ_STATE_DIR": str(tmp_path / f"state{i}")} for i in range(2)]


async def test_one_budget_of_three_over_redis(sim, server_log: Path, tmp_path: Path, redis_server: Any) -> None:
    await budget_of_three(sim, server_log, redis_envs(redis_server, tmp_path))


async def test_the_accounts_concurrency_over_redis(sim, server_log: Path, tmp_path: Path, redis_server: Any) -> None:
    await concurrency_of_two(sim, server_log, redis_envs(redis_server, tmp_path))


async def test_a_job_followed_over_redis(sim, server_log: Path, tmp_path: Path, redis_server: Any) -> None:
    await followed_from_the_other(sim, server_log, redis_envs(redis_server, tmp_path))


def spends(url: str) -> int:
    store = RedisStore(url)
    store.refresh()
    return sum(len(entries) for buckets in store.load().values() for entries in buckets.values())


async def test_redis_stopped_mid_run(sim, server_log: Path, tmp_path: Path, redis_server: Any) -> None:
    """Redis stops while a job runs: the job still ends, new calls get an error naming MJ_STATE_URL and charge
    nothing, and once Redis is back the same servers serve again with no restart."""
    sim.set_job_duration(1.0)
    envs = [env | {"MJ_MAX_JOBS_PER_HOUR": "10"} for env in redis_envs(redis_server, tmp_path)]
    async with spawn(sim, server_log, env=envs[0]) as first, spawn(sim, server_log, env=envs[1]) as second:
        running = data(await first.call_tool("imagine", {"prompt": "outlives the outage", "wait_seconds": 0}))
        assert spends(redis_server.url) == 1
        redis_server.stop()
        for client in (first, second):
            refused = await client.call_tool("imagine", {"prompt": "during the outage", "wait_seconds": 0})
            assert refused.is_error and "MJ_STATE_URL=" + redis_server.url in text(refused), text(refused)
            assert "unreachable" in text(refused)
        done = data(await first.call_tool("get_message", {"message_id": running["message_id"], "wait_seconds": 40}))
        assert done["status"] == "completed"  # the job the outage caught ran on
        redis_server.start()  # the same data (append-only file): the first job's charge is still there
        for client in (first, second):
            with anyio.fail_after(30):
                while True:
                    again = await client.call_tool("imagine", {"prompt": "after the outage", "wait_seconds": 30})
                    if not again.is_error:
                        break
                    await anyio.sleep(0.5)
            assert data(again)["status"] == "completed", text(again)
        assert spends(redis_server.url) == 3  # each call that ran is charged once; the refused ones never were
    assert len(sim.job_states()) == 3
