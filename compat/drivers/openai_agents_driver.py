"""openai-agents: `MCPServerStdio` / `MCPServerStreamableHttp` at their defaults, tools as an `Agent` gets them."""

from __future__ import annotations

import itertools
import json
from typing import Any

import flow
from agents import Agent, RunContextWrapper
from agents.mcp import MCPServerStdio, MCPServerStreamableHttp
from agents.strict_schema import ensure_strict_json_schema
from agents.tool_context import ToolContext

_ids = itertools.count(1)


def received_of(output: Any) -> flow.Received:
    """The FunctionTool's output, which the runner turns into the model's function_call_output."""
    items = output if isinstance(output, list) else [output]
    texts, parts = [], []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
            parts.append(flow.text_part(item))
        elif isinstance(item, dict) and item.get("type") == "text":
            texts.append(item["text"])
            parts.append(flow.text_part(item["text"]))
        elif isinstance(item, dict) and item.get("type") == "image":
            texts.append("[image]")
            parts.append(f"image {len(item.get('image_url') or ''):,}")
        else:
            texts.append(str(item))
            parts.append(flow.text_part(str(item), type(item).__name__))
    text = "\n".join(texts)
    return flow.Received(text, parts, error=text.startswith("An error occurred while running the tool"))


class Adapter:
    name = "openai-agents"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        if settings["transport"] == "http":
            self.server: Any = MCPServerStreamableHttp(params={"url": settings["url"]}, **settings["tuned"])
        else:
            params = {"command": settings["command"], "args": settings["args"], "env": settings["env"]}
            self.server = MCPServerStdio(params=params, **settings["tuned"])
        report.settings["client_session_timeout_seconds"] = self.server.client_session_timeout_seconds
        report.settings["max_retry_attempts"] = self.server.max_retry_attempts

    async def __aenter__(self) -> Adapter:
        await self.server.connect()
        self.agent = Agent(name="compat", mcp_servers=[self.server])
        self.context: RunContextWrapper[None] = RunContextWrapper(context=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.cleanup()

    async def tool_names(self) -> list[str]:
        self.tools = {t.name: t for t in await self.agent.get_all_tools(self.context)}
        return list(self.tools)

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        strict: dict[str, str | None] = {}
        for name, tool in self.tools.items():
            try:
                ensure_strict_json_schema(json.loads(json.dumps(tool.params_json_schema)))
                strict[name] = None
            except Exception as exc:
                strict[name] = f"{type(exc).__name__}: {exc}"[:200]
        default = {name: None for name in self.tools}
        return {"default (non-strict, as served)": default, "convert_schemas_to_strict=True": strict}

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        raw = json.dumps(args)
        ctx = ToolContext(context=None, tool_name=tool, tool_call_id=f"call_{next(_ids)}", tool_arguments=raw)
        return received_of(await self.tools[tool].on_invoke_tool(ctx, raw))


if __name__ == "__main__":
    flow.main(Adapter, "openai-agents", "openai-agents")
