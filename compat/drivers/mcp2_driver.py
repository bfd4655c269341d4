"""The mcp SDK 2.x client (`mcp.Client`), the one this project's own tests use: the reference row, at its defaults.

It runs in the project's own venv, so it needs no install and is the row the offline smoke test runs."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import flow
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


def received_of(result: Any) -> flow.Received:
    texts, parts = [], []
    for block in result.content:
        if block.type == "text":
            texts.append(block.text)
            parts.append(flow.text_part(block.text))
        elif block.type == "image":
            texts.append(f"[image {block.mime_type}]")
            parts.append(f"image {len(block.data):,}")
    if result.structured_content is not None:
        parts.append(f"structured {len(json.dumps(result.structured_content)):,}")
    return flow.Received("\n".join(texts), parts, error=bool(result.is_error))


class Adapter:
    name = "mcp SDK 2.x"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        self.settings = settings
        self.stack = AsyncExitStack()
        report.settings["read_timeout_seconds"] = "None (waits as long as the server takes)"

    async def __aenter__(self) -> Adapter:
        s = self.settings
        if s["transport"] == "http":
            transport: Any = streamable_http_client(s["url"])
        else:
            transport = stdio_client(StdioServerParameters(command=s["command"], args=s["args"], env=s["env"]))
        self.client = await self.stack.enter_async_context(Client(transport, mode="legacy"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    async def tool_names(self) -> list[str]:
        self.tools = (await self.client.list_tools()).tools
        return [t.name for t in self.tools]

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        return {"none (the host reads inputSchema)": {t.name: None for t in self.tools}}

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        return received_of(await self.client.call_tool(tool, args))


if __name__ == "__main__":
    flow.main(Adapter, "mcp SDK 2.x client", "mcp")
