"""fast-agent: a `FastAgent` app with the server in its config at the defaults, an agent on the `passthrough`
model (no LLM), tools listed and called through the agent's MCP aggregator; the result as its Anthropic
provider (the default) converts it for the model, the schemas as its Google provider converts them."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import flow
from mcp_agent.core.fastagent import FastAgent
from mcp_agent.llm.providers.multipart_converter_anthropic import AnthropicConverter

_ids = itertools.count(1)


def received_of(block: Any) -> flow.Received:
    texts, parts = [], []
    for item in block.get("content", []):
        if item.get("type") == "text":
            texts.append(item["text"])
            parts.append(flow.text_part(item["text"]))
        elif item.get("type") == "image":
            texts.append("[image]")
            parts.append(f"image {len(item['source'].get('data', '')):,}")
        else:
            texts.append(json.dumps(item, default=str))
            parts.append(flow.text_part(texts[-1], str(item.get("type"))))
    return flow.Received("\n".join(texts), parts, error=bool(block.get("is_error")))


class Adapter:
    name = "fast-agent"

    def __init__(self, settings: dict[str, Any], report: flow.Report) -> None:
        if settings["transport"] == "http":
            server: dict[str, Any] = {"transport": "http", "url": settings["url"]}
        else:
            server = {"command": settings["command"], "args": settings["args"], "env": settings["env"]}
        config = {
            "default_model": "passthrough",
            "logger": {"level": "error", "progress_display": False, "show_chat": False, "show_tools": False},
            "mcp": {"servers": {"midjourney": server}},
        }
        path = Path(os.getcwd()) / "fastagent.config.yaml"
        path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        self.fast = FastAgent("compat", config_path=str(path), parse_cli_args=False)

        @self.fast.agent(name="compat", servers=["midjourney"], model="passthrough")
        async def _agent() -> None:
            return None

        report.settings["read_timeout_seconds"] = "None (the server config's default)"

    async def __aenter__(self) -> Adapter:
        self.running = self.fast.run()
        self.app = await self.running.__aenter__()
        self.agent = self.app.compat
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.running.__aexit__(None, None, None)

    async def tool_names(self) -> list[str]:
        self.listed = (await self.agent.list_tools()).tools
        return [t.name.removeprefix("midjourney-") for t in self.listed]

    async def schemas(self) -> dict[str, dict[str, str | None]]:
        from mcp_agent.llm.providers.google_converter import GoogleConverter

        google: dict[str, str | None] = {}
        for tool in self.listed:
            name = tool.name.removeprefix("midjourney-")
            try:
                GoogleConverter().convert_to_google_tools([tool])
                google[name] = None
            except Exception as exc:
                google[name] = f"{type(exc).__name__}: {exc}"[:200]
        anthropic = {t.name.removeprefix("midjourney-"): None for t in self.listed}
        return {
            "Anthropic provider (schemas as served)": anthropic,
            "Google provider (convert_to_google_tools)": google,
        }

    async def call(self, tool: str, args: dict[str, Any]) -> flow.Received:
        result = await self.agent.call_tool(f"midjourney-{tool}", args)
        block = AnthropicConverter.convert_tool_result_to_anthropic(result, f"toolu_{next(_ids)}")
        return received_of(block)


if __name__ == "__main__":
    flow.main(Adapter, "fast-agent", "fast-agent-mcp")
