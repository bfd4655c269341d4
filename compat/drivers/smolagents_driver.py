"""smolagents: `MCPClient` (mcpadapt) at its defaults, tools called as `ToolCallingAgent.execute_tool_call` does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import flow
from mcp import StdioServerParameters
from smolagents import MCPClient
from smolagents.agents import AgentToolCallError, AgentToolExecutionError, ToolCallingAgent
from smolagents.models import get_tool_json_schema


def _arrays_without_items(schema: Any) -> list[str]:
    found = []
    for key, value in schema.get("properties", {}).items():
        types = value.get("type")
        if (types == "array" or (isinstance(types, list) and "array" in types)) and "items" not in value:
            found.append(key)
    return found


def received_of(output: Any) -> flow.Received:
    """An observation: text goes into the model's context; a PIL image is attached as an image."""
    if hasattr(output, "save") and hasattr(output, "size"):  # a PIL image
        return flow.Received("[image]", [f"image {output.size[0]}x{output.size[1]}"])
    if isinstance(output, str):
        return flow.Received(output, [flow.text_part(output)])
    text = json.dumps(output, default=str)
    return flow.Received(text, [flow.text_part(text, "structured")])


class _Runner(ToolCallingAgent):
    """Only for `execute_tool_call`: no model is ever asked."""

    def __init__(self, tools: list[Any]) -> None:
        super().__init__(tools=tools, model=None)  # type: ignore[arg-type]


class Adapter:
    name = "smolagents"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        if settings["transport"] == "http":
            self.params: Any = {"url": settings["url"], "transport": "streamable-http"}
        else:
            self.params = StdioServerParameters(command=settings["command"], args=settings["args"], env=settings["env"])
        report.settings.update(
            structured_output="False (the default; a FutureWarning says it will change)",
            client_session_timeout_seconds="5 (an int, which mcpadapt ignores: no timeout applies)",
        )

    async def __aenter__(self) -> Adapter:
        self.client = await asyncio.to_thread(MCPClient, self.params)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.client.disconnect)

    async def tool_names(self) -> list[str]:
        self.tools = {t.name: t for t in self.client.get_tools()}
        self.agent = _Runner(list(self.tools.values()))
        return list(self.tools)

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        report: dict[str, str | None] = {}
        for name, tool in self.tools.items():
            try:
                missing = _arrays_without_items(get_tool_json_schema(tool)["function"]["parameters"])
                report[name] = f"arrays without `items`: {', '.join(missing)}" if missing else None
            except Exception as exc:
                report[name] = f"{type(exc).__name__}: {exc}"[:200]
        return {"get_tool_json_schema": report}

    def _as_model_fills(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """A model fills every argument the converted schema lists as required (its default, else empty)."""
        parameters = get_tool_json_schema(self.tools[tool])["function"]["parameters"]
        filled = dict(args)
        neutral = {"string": "", "number": 0, "integer": 0, "boolean": False, "array": [], "object": {}}
        for key in parameters["required"]:
            if key not in filled:
                prop = parameters["properties"][key]
                kind = prop.get("type")
                filled[key] = prop["default"] if prop.get("default") is not None else neutral.get(str(kind), "")
        return filled

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        args = self._as_model_fills(tool, args)
        try:
            output = await asyncio.to_thread(self.agent.execute_tool_call, tool, args)
        except (AgentToolExecutionError, AgentToolCallError) as exc:  # the agent shows the model the error
            return flow.Received(str(exc.message), ["error text"], error=True)
        return received_of(output)


if __name__ == "__main__":
    flow.main(Adapter, "smolagents", "smolagents")
