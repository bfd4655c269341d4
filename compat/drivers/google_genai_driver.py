"""google-genai: an MCP `ClientSession` passed in `tools=[session]`, as `generate_content` converts and calls it.

No model answers here, so the driver hands google-genai's own automatic-function-calling step
(`get_function_response_parts_async`) a response holding the function call a model would make; the
FunctionResponse part it builds is what the next request sends to the model."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import flow
from google.genai import _extra_utils, _mcp_utils, types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def _response(name: str, args: dict[str, Any]) -> types.GenerateContentResponse:
    call = types.Part(function_call=types.FunctionCall(name=name, args=args))
    return types.GenerateContentResponse(
        candidates=[types.Candidate(content=types.Content(role="model", parts=[call]))]
    )


class Adapter:
    name = "google-genai"

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
        self.mcp_tools = (await self.session.list_tools()).tools
        return [t.name for t in self.mcp_tools]

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        report: dict[str, str | None] = {}
        for tool in self.mcp_tools:
            try:
                _mcp_utils.mcp_to_gemini_tool(tool)
                report[tool.name] = None
            except Exception as exc:
                report[tool.name] = f"{type(exc).__name__}: {exc}"[:200]
        # The hand-made way (and other frameworks' Gemini paths): the inputSchema as a FunctionDeclaration's parameters.
        declared: dict[str, str | None] = {}
        for tool in self.mcp_tools:
            try:
                schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", {})
                types.Tool(function_declarations=[{"name": tool.name, "parameters": schema}])
                declared[tool.name] = None
            except Exception as exc:
                declared[tool.name] = f"{type(exc).__name__}: {exc}"[:200]
        whole: dict[str, str | None] = {}
        try:
            _, self.function_map = await _extra_utils.parse_config_for_mcp_sessions(
                types.GenerateContentConfig(tools=[self.session])
            )
            whole = {t.name: None for t in self.mcp_tools}
        except Exception as exc:
            whole = {t.name: f"{type(exc).__name__}: {exc}"[:200] for t in self.mcp_tools}
            self.function_map = {}
        return {
            "GenerateContentConfig(tools=[session])": whole,
            "mcp_to_gemini_tool (each)": report,
            "FunctionDeclaration(parameters=inputSchema)": declared,
        }

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        if not self.function_map:
            raise RuntimeError("generate_content refuses the request: the tool list does not convert")
        parts = await _extra_utils.get_function_response_parts_async(_response(tool, args), self.function_map)
        response = parts[0].function_response
        assert response is not None
        sent = types.Content(role="user", parts=parts).model_dump(mode="json", exclude_none=True)
        text = json.dumps(sent)
        return flow.Received(
            text, [flow.text_part(text, "FunctionResponse JSON")], error="error" in (response.response or {})
        )


if __name__ == "__main__":
    flow.main(Adapter, "google-genai", "google-genai")
