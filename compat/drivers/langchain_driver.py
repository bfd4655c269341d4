"""langchain-mcp-adapters: `MultiServerMCPClient.get_tools()`, each tool invoked as an agent's ToolNode does."""

from __future__ import annotations

import itertools
import json
from typing import Any

import flow
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_mcp_adapters.client import MultiServerMCPClient

_ids = itertools.count(1)


def received_of(message: Any) -> flow.Received:
    """The ToolMessage's content is what the model reads (the artifact, structuredContent, stays with the app)."""
    content = message.content
    blocks = [content] if isinstance(content, str) else list(content)
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
            parts.append(f"image {len(block.get('base64') or block.get('data') or block.get('url') or ''):,}")
        else:
            texts.append(json.dumps(block, default=str))
            parts.append(flow.text_part(texts[-1], str(block.get("type"))))
    return flow.Received("\n".join(texts), parts, error=getattr(message, "status", "success") == "error")


class Adapter:
    name = "langchain-mcp-adapters"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        if settings["transport"] == "http":
            connection: dict[str, Any] = {"transport": "streamable_http", "url": settings["url"]}
        else:
            connection = {
                "transport": "stdio",
                "command": settings["command"],
                "args": settings["args"],
                "env": settings["env"],
            }
        self.client = MultiServerMCPClient({"midjourney": connection})
        report.settings["session"] = "a new MCP session (and server process, over stdio) per tool call"
        report.settings["timeout"] = "none on stdio; the HTTP transport's sse_read_timeout is 300 s"

    async def __aenter__(self) -> Adapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def tool_names(self) -> list[str]:
        self.tools = {t.name: t for t in await self.client.get_tools()}
        return list(self.tools)

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        report: dict[str, str | None] = {}
        for name, tool in self.tools.items():
            try:
                convert_to_openai_tool(tool)
                report[name] = None
            except Exception as exc:
                report[name] = f"{type(exc).__name__}: {exc}"[:200]
        return {"convert_to_openai_tool": report}

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        call = {"type": "tool_call", "name": tool, "args": args, "id": f"call_{next(_ids)}"}
        return received_of(await self.tools[tool].ainvoke(call))


if __name__ == "__main__":
    flow.main(Adapter, "langchain-mcp-adapters", "langchain-mcp-adapters")
