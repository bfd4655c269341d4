"""Every agent framework's own schema converter accepts every tool of the real tools/list (issue 13).

The tool list comes from the server spawned over stdio; each converter is the framework's own code, run as the
framework runs it when it turns an MCP tool into a tool its model can call. A converter missing from the venv
skips with the reason (they come with the `test` extra).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from mcp.types import Tool

from tests.e2e.conftest import spawn

TOOLS = ["imagine", "press_button", "get_message", "describe", "blend", "check_prompt", "account"]


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tool]:
    log = tmp_path_factory.mktemp("converters") / "server-stderr.log"

    async def listed() -> list[Tool]:
        async with spawn(None, log) as client:  # no Discord settings: tools/list needs none
            return (await client.list_tools()).tools

    return {t.name: t for t in anyio.run(listed)}


def walk(schema: Any) -> Iterator[dict[str, Any]]:
    """Every sub-schema (dict) of a JSON schema."""
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from walk(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from walk(value)


def test_tools_list_has_no_type_lists_and_every_array_has_items(tools: dict[str, Tool]) -> None:
    assert sorted(tools) == sorted(TOOLS)
    for tool in tools.values():
        for schema in (tool.input_schema, tool.output_schema or {}):
            for sub in walk(schema):
                assert not isinstance(sub.get("type"), list), (tool.name, sub)
                if sub.get("type") == "array":
                    assert "items" in sub, (tool.name, sub)


def _google_genai(tool: Tool) -> Any:
    types = pytest.importorskip("google.genai.types")
    from google.genai import _mcp_utils  # google-genai's own MCP path (client.models.generate_content(tools=[session]))

    declared = types.FunctionDeclaration(name=tool.name, description=tool.description, parameters=tool.input_schema)
    assert declared.parameters is not None
    json_declared = types.FunctionDeclaration(name=tool.name, parameters_json_schema=tool.input_schema)
    assert json_declared.parameters_json_schema
    return _mcp_utils.mcp_to_gemini_tool(tool).model_dump(mode="json", exclude_none=True)


def _anthropic_strict(tool: Tool) -> Any:
    anthropic = pytest.importorskip("anthropic")
    return anthropic.transform_schema(copy.deepcopy(tool.input_schema))


def _openai_agents_strict(tool: Tool) -> Any:
    strict_schema = pytest.importorskip("agents.strict_schema")
    return strict_schema.ensure_strict_json_schema(copy.deepcopy(tool.input_schema))


def _pydantic_ai_openai(tool: Tool) -> Any:
    openai_profile = pytest.importorskip("pydantic_ai.profiles.openai")
    return openai_profile.OpenAIJsonSchemaTransformer(copy.deepcopy(tool.input_schema), strict=True).walk()


def _pydantic_ai_google(tool: Tool) -> Any:
    google_profile = pytest.importorskip("pydantic_ai.profiles.google")
    return google_profile.GoogleJsonSchemaTransformer(copy.deepcopy(tool.input_schema)).walk()


def _smolagents_adapter() -> Any:
    """mcpadapt's SmolAgentsAdapter (what smolagents' ToolCollection.from_mcp converts with).

    mcpadapt's core imports mcp 1.x's client names (`streamablehttp_client`, `mcp.client.websocket`), so it does
    not import next to mcp 2.x: its adapter module is loaded with a stand-in for the core's abstract base, and the
    conversion itself is mcpadapt's own code.
    """
    pytest.importorskip("smolagents")
    pytest.importorskip("jsonref")
    try:
        import mcpadapt.smolagents_adapter as adapter_module
    except ImportError:
        if importlib.util.find_spec("mcpadapt") is None:
            pytest.skip("mcpadapt is not installed")
        core = types.ModuleType("mcpadapt.core")
        core.ToolAdapter = type("ToolAdapter", (), {})  # type: ignore[attr-defined]
        sys.modules["mcpadapt.core"] = core
        import mcpadapt.smolagents_adapter as adapter_module
    return adapter_module


def _smolagents(tool: Tool) -> Any:
    adapter_module = _smolagents_adapter()
    smol_models = pytest.importorskip("smolagents.models")

    def call(_arguments: dict[str, Any] | None) -> Any:  # never called: only the conversion runs
        raise AssertionError("not called")

    # mcpadapt reads mcp 1.x's Tool attributes (inputSchema, ...): the same wire fields under those names.
    wire = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    converted = adapter_module.SmolAgentsAdapter().adapt(call, types.SimpleNamespace(**{"outputSchema": None, **wire}))
    return smol_models.get_tool_json_schema(converted)["function"]["parameters"]


CONVERTERS: dict[str, Callable[[Tool], Any]] = {
    "google-genai": _google_genai,
    "anthropic transform_schema": _anthropic_strict,
    "openai-agents strict": _openai_agents_strict,
    "pydantic-ai OpenAI": _pydantic_ai_openai,
    "pydantic-ai Google": _pydantic_ai_google,
    "smolagents (mcpadapt)": _smolagents,
}


@pytest.mark.parametrize("converter", list(CONVERTERS))
def test_every_converter_accepts_every_tool(converter: str, tools: dict[str, Tool]) -> None:
    failures: dict[str, str] = {}
    for name in TOOLS:
        try:
            converted = CONVERTERS[converter](tools[name])
        except pytest.skip.Exception:
            raise
        except Exception as exc:  # the converter's own failure, reported per tool
            failures[name] = f"{type(exc).__name__}: {exc}"
            continue
        # What the model is then given must still be a schema every provider reads: no type lists, items on arrays.
        for sub in walk(converted):
            if isinstance(sub.get("type"), list) and len(sub["type"]) > 1:
                failures[name] = f"type list left in {json.dumps(sub)[:200]}"
            elif str(sub.get("type", "")).lower() == "array" and "items" not in sub:
                failures[name] = f"array without items: {json.dumps(sub)[:200]}"
    assert not failures, f"{converter} rejects: {json.dumps(failures, indent=1)}"
