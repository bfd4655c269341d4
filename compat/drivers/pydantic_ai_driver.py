"""pydantic-ai: `MCPToolset` (FastMCP's client) at its defaults, its tools as an agent run gets and calls them."""

from __future__ import annotations

import copy
import json
from typing import Any

import flow
from fastmcp.client.transports import StdioTransport
from pydantic_ai import RunContext
from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import BinaryContent
from pydantic_ai.models.test import TestModel
from pydantic_ai.profiles.google import GoogleJsonSchemaTransformer
from pydantic_ai.profiles.openai import OpenAIJsonSchemaTransformer
from pydantic_ai.providers.anthropic import AnthropicJsonSchemaTransformer
from pydantic_ai.usage import RunUsage


def _type_lists(schema: Any) -> bool:
    if isinstance(schema, dict):
        return isinstance(schema.get("type"), list) or any(_type_lists(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_type_lists(v) for v in schema)
    return False


def received_of(value: Any) -> flow.Received:
    """The tool's return value as pydantic-ai hands it to the model (a dict goes as JSON, an image as a file)."""
    items = value if isinstance(value, list) and any(isinstance(v, BinaryContent) for v in value) else [value]
    texts, parts = [], []
    for item in items:
        if isinstance(item, BinaryContent):
            texts.append(f"[{item.media_type}]")
            parts.append(f"image {len(item.data):,} bytes")
        elif isinstance(item, str):
            texts.append(item)
            parts.append(flow.text_part(item))
        else:
            texts.append(json.dumps(item, default=str))
            parts.append(flow.text_part(texts[-1], "structured"))
    return flow.Received("\n".join(texts), parts)


class Adapter:
    name = "pydantic-ai"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        if settings["transport"] == "http":
            self.toolset: MCPToolset[None] = MCPToolset(settings["url"])
        else:
            transport = StdioTransport(command=settings["command"], args=settings["args"], env=settings["env"])
            self.toolset = MCPToolset(transport)
        report.settings.update(init_timeout=5, read_timeout=300, tool_error_behavior="retry (ModelRetry)")
        self.ctx = RunContext(deps=None, model=TestModel(), usage=RunUsage())

    async def __aenter__(self) -> Adapter:
        await self.toolset.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.toolset.__aexit__(None, None, None)

    async def tool_names(self) -> list[str]:
        self.tools = await self.toolset.get_tools(self.ctx)
        return list(self.tools)

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        transformers = {
            "OpenAIJsonSchemaTransformer(strict)": lambda s: OpenAIJsonSchemaTransformer(s, strict=True),
            "GoogleJsonSchemaTransformer": GoogleJsonSchemaTransformer,
            "AnthropicJsonSchemaTransformer(strict)": lambda s: AnthropicJsonSchemaTransformer(s, strict=True),
        }
        for label, make in transformers.items():
            report: dict[str, str | None] = {}
            for name, tool in self.tools.items():
                try:
                    result = make(copy.deepcopy(tool.tool_def.parameters_json_schema)).walk()
                    lists = label.startswith("Google") and _type_lists(result)
                    report[name] = "warn: leaves `type: [X, null]` lists" if lists else None
                except Exception as exc:
                    report[name] = f"{type(exc).__name__}: {exc}"[:200]
            out[label] = report
        return out

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        try:
            value = await self.toolset.call_tool(tool, args, self.ctx, self.tools[tool])
        except ModelRetry as retry:  # the agent sends this back to the model as a retry prompt
            return flow.Received(f"RetryPromptPart: {retry.message}", ["retry prompt"], error=True)
        return received_of(value)


if __name__ == "__main__":
    flow.main(Adapter, "pydantic-ai", "pydantic-ai-slim")
