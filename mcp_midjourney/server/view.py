"""The result view: an MCP App (the `io.modelcontextprotocol/ui` extension) that shows the person a job.

A host that renders MCP Apps reads the `ui://` resource a tool's `_meta.ui.resourceUri` names and shows it in a
sandboxed iframe beside the tool result; the view (server/view.html) draws the job from the result's structured
content (`JobView`) and presses buttons through the host's `tools/call` of `press_button`.

The SDK's `Apps` serves the resource and advertises the extension; the binding itself is per client: `AppsGate`
stamps `_meta.ui` on the job tools only in the tools/list a client that negotiated Apps receives, so for every other
client the tool list, the resource list and every tool result stay exactly what they were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from mcp.server.apps import Apps, ResourceCsp, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from pydantic import BaseModel

from ..config import DEFAULT_API_BASE, DEFAULT_CDN_BASE, Settings

VIEW_URI = "ui://midjourney/job.html"
# The tools whose result is a job the view can draw. Any other tool returning a `JobView` (its output schema has
# a message_id and buttons: the video results, say) is bound as well.
JOB_TOOLS = frozenset({"imagine", "press_button", "get_message", "blend", "describe"})
# Where Discord serves attachments and their resized copies (the result messages' images and videos).
DISCORD_MEDIA = ("https://cdn.discordapp.com", "https://media.discordapp.net")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$")


def media_origins(settings: Settings | None) -> list[str]:
    """The origins the view may load images and videos from: Discord's CDN, Midjourney's (MJ_CDN_BASE), and a
    stand-in Discord's own origin (MJ_DISCORD_API_BASE off discord.com: the simulator serves its attachments)."""
    api = settings.api_base if settings is not None else DEFAULT_API_BASE
    cdn = settings.cdn_base if settings is not None else DEFAULT_CDN_BASE
    found = [*DISCORD_MEDIA, _origin(cdn)]
    if _origin(api) != _origin(DEFAULT_API_BASE):
        found.append(_origin(api))
    return list(dict.fromkeys(o for o in found if _ORIGIN.match(o)))


def view_html(origins: Iterable[str]) -> str:
    """The view's HTML, its own Content-Security-Policy naming `origins` as the only places media come from."""
    sources = " ".join(origins)
    template = resources.files("mcp_midjourney.server").joinpath("view.html").read_text(encoding="utf-8")
    return template.replace("{{MEDIA_SOURCES}}", sources)


def apps_extension(settings: Settings | None) -> Apps:
    """The SDK's Apps extension carrying the view (the tools are bound per client by `AppsGate`)."""
    origins = media_origins(settings)
    apps = Apps()
    apps.add_html_resource(
        VIEW_URI,
        view_html(origins),
        name="midjourney-job",
        title="Midjourney result",
        description="Shows a Midjourney job: its image or video, status and buttons.",
        csp=ResourceCsp(resource_domains=origins),
        prefers_border=True,
    )
    return apps


def returns_job(output_schema: dict[str, Any] | None) -> bool:
    """Whether a tool's output schema is a job's (a `JobView`)."""
    properties = (output_schema or {}).get("properties") or {}
    return "message_id" in properties and "buttons" in properties


class AppsGate:
    """Middleware: for a client that negotiated MCP Apps, tools/list binds the job tools to the view; for any other
    client tools/list and resources/list are what they would be without the extension (no `_meta.ui`, no view)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method not in ("tools/list", "resources/list"):
            return result
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not isinstance(result, dict):
            return result
        if ctx.method == "tools/list" and client_supports_apps(ctx):
            for tool in result.get("tools") or []:
                if tool.get("name") in JOB_TOOLS or returns_job(tool.get("outputSchema")):
                    # A new dict: the tool's registered meta is shared by every client's listing.
                    tool["_meta"] = {**(tool.get("_meta") or {}), "ui": {"resourceUri": VIEW_URI}}
        elif ctx.method == "resources/list" and not client_supports_apps(ctx):
            result["resources"] = [
                r for r in result.get("resources") or [] if not str(r.get("uri")).startswith("ui://")
            ]
        return result


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
