"""MCP Apps over stdio: a client that negotiates `io.modelcontextprotocol/ui` gets the job tools bound to the result
view and can read it; any other client sees the tool list, the resources and the results it always saw."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.extension import advertise
from mcp.client.stdio import stdio_client
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from mcp_midjourney.commands.demo import server_env
from mcp_midjourney.simulator import SimulatorServer
from tests.e2e.conftest import data

pytestmark = pytest.mark.anyio

VIEW = "ui://midjourney/job.html"
JOB_TOOLS = {"imagine", "press_button", "get_message", "blend", "describe"}


@asynccontextmanager
async def apps_client(
    sim: SimulatorServer, log_path: Path, *, apps: bool, mode: str = "legacy"
) -> AsyncIterator[Client]:
    """The server spawned over stdio; the client declares MCP Apps (with the app MIME type) when `apps`."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_midjourney"], env=server_env(sim, MJ_LOG_LEVEL="DEBUG")
    )
    extensions = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})] if apps else None
    with log_path.open("a", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode, extensions=extensions) as client:  # type: ignore[arg-type]
            yield client


def model_view(tools: list[Any]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """What a model reads of the tool list: names, descriptions, input schemas."""
    return [(t.name, t.description, t.input_schema) for t in tools]


def shape(result: Any) -> tuple[list[str], list[str], bool]:
    """A tool result's form: its content block types, its structured fields, whether it is an error."""
    return [c.type for c in result.content], sorted(result.structured_content or {}), bool(result.is_error)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_apps_client_gets_the_job_tools_bound_and_the_view(sim, server_log: Path, mode: str) -> None:
    async with apps_client(sim, server_log, apps=True, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        bound = {name for name, t in tools.items() if (t.meta or {}).get("ui", {}).get("resourceUri") == VIEW}
        assert bound == JOB_TOOLS & set(tools)
        assert {"imagine", "press_button", "get_message"} <= bound
        assert "check_prompt" not in bound and "account" not in bound

        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert VIEW in listed and listed[VIEW].mime_type == APP_MIME_TYPE

        read = await client.read_resource(VIEW)
        (content,) = read.contents
        assert content.mime_type == "text/html;profile=mcp-app"
        html = content.text  # type: ignore[union-attr]
        assert html.startswith("<!doctype html>") and "ui/initialize" in html
        # Self-contained: nothing loads from outside, and media only from the hosts the settings name.
        assert not re.search(r"<(script|link)[^>]+(src|href)=", html)
        csp = (content.meta or {})["ui"]["csp"]["resourceDomains"]
        assert sim.base_url in csp and "https://cdn.discordapp.com" in csp and "https://media.discordapp.net" in csp
        assert "https://discord.com" not in csp
        policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
        assert policy is not None and f"img-src {' '.join(csp)} data:" in policy.group(1)
        assert "connect-src" not in policy.group(1) and "default-src 'none'" in policy.group(1)


async def test_a_client_without_apps_sees_what_it_always_saw(sim, server_log: Path, tmp_path: Path) -> None:
    async with apps_client(sim, server_log, apps=True) as with_apps:
        apps_tools = (await with_apps.list_tools()).tools
        apps_grid = await with_apps.call_tool("imagine", {"prompt": "a red fox", "wait_seconds": 20})
    async with apps_client(sim, tmp_path / "plain.log", apps=False) as plain:
        tools = (await plain.list_tools()).tools
        assert all("ui" not in (t.meta or {}) for t in tools)
        # What a model reads of the list does not grow with the extension: only `_meta` differs.
        assert model_view(tools) == model_view(apps_tools)
        assert [t.output_schema for t in tools] == [t.output_schema for t in apps_tools]
        assert not [r for r in (await plain.list_resources()).resources if str(r.uri).startswith("ui://")]

        grid = await plain.call_tool("imagine", {"prompt": "a red fox", "wait_seconds": 20})
        assert shape(grid) == shape(apps_grid)
        assert data(grid)["status"] == "completed" and len(data(grid)["buttons"]) == 9
