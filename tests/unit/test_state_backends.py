"""The shared state's backends behave alike (memory, SQLite, a real redis-server): leases bound an account's
slots, the line is oldest first, a lease not renewed runs out, and jobs are found by every id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_midjourney.config import load_settings
from mcp_midjourney.engine.state import MemoryBackend, StateBackend, StateError, open_backend, safe_url

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    if request.param == "memory":
        chosen: StateBackend = MemoryBackend()
    elif request.param == "sqlite":
        chosen = open_backend("sqlite:///state.sqlite3", tmp_path)
    else:
        server = request.getfixturevalue("redis_server")
        chosen = open_backend(server.url, tmp_path)
    yield chosen
    await chosen.aclose()


async def test_an_accounts_slots_hold_across_holders_oldest_first(backend: StateBackend) -> None:
    assert await backend.acquire("acct", "a", 1.0, 2, 30)
    assert await backend.acquire("acct", "b", 2.0, 2, 30)
    assert not await backend.acquire("acct", "d", 4.0, 2, 30)  # full: d waits in line
    assert not await backend.acquire("acct", "c", 3.0, 2, 30)  # c too, though it is older than d
    assert await backend.acquire("other", "e", 5.0, 2, 30)  # another account's slots are its own
    await backend.release(["a"])
    assert not await backend.acquire("acct", "d", 4.0, 2, 30)  # the freed slot goes to c, the oldest waiting
    assert await backend.acquire("acct", "c", 3.0, 2, 30)
    assert await backend.count("acct") == 2
    await backend.release(["b"])
    assert await backend.acquire("acct", "d", 4.0, 2, 30)


async def test_a_lease_not_renewed_runs_out(backend: StateBackend) -> None:
    assert await backend.acquire("acct", "dies", 1.0, 1, 0.3)  # its server stops renewing it
    assert await backend.acquire("acct2", "lives", 1.0, 1, 0.3)
    assert not await backend.acquire("acct", "next", 2.0, 1, 30)
    for _ in range(4):
        await anyio.sleep(0.1)
        await backend.renew(["lives"], 0.3)
    assert await backend.acquire("acct", "next", 2.0, 1, 30)  # the dead server's slot came back
    assert not await backend.acquire("acct2", "other", 2.0, 1, 30)  # the renewed one did not


async def test_a_job_record_is_found_by_every_id(backend: StateBackend) -> None:
    record: dict[str, Any] = {"key": "nonce-1", "status": "in_progress", "version": 3}
    await backend.put_jobs([(record, ["nonce-1", "progress-2", "result-3"])])
    for key in ("nonce-1", "progress-2", "result-3"):
        assert await backend.get_job(key) == record
    assert await backend.get_job("unknown") is None


async def test_an_unreachable_redis_is_an_error_naming_mj_state_url(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    from tests.redis_server import free_port

    url = f"redis://user:secret-pass@127.0.0.1:{free_port()}/0"
    backend = open_backend(url, tmp_path)
    with pytest.raises(StateError) as refused:
        await backend.acquire("acct", "a", 1.0, 1, 30)
    assert "MJ_STATE_URL=redis://user:***@127.0.0.1" in str(refused.value)
    assert "secret-pass" not in str(refused.value)
    assert "secret-pass" not in safe_url(url)
    await backend.aclose()


def test_the_state_url_defaults_to_a_file_in_the_state_folder(tmp_path: Path) -> None:
    env = {"MJ_DISCORD_TOKEN": "made-up-token-abcdef", "MJ_CHANNEL_ID": "1069126859100524575"}
    settings = load_settings(env | {"MJ_STATE_DIR": str(tmp_path)})
    assert settings.state_url == f"sqlite:///{tmp_path.resolve() / 'state.sqlite3'}"
    assert load_settings(env | {"MJ_STATE_URL": "redis://cache:6379/2"}).state_url == "redis://cache:6379/2"
    with pytest.raises(Exception, match="MJ_STATE_URL must be") as bad:
        load_settings(env | {"MJ_STATE_URL": "postgres://u:hunter2@db/x"})
    assert "hunter2" not in str(bad.value)


async def test_records_are_read_in_one_call_by_their_keys(backend: StateBackend) -> None:
    records = [{"key": f"job-{i}", "version": i} for i in range(3)]
    await backend.put_jobs([(record, [record["key"]]) for record in records])
    assert await backend.get_records(["job-2", "missing", "job-0"]) == [records[2], None, records[0]]


@pytest.mark.anyio
async def test_a_running_job_whose_server_stopped_writing_is_read_from_discord_instead() -> None:
    import time as clock

    from mcp_midjourney.engine.state import MemoryBackend
    from mcp_midjourney.engine.state_jobs import STALE, SharedJobs
    from mcp_midjourney.engine.store import JobStore

    backend = MemoryBackend()
    jobs = SharedJobs(backend, JobStore(), account_key=lambda n: n, account_name=lambda k: k, spawn=lambda *a: None)
    record = {"key": "1300000000000000001", "nonce": "1300000000000000001", "kind": "imagine", "server": "gone"}
    record |= {"status": "in_progress", "progress": 50, "version": 3, "account_key": None}
    await backend.put_jobs([(record | {"written": clock.time() - STALE - 1}, ["1300000000000000002"])])
    assert await jobs.find("1300000000000000002") is None  # its server stopped: the caller asks Discord
    await backend.put_jobs([(record | {"written": clock.time()}, ["1300000000000000002"])])
    follower = await jobs.find("1300000000000000002")
    assert follower is not None and follower.progress == 50  # written lately: its server still runs it
