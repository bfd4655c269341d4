"""What the agent meets: the tool list and its size, resources, the prompt guide, the prompt check that costs
nothing, and a usage budget it cannot blow through (even concurrently, even across a restart)."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import anyio
import pytest

from tests.e2e.conftest import data, spawn, text

pytestmark = pytest.mark.anyio
TOOLS = {"imagine", "press_button", "get_message", "describe", "blend", "check_prompt", "account"}


async def test_tool_list_is_lean_and_annotated(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        tools = (await client.list_tools()).tools
        server = client.server_info
    assert {t.name for t in tools} == TOOLS
    wire = [t.model_dump(mode="json", exclude_none=True, by_alias=True) for t in tools]
    whole = json.dumps({"tools": wire})
    # What most frameworks give the model: names, descriptions and input schemas (not the output schemas).
    visible = json.dumps([{k: t[k] for k in ("name", "description", "inputSchema")} for t in wire])
    print(f"\ntools/list: {len(tools)} tools, {len(whole):,} characters of JSON (model-visible part {len(visible):,})")
    assert len(whole) <= 12_000 and len(visible) <= 8_000, "the tool list costs the model tokens on every turn"
    assert "null" not in whole and "\n    " not in whole  # no nullable type lists, no docstring indentation
    by_name = {t.name: t for t in tools}
    assert by_name["get_message"].annotations.read_only_hint is True
    assert by_name["imagine"].annotations.read_only_hint is False
    assert all(t.output_schema for t in tools)
    assert all(len(t.description or "") > 80 for t in tools)
    # The descriptions stand alone (most frameworks never show the model the server's instructions).
    imagine = by_name["imagine"].description or ""
    assert "1 top-left" in imagine and "get_message" in imagine and "max 40" in imagine
    assert all(p in imagine for p in ("--ar", "--stylize", "--chaos", "--no", "--seed", "--sref", "--oref", "--niji"))
    assert "needs_input" in (by_name["press_button"].description or "")
    assert server is not None and server.version == version("mcp-midjourney-discord")


async def test_invalid_prompt_costs_no_discord_request(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        data(await client.call_tool("imagine", {"prompt": "warm up", "wait_seconds": 20}))
        before = sim.stats().get("POST /interactions", 0)
        bad = await client.call_tool("imagine", {"prompt": "a cat --ar 16/9 --chaos 400"})
        assert bad.is_error
        message = text(bad)
        assert "not sent" in message and "--ar" in message and "16:9" in message and "chaos" in message
        check = (await client.call_tool("check_prompt", {"prompt": "a cat --ar 16/9"})).structured_content
        assert check["ok"] is False and check["errors"]
        unknown = data(await client.call_tool("imagine", {"prompt": "a dog --zzz 3", "wait_seconds": 0}))
        assert any("--zzz" in w for w in unknown["warnings"])
        assert sim.stats().get("POST /interactions", 0) == before + 1  # only the valid one went out


async def test_prompt_guide_and_resources(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        prompts = (await client.list_prompts()).prompts
        assert "midjourney_guide" in {p.name for p in prompts}
        guide = await client.get_prompt("midjourney_guide")
        body = guide.messages[0].content.text
        assert "--ar" in body and "vary" in body.lower()
        listed = await client.read_resource("midjourney://guide")
        assert "--ar" in listed.contents[0].text

        grid = data(await client.call_tool("imagine", {"prompt": "a resource", "wait_seconds": 20}))
        job = await client.read_resource(f"midjourney://jobs/{grid['message_id']}")
        assert json.loads(job.contents[0].text)["job_uuid"] == grid["job_uuid"]
        templates = (await client.list_resource_templates()).resource_templates
        assert any("midjourney://jobs/" in t.uri_template for t in templates)


async def test_budget_holds_under_concurrency_and_across_a_restart(sim, server_log: Path, tmp_path: Path) -> None:
    env = {"MJ_MAX_JOBS_PER_HOUR": "3", "MJ_STATE_DIR": str(tmp_path / "state")}
    outcomes: list[tuple[bool, str]] = []
    async with spawn(sim, server_log, env=env) as client:

        async def one(i: int) -> None:
            result = await client.call_tool("imagine", {"prompt": f"budget {i}", "wait_seconds": 0})
            outcomes.append((result.is_error, text(result)))

        async with anyio.create_task_group() as tg:
            for i in range(7):
                tg.start_soon(one, i)
    accepted = [t for err, t in outcomes if not err]
    refused = [t for err, t in outcomes if err]
    assert len(accepted) == 3 and len(refused) == 4
    assert all("MJ_MAX_JOBS_PER_HOUR" in t and "frees up" in t for t in refused)
    assert sim.stats().get("POST /interactions", 0) == 3

    async with spawn(sim, server_log, env=env) as client:
        again = await client.call_tool("imagine", {"prompt": "after restart"})
        assert again.is_error and "frees up" in text(again)
        checked = (await client.call_tool("check_prompt", {"prompt": "x"})).structured_content
        assert "0/3" in (checked["budget"] or "")
    assert sim.stats().get("POST /interactions", 0) == 3


async def test_a_malformed_budget_setting_stops_every_job_instead_of_lifting_the_budget(
    sim, server_log: Path, tmp_path: Path
) -> None:
    env = {"MJ_ACCOUNT_MAX_JOBS_PER_HOUR": "ten", "MJ_STATE_DIR": str(tmp_path / "state")}
    async with spawn(sim, server_log, env=env) as client:
        refused = await client.call_tool("imagine", {"prompt": "not with a broken budget"})
        assert refused.is_error and "MJ_ACCOUNT_MAX_JOBS_PER_HOUR" in text(refused) and "'ten'" in text(refused)
        checked = await client.call_tool("check_prompt", {"prompt": "still checkable --ar 3:2"})
        assert not checked.is_error  # the server keeps serving what needs no Discord
    assert sim.stats().get("POST /interactions", 0) == 0
