"""The mcp SDK 1.x client (`ClientSession`), as most hosts and older frameworks embed it, at its defaults."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import flow
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client


def received_of(result: Any) -> flow.Received:
    """A host shows the content blocks; structuredContent rides along for hosts that read it."""
    texts, parts = [], []
    for block in result.content:
        if block.type == "text":
            texts.append(block.text)
            parts.append(flow.text_part(block.text))
        elif block.type == "image":
            texts.append(f"[image {block.mimeType}]")
            parts.append(f"image {len(block.data):,}")
    if result.structuredContent is not None:
        parts.append(f"structured {len(json.dumps(result.structuredContent)):,}")
    return flow.Received("\n".join(texts), parts, error=bool(result.isError))


class Adapter:
    name = "mcp SDK 1.x"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        self.settings = settings
        self.stack = AsyncExitStack()
        report.settings["read_timeout_seconds"] = "None (waits as long as the server takes)"

    async def __aenter__(self) -> Adapter:
        s = self.settings
        if s["transport"] == "http":
            read, write, _ = await self.stack.enter_async_context(streamablehttp_client(s["url"]))
        else:
            params = StdioServerParameters(command=s["command"], args=s["args"], env=s["env"])
            read, write = await self.stack.enter_async_context(stdio_client(params))
        self.session = await self.stack.enter_async_context(ClientSession(read, write))
        await self.session.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    async def tool_names(self) -> list[str]:
        self.tools = (await self.session.list_tools()).tools
        return [t.name for t in self.tools]

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        return {"none (the host reads inputSchema)": {t.name: None for t in self.tools}}

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        return received_of(await self.session.call_tool(tool, args))


if __name__ == "__main__":
    flow.main(Adapter, "mcp SDK 1.x client", "mcp")
