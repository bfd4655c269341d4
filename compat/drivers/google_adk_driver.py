"""google-adk: `McpToolset` with `StdioConnectionParams` / `StreamableHTTPConnectionParams` at their defaults,
each `McpTool` run as an `LlmAgent`'s function-calling step runs it (`run_async` with a real ToolContext)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import flow
from google.adk.agents import LlmAgent
from google.adk.agents.invocation_context import InvocationContext
from google.adk.sessions import InMemorySessionService
from google.adk.tools.mcp_tool import McpToolset, StdioConnectionParams, StreamableHTTPConnectionParams
from google.adk.tools.tool_context import ToolContext
from mcp import StdioServerParameters

_ids = itertools.count(1)


class Adapter:
    name = "google-adk"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        if settings["transport"] == "http":
            params: Any = StreamableHTTPConnectionParams(url=settings["url"], **settings["tuned"])
        else:
            server = StdioServerParameters(command=settings["command"], args=settings["args"], env=settings["env"])
            params = StdioConnectionParams(server_params=server, **settings["tuned"])
        self.toolset = McpToolset(connection_params=params)
        if settings["transport"] == "http":
            report.settings["timeout"] = f"{params.timeout} s to connect; a call may take sse_read_timeout"
            report.settings["sse_read_timeout"] = f"{params.sse_read_timeout} s"
        else:
            report.settings["timeout"] = f"{params.timeout} s (StdioConnectionParams: also each call's read timeout)"

    async def __aenter__(self) -> Adapter:
        sessions = InMemorySessionService()
        session = await sessions.create_session(app_name="compat", user_id="compat")
        agent = LlmAgent(name="compat", model="gemini-2.5-flash", tools=[self.toolset])
        self.invocation = InvocationContext(
            session_service=sessions, invocation_id="compat", agent=agent, session=session
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.toolset.close()

    async def tool_names(self) -> list[str]:
        self.tools = {t.name: t for t in await self.toolset.get_tools()}
        return list(self.tools)

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        report: dict[str, str | None] = {}
        self.declared = 0
        for name, tool in self.tools.items():
            try:
                declaration = tool._get_declaration()
                self.declared += len(declaration.model_dump_json(exclude_none=True))
                report[name] = None
            except Exception as exc:
                report[name] = f"{type(exc).__name__}: {exc}"[:200]
        return {"McpTool FunctionDeclaration": report}

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        context = ToolContext(self.invocation, function_call_id=f"call_{next(_ids)}")
        result = await self.tools[tool].run_async(args=args, tool_context=context)
        # The FunctionResponse's response is this dict, sent to the model as JSON.
        text = json.dumps(result, default=str)
        error = isinstance(result, dict) and "error" in result and "content" not in result
        return flow.Received(text, [flow.text_part(text, "FunctionResponse JSON")], error=error)


if __name__ == "__main__":
    flow.main(Adapter, "google-adk", "google-adk")
