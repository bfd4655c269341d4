"""The MCP server wired: its instructions, the tools (server/tools.py), the job and guide resources, the prompt.

`build_server` is what the command line (stdio) and server/http.py (streamable HTTP) run; the server's lifetime
(settings, budget, the engine started in the background) is server/state.py's `lifespan`.
"""

from __future__ import annotations

import inspect
from importlib import resources

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from .. import __version__
from ..config import ConfigError, load_settings
from ..engine.engine import EngineError
from ..models import JOB_OUTPUT_FIELDS, JobView, lean_schema, published_schema
from . import tools
from .render import job_view
from .state import AppState, lifespan, ready_state
from .view import AppsGate, apps_extension

INSTRUCTIONS = """\
Generate and refine images with Midjourney (through Discord).
Workflow: imagine(prompt) makes a 2x2 grid of four candidates, returned with a preview you can see. Then
press_button on the returned message_id: U1-U4 picks one image (1 top-left, 2 top-right, 3 bottom-left,
4 bottom-right), V1-V4 makes four variations of one, reroll makes a new grid. A picked image has its own
buttons (vary_subtle, vary_strong, vary_region, zoom_out_2x, custom_zoom, pan_left, upscale_subtle, ...):
each result lists the ones you may press. If a result has status needs_input, Midjourney asks for a prompt:
call press_button again with prompt=... . Video: animate_high / animate_low on a picked image (or imagine
of an image with --video) gives four mp4s in video_urls; U1-U4 picks one, extend_high / extend_low lengthens it.
describe(image) suggests prompts for an image; blend(images) mixes
2-5 images; check_prompt validates a prompt for free before you spend; account() shows fast time and modes.
Jobs take 30-90 s. A call waits at most wait_seconds (default 25, max 40); a job still running comes back
queued or in_progress: call get_message(message_id, wait_seconds=25) until completed or failed. Always pass
the latest message_id a result gave you; get_message() with no id returns your latest job and lists the recent
ones. Calling a tool again with the same arguments after a timeout returns the job the first call started.
Prompting advice: the prompt 'midjourney_guide' (or resource midjourney://guide).
"""


def build_server() -> MCPServer[AppState]:
    """The MCP server with its tools, resources and prompt (no I/O until it runs)."""
    try:
        settings = load_settings()  # the result view's media hosts; a bad configuration is the lifespan's to report
    except ConfigError:
        settings = None
    server: MCPServer[AppState] = MCPServer(
        "midjourney",
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        version=__version__,
        extensions=[apps_extension(settings)],  # MCP Apps: the result view (server/view.py)
        middleware=[AppsGate()],
    )
    tools.add_tools(server)
    server.resource("midjourney://jobs/{message_id}", mime_type="application/json")(job_resource)
    server.resource("midjourney://guide", mime_type="text/markdown")(guide_resource)
    server.prompt()(midjourney_guide)

    for tool in server._tool_manager.list_tools():
        # The SDK derives input schemas from the signatures; trim them the same way as the outputs. Most
        # frameworks show the model only names, descriptions and input schemas: no docstring indentation.
        lean_schema(tool.parameters, keep_defaults=True)
        paragraphs = inspect.cleandoc(tool.description or "").split("\n\n")
        tool.description = "\n\n".join(" ".join(p.split()) for p in paragraphs)  # source line wraps dropped
        if tool.fn_metadata.output_schema is not None:
            # Output schemas are sent with every tools/list too (google-adk shows them to the model): published
            # slim, while results are still validated against the whole model.
            model = tool.fn_metadata.output_model
            fields = JOB_OUTPUT_FIELDS if model is JobView else None
            if isinstance(model, type) and issubclass(model, BaseModel):
                tool.fn_metadata.output_schema = published_schema(model, fields)
                tool.__dict__.pop("output_schema", None)  # the SDK caches the schema it read
    return server


async def job_resource(message_id: str, ctx: Context[AppState]) -> str:
    """A Midjourney job as JSON (the same fields the tools return)."""
    state = await ready_state(ctx)
    assert state.engine is not None
    try:
        job = await state.engine.get(tools.check_message_id(message_id))
    except EngineError as exc:
        raise ToolError(str(exc)) from None
    files = state.renderer.saved_files(job) if state.renderer is not None else []
    return job_view(job, files=files).model_dump_json(indent=2)


def guide_resource() -> str:
    """How to write Midjourney prompts and iterate with the buttons."""
    return _guide()


def midjourney_guide() -> str:
    """Midjourney prompting practice: prompt structure, parameters, iterating with the buttons."""
    return _guide()


def _guide() -> str:
    return resources.files("mcp_midjourney.server").joinpath("guide.md").read_text(encoding="utf-8")
