"""The anthropic SDK's MCP helpers: `async_mcp_tool(tool, session)` over the caller's mcp `ClientSession`, called
as `client.beta.messages.tool_runner` calls a tool (an exception becomes an is_error tool_result)."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import flow
from anthropic import transform_schema
from anthropic.lib.tools.mcp import async_mcp_tool
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def received_of(value: Any) -> flow.Received:
    """The tool_result content the runner sends: text and image blocks (or one JSON string)."""
    blocks = [value] if isinstance(value, str) else list(value)
    texts, parts = [], []
    for block in blocks:
        if isinstance(block, str):
            texts.append(block)
            parts.append(flow.text_part(block))
        elif block.get("type") == "text":
            texts.append(block["text"])
            parts.append(flow.text_part(block["text"]))
        elif block.get("type") == "image":
            texts.append("[image]")
            parts.append(f"image {len(block['source'].get('data', '')):,}")
        else:
            texts.append(json.dumps(block, default=str))
            parts.append(flow.text_part(texts[-1], str(block.get("type"))))
    return flow.Received("\n".join(texts), parts)


class Adapter:
    name = "anthropic"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        self.settings = settings
        self.stack = AsyncExitStack()
        report.settings["timeout"] = "none (the ClientSession is the caller's, at the mcp SDK's defaults)"

    async def __aenter__(self) -> Adapter:
        s = self.settings
        if s["transport"] == "http":
            from mcp.client.streamable_http import streamable_http_client

            read, write = await self.stack.enter_async_context(streamable_http_client(s["url"]))
        else:
            params = StdioServerParameters(command=s["command"], args=s["args"], env=s["env"])
            read, write = await self.stack.enter_async_context(stdio_client(params))
        self.session = await self.stack.enter_async_context(ClientSession(read, write))
        await self.session.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    async def tool_names(self) -> list[str]:
        listed = (await self.session.list_tools()).tools
        self.tools = {t.name: async_mcp_tool(t, self.session) for t in listed}
        return list(self.tools)

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        plain: dict[str, str | None] = {}
        strict: dict[str, str | None] = {}
        for name, tool in self.tools.items():
            try:
                tool.to_dict()
                plain[name] = None
            except Exception as exc:
                plain[name] = f"{type(exc).__name__}: {exc}"[:200]
            try:
                transform_schema(json.loads(json.dumps(tool.input_schema)))
                strict[name] = None
            except Exception as exc:
                strict[name] = f"{type(exc).__name__}: {exc}"[:200]
        return {"async_mcp_tool(...).to_dict()": plain, "transform_schema (strict tools)": strict}

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        try:
            return received_of(await self.tools[tool].call(args))
        except Exception as exc:  # the tool runner answers the model with an is_error tool_result
            return flow.Received(f"Error: {exc}", ["error text"], error=True)


if __name__ == "__main__":
    flow.main(Adapter, "anthropic SDK MCP helpers", "anthropic")
