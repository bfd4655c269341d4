"""The account pool end to end: jobs spread over accounts, follow-ups stay with their owner, a failing account's
queued work moves to the others, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from tests.e2e.conftest import data, spawn, text

pytestmark = pytest.mark.anyio


def pool(sim, extra: int, *, concurrency: int = 1, queue_size: int = 0) -> tuple[str, list[dict[str, str]]]:
    accounts = [
        {"name": "main", "token": sim.token, "guild_id": sim.guild_id, "channel_id": sim.channel_id},
    ]
    for i in range(extra):
        token = f"made-up-pool-token-{i}-abcdef"
        sim.add_account(token, f"pool_user_{i}")
        accounts.append({"name": f"pool{i}", "token": token, "channel_id": sim.account_channel(token)})
    for account in accounts:
        account |= {"concurrency": concurrency, "queue_size": queue_size}
    return json.dumps(accounts), accounts


def results_per_channel(sim, accounts: list[dict[str, str]]) -> dict[str, int]:
    counts = {}
    for account in accounts:
        messages = sim.channel_messages(account["channel_id"])
        counts[account["name"]] = sum(1 for m in messages if m.get("attachments") and "(fast)" in m["content"])
    return counts


async def test_jobs_spread_over_accounts_and_follow_ups_stay_with_their_owner(sim, server_log: Path) -> None:
    spec, accounts = pool(sim, 2)
    env = {"MJ_ACCOUNTS": spec}
    views: list[dict] = []
    async with spawn(sim, server_log, env=env, drop=("MJ_DISCORD_TOKEN", "MJ_CHANNEL_ID", "MJ_GUILD_ID")) as client:

        async def one(i: int) -> None:
            view = data(await client.call_tool("imagine", {"prompt": f"pool job {i % 2}", "wait_seconds": 30}))
            if view["status"] != "completed":
                view = data(
                    await client.call_tool("get_message", {"message_id": view["message_id"], "wait_seconds": 30})
                )
            views.append(view)

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
        assert [v["status"] for v in views] == ["completed"] * 6
        counts = results_per_channel(sim, accounts)
        assert counts == {"main": 2, "pool0": 2, "pool1": 2}, counts

        # A follow-up goes through the account whose channel holds the message.
        owner = next(
            a for a in accounts if any(m["id"] == views[0]["message_id"] for m in sim.channel_messages(a["channel_id"]))
        )
        upscale = data(
            await client.call_tool(
                "press_button", {"message_id": views[0]["message_id"], "button": "U2", "wait_seconds": 30}
            )
        )
        assert upscale["status"] == "completed"
        assert any(m["id"] == upscale["message_id"] for m in sim.channel_messages(owner["channel_id"]))


async def test_a_failing_account_hands_its_queued_work_to_the_others(sim, server_log: Path) -> None:
    sim.set_job_duration(1.5)
    spec, accounts = pool(sim, 1, concurrency=1, queue_size=2)
    env = {"MJ_ACCOUNTS": spec}
    async with spawn(sim, server_log, env=env, drop=("MJ_DISCORD_TOKEN",)) as client:
        started = [
            data(await client.call_tool("imagine", {"prompt": f"doomed or not {i}", "wait_seconds": 0}))
            for i in range(6)
        ]
        await anyio.sleep(0.3)
        sim.revoke_account(accounts[1]["token"])  # pool0 dies with jobs queued on it
        finals = [
            data(await client.call_tool("get_message", {"message_id": view["message_id"], "wait_seconds": 40}))
            for view in started
        ]
        statuses = [v["status"] for v in finals]
        assert "queued" not in statuses and "in_progress" not in statuses, statuses  # nothing stuck
        completed = [v for v in finals if v["status"] == "completed"]
        failed = [v for v in finals if v["status"] == "failed"]
        # Only a job that was already rendering on the dead account may fail, and it must say why.
        assert len(failed) <= 1, failed
        assert all("stopped mid-job" in v["error"] for v in failed)
        assert len(completed) >= 5
        assert all(v["job_uuid"] for v in completed)
        status = await client.call_tool("get_message", {"message_id": completed[0]["message_id"]})
        assert any("pool0" in w and "authentication failed" in w for w in data(status)["warnings"])


async def test_accounts_with_budgets_of_their_own_never_run_more_than_those_allow(
    sim, server_log: Path, tmp_path: Path
) -> None:
    spec, accounts = pool(sim, 1, concurrency=1, queue_size=3)
    limits = {"main": 1, "pool0": 2}
    spec = json.dumps([a | {"max_jobs_per_hour": limits[a["name"]]} for a in accounts])
    env = {"MJ_ACCOUNTS": spec, "MJ_STATE_DIR": str(tmp_path / "state")}
    outcomes: list[tuple[bool, str, dict | None]] = []
    async with spawn(sim, server_log, env=env, drop=("MJ_DISCORD_TOKEN",)) as client:

        async def one(i: int) -> None:
            result = await client.call_tool("imagine", {"prompt": f"own budgets {i}", "wait_seconds": 0})
            outcomes.append((result.is_error, text(result), None if result.is_error else data(result)))

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
        refused = [message for error, message, _ in outcomes if error]
        started = [view for error, _, view in outcomes if not error]
        assert len(started) == 3 and len(refused) == 3, refused
        assert all("No account has budget left." in m and "frees up" in m for m in refused), refused
        finals = [
            data(await client.call_tool("get_message", {"message_id": v["message_id"], "wait_seconds": 30}))
            for v in started
        ]
        assert [v["status"] for v in finals] == ["completed"] * 3
        assert all("Budget: jobs left 0/" in (v["budget"] or "") for v in finals), [v["budget"] for v in finals]
        view = (await client.call_tool("account", {})).structured_content
        assert {a["name"]: a["budget"] for a in view["accounts"]} == {
            "main": "Budget: jobs left 0/1 this hour (upscales count as jobs)",
            "pool0": "Budget: jobs left 0/2 this hour (upscales count as jobs)",
        }
    assert results_per_channel(sim, accounts) == {"main": 1, "pool0": 2}
    assert sim.stats().get("POST /interactions", 0) == 3
