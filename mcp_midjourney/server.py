"""The MCP tools and how their results look.

Tools validate input, call the engine, and render a job as a short text summary plus structured content
(`JobView`, which is the tools' outputSchema). Errors the model can act on are `ToolError`s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from .config import ConfigError, Settings, load_settings
from .engine import Engine, EngineError
from .models import ButtonView, JobStatus, JobView
from .store import Job

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 6000
_MESSAGE_ID = re.compile(r"^\d{15,21}$")

INSTRUCTIONS = """\
Generate and refine images with Midjourney (through Discord).
Workflow: imagine(prompt) makes a 2x2 grid of four candidates. Then press_button on the returned message_id:
U1-U4 upscales one image (1 = top-left, 2 = top-right, 3 = bottom-left, 4 = bottom-right), V1-V4 makes four
variations of one, reroll (🔄) makes a new grid from the same prompt. An upscaled image has its own buttons
(vary_subtle, vary_strong, zoom_out_2x, pan_left, upscale_subtle, ...): the result lists the ones you may press.
Jobs take 30-90 s. Each call waits at most wait_seconds (capped well under a minute); a job still running comes
back with status queued or in_progress: call get_message(message_id, wait_seconds=30) until it is completed or
failed. Always pass the latest message_id a result gave you.
"""


@dataclass
class AppState:
    """What lives as long as the server: the engine, or why there is none."""

    engine: Engine | None = None
    settings: Settings | None = None
    config_error: str | None = None


@asynccontextmanager
async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
    """Start the Discord session in the background; a bad configuration is reported at the first tool call."""
    state = AppState()
    try:
        state.settings = load_settings()
    except ConfigError as exc:
        state.config_error = str(exc)
        log.error("%s The server keeps running; tools will report this.", exc)
    async with anyio.create_task_group() as tg:
        if state.settings is not None:
            engine = Engine(state.settings)
            await tg.start(engine.run)
            state.engine = engine
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()


def _engine(ctx: Context[AppState]) -> Engine:
    state: AppState = ctx.request_context.lifespan_context
    if state.engine is None:
        raise ToolError(state.config_error or "The server is not configured.")
    return state.engine


def _check_id(message_id: str) -> str:
    message_id = message_id.strip()
    if not _MESSAGE_ID.match(message_id):
        raise ToolError(
            f"message_id {message_id!r} is not a Discord message id: pass the numeric message_id that imagine, "
            "press_button or get_message returned (e.g. '1083788807800897597')."
        )
    return message_id


def _wait(engine: Engine, wait_seconds: float | None) -> float:
    value = engine.settings.default_wait if wait_seconds is None else wait_seconds
    return max(0.0, min(float(value), engine.settings.wait_ceiling))


def next_hint(job: Job) -> str:
    """One line telling the model what it can do now."""
    handle = job.handle
    if job.status is JobStatus.COMPLETED:
        names = {b.name for b in job.buttons}
        if {"U1", "V1"} <= names:
            return (
                f"Pick an image: press_button(message_id='{handle}', button='U1'..'U4') to upscale it, 'V1'..'V4' "
                "for variations, or 'reroll' for a new grid."
            )
        if job.buttons:
            some = ", ".join(b.name for b in job.buttons[:6])
            return f"Refine with press_button(message_id='{handle}', button=...), e.g. {some}."
        return "Done: use image_url."
    if job.status is JobStatus.FAILED:
        return "The job failed: read error, adjust the prompt or settings, and call imagine again."
    if job.status is JobStatus.NEEDS_INPUT:
        return f"Midjourney asks for a prompt: call press_button(message_id='{handle}', ...) with prompt=..."
    return f"Still running: call get_message(message_id='{handle}', wait_seconds=30) to wait for the result."


def job_view(job: Job, warnings: list[str] | None = None) -> JobView:
    return JobView(
        message_id=job.handle,
        status=job.status,
        progress=max(0, min(100, job.progress)),
        kind=job.kind,
        prompt=job.prompt,
        job_uuid=job.job_uuid,
        image_url=job.image_url,
        image_urls=list(job.image_urls),
        preview_url=job.preview_url,
        buttons=[ButtonView(label=b.label, name=b.name) for b in job.buttons if not b.disabled],
        parent_message_id=job.parent_message_id,
        parent_button=job.parent_button,
        error=job.error,
        warnings=list(warnings or []),
        next=next_hint(job),
    )


def summary(view: JobView) -> str:
    lines = [f"{view.kind} {view.status.value}" + (f" {view.progress}%" if view.status == "in_progress" else "")]
    lines.append(f"message_id: {view.message_id}")
    if view.error:
        lines.append(f"error: {view.error}")
    if view.image_url:
        lines.append(f"image: {view.image_url}")
    for i, url in enumerate(view.image_urls if len(view.image_urls) > 1 else [], start=1):
        lines.append(f"image {i}: {url}")
    if view.buttons:
        lines.append(
            "buttons: " + ", ".join(b.name if b.name == b.label else f"{b.label} ({b.name})" for b in view.buttons)
        )
    lines.extend(f"warning: {w}" for w in view.warnings)
    lines.append(f"next: {view.next}")
    return "\n".join(lines)


def render(engine: Engine, job: Job) -> CallToolResult:
    warnings = []
    if engine.account_problem:
        warnings.append(f"account needs a person: {engine.account_problem}")
    view = job_view(job, warnings)
    return CallToolResult(
        content=[TextContent(type="text", text=summary(view))],
        structured_content=view.model_dump(mode="json"),
    )


async def _wait_with_progress(engine: Engine, job: Job, seconds: float, ctx: Context[AppState]) -> Job:
    last = [-1]

    async def report(current: Job) -> None:
        if current.progress > last[0]:
            last[0] = current.progress
            # The handle rides along so a client that gives up on the call can still follow the job.
            await ctx.report_progress(
                current.progress,
                100,
                f"{current.kind} {current.status.value.replace('_', ' ')} {current.progress}% "
                f"(message_id {current.handle})",
            )

    await report(job)
    return await engine.wait(job, seconds, report)


def _handle(exc: EngineError) -> ToolError:
    return ToolError(str(exc))


def build_server() -> MCPServer[AppState]:
    """The MCP server with its tools (no I/O until it runs)."""
    server: MCPServer[AppState] = MCPServer("midjourney", instructions=INSTRUCTIONS, lifespan=lifespan)

    @server.tool(
        annotations=ToolAnnotations(
            title="Imagine",
            readOnlyHint=False,
            destructiveHint=False,
            idempotentHint=False,
            openWorldHint=True,
        )
    )
    async def imagine(
        prompt: Annotated[str, Field(description="The Midjourney prompt, parameters included (e.g. '--ar 16:9').")],
        ctx: Context[AppState],
        wait_seconds: Annotated[
            float | None,
            Field(description="How long to wait for the result (capped near 40 s; 0 returns at once)."),
        ] = None,
    ) -> Annotated[CallToolResult, JobView]:
        """Start a Midjourney /imagine job: four candidate images in a 2x2 grid.

        Returns the job with its message_id, status and, once completed, the grid's image_url, the four
        image_urls and the buttons to press next (U1-U4 upscale, V1-V4 vary, reroll). If it is still running
        when the wait ends, call get_message with the returned message_id.
        """
        engine = _engine(ctx)
        text = " ".join(prompt.split())
        if not text:
            raise ToolError("prompt is empty: describe the image, e.g. 'a lighthouse in a storm, oil painting'.")
        if len(text) > MAX_PROMPT_CHARS:
            raise ToolError(f"prompt is {len(text)} characters; Midjourney accepts at most {MAX_PROMPT_CHARS}.")
        try:
            job = await engine.imagine(text)
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        except EngineError as exc:
            raise _handle(exc) from None
        return render(engine, job)

    @server.tool(
        annotations=ToolAnnotations(
            title="Press a button",
            readOnlyHint=False,
            destructiveHint=False,
            idempotentHint=False,
            openWorldHint=True,
        )
    )
    async def press_button(
        message_id: Annotated[str, Field(description="The message_id of a completed job, as a tool returned it.")],
        button: Annotated[
            str,
            Field(
                description="A button of that message: its label ('U2', 'V3', '🔄', 'Vary (Strong)'), short name "
                "('U2', 'reroll', 'vary_strong', 'zoom_out_2x', 'pan_left') or raw custom_id."
            ),
        ],
        ctx: Context[AppState],
        wait_seconds: Annotated[float | None, Field(description="How long to wait for the result.")] = None,
    ) -> Annotated[CallToolResult, JobView]:
        """Press one of the buttons under a Midjourney result: upscale, vary, reroll, zoom, pan, ...

        Returns the new job the press starts (its own message_id, status, images and buttons). Pressing the
        same U button twice returns the first result. Use the buttons listed in the previous result.
        """
        engine = _engine(ctx)
        message_id = _check_id(message_id)
        if not button.strip():
            raise ToolError("button is empty: pass a label or name from the result's buttons, e.g. 'U1'.")
        try:
            job = await engine.press(message_id, button.strip())
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        except EngineError as exc:
            raise _handle(exc) from None
        return render(engine, job)

    @server.tool(
        annotations=ToolAnnotations(
            title="Get a job",
            readOnlyHint=True,
            destructiveHint=False,
            idempotentHint=True,
            openWorldHint=True,
        )
    )
    async def get_message(
        message_id: Annotated[str, Field(description="A message_id a tool returned.")],
        ctx: Context[AppState],
        wait_seconds: Annotated[
            float, Field(description="Wait up to this long for the job to finish (0 = answer now).")
        ] = 0,
    ) -> Annotated[CallToolResult, JobView]:
        """Get the current state of a Midjourney job, optionally waiting for it to finish.

        Use it to follow a job that was still running, or to read any Midjourney message again (even after a
        server restart). The returned message_id may change once the result arrives: use the new one.
        """
        engine = _engine(ctx)
        message_id = _check_id(message_id)
        try:
            job = await engine.get(message_id)
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        except EngineError as exc:
            raise _handle(exc) from None
        return render(engine, job)

    return server
