"""llama-index-tools-mcp: `BasicMCPClient` + `McpToolSpec.to_tool_list_async()`, tools called as an agent does."""

from __future__ import annotations

from typing import Any

import flow
from llama_index.tools.mcp import BasicMCPClient, McpToolSpec


class Adapter:
    name = "llama-index-tools-mcp"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        if settings["transport"] == "http":
            self.client = BasicMCPClient(settings["url"], **settings["tuned"])
        else:
            self.client = BasicMCPClient(
                settings["command"], args=settings["args"], env=settings["env"], **settings["tuned"]
            )
        report.settings.update(
            timeout=f"{self.client.timeout} s (BasicMCPClient's read timeout per call)",
            session="a new MCP session (and server process, over stdio) per tool call",
        )

    async def __aenter__(self) -> Adapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def tool_names(self) -> list[str]:
        self.tools = {t.metadata.name: t for t in await McpToolSpec(client=self.client).to_tool_list_async()}
        return [str(name) for name in self.tools]

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        report: dict[str, str | None] = {}
        for name, tool in self.tools.items():
            try:
                tool.metadata.to_openai_tool()
                report[str(name)] = None
            except Exception as exc:
                report[str(name)] = f"{type(exc).__name__}: {exc}"[:200]
        return {"ToolMetadata.to_openai_tool": report}

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        try:
            output = await self.tools[tool].acall(**args)
        except Exception as exc:  # the agent puts the error into the conversation
            cause: BaseException = exc
            while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
                cause = cause.exceptions[0]
            why = f"error text (cause: {type(cause).__name__}: {' '.join(str(cause).split())[:120]})"
            return flow.Received(f"Encountered error: {exc}", [why], error=True)
        text = str(output.content)  # what the agent adds to the chat: str() of the CallToolResult
        return flow.Received(text, [flow.text_part(text)], error=bool(getattr(output, "is_error", False)))


if __name__ == "__main__":
    flow.main(Adapter, "llama-index-tools-mcp", "llama-index-tools-mcp")
