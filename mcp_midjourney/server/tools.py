"""The MCP tools and their texts (the docstrings and parameter descriptions are what the model reads).

Each tool validates its input, calls the engine, and hands the job to the `Renderer` (server/render.py): a text
summary, structured content (`JobView`, the outputSchema) and, once an image exists, a small preview. Errors
the model can act on are `ToolError`s.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..engine.budget import BudgetExceeded, Kind
from ..engine.engine import Engine, EngineError
from ..engine.store import Job
from ..midjourney import blend_options, describe_options
from ..midjourney.params import PromptCheck
from ..midjourney.params import check_prompt as check_prompt_text
from ..models import JobStatus, JobView
from .calls import Call, client_of
from .info_tools import add_info_tools
from .inputs import InputError, load_image, load_mask, mentions_local_file, upload_local_refs
from .state import AppState, ready_state

MAX_PROMPT_CHARS = 6000
_MESSAGE_ID = re.compile(r"^[0-9]{15,21}$")  # ASCII digits: \d takes any script's

# Parameters several tools share (module level: the SDK resolves annotations from the module's globals).
Wait = Annotated[float | None, Field(description="Seconds to wait for the result (default 25, max 40; 0 = now).")]
Preview = Annotated[bool, Field(description="Attach a small preview image of the result.")]


def check_message_id(message_id: str) -> str:
    """The message id stripped; a `ToolError` saying what to pass when it is not one."""
    message_id = message_id.strip()
    if not _MESSAGE_ID.match(message_id):
        raise ToolError(
            f"message_id {message_id!r} is not a Discord message id: pass the numeric message_id that a tool "
            "returned (e.g. '1083788807800897597')."
        )
    return message_id


def _wait(engine: Engine, wait_seconds: float | None, ctx: Context[AppState], call: Call | None = None) -> float:
    value = engine.settings.default_wait if wait_seconds is None else wait_seconds
    seconds = max(0.0, min(float(value), engine.settings.wait_ceiling))
    # Ended before this client gives up (learned from its cancels and retries: server/calls.py).
    state: AppState = ctx.request_context.lifespan_context
    return state.calls.cap(client_of(ctx.headers), seconds, call)


def _reused(tool: str) -> str:
    return (
        f"This is the job an identical earlier {tool} call started, whose answer did not reach you (the client "
        "timed out): nothing new was started or paid. For another one, press reroll or change the arguments."
    )


def _checked(text: str) -> PromptCheck:
    if not (check := check_prompt_text(text)).ok:
        raise ToolError("The prompt was not sent: " + " ".join(check.errors))
    return check


def _prompt_text(prompt: str) -> str:
    text = " ".join(prompt.split())
    if not text:
        raise ToolError("prompt is empty: describe the image, e.g. 'a lighthouse in a storm, oil painting'.")
    if len(text) > MAX_PROMPT_CHARS:
        raise ToolError(f"prompt is {len(text)} characters; Midjourney accepts at most {MAX_PROMPT_CHARS}.")
    return text


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


async def _result(
    state: AppState,
    job: Job,
    *,
    preview: bool = True,
    warnings: list[str] | None = None,
    recent: list[str] | None = None,
) -> CallToolResult:
    assert state.engine is not None and state.renderer is not None
    notes = list(warnings or [])
    if state.engine.account_problem:
        notes.append(f"account needs a person: {state.engine.account_problem}")
    notes += [w for a in state.engine.accounts if (w := a.low_fast_time)]
    budget = state.budget.describe(job.account or "default") if state.budget is not None else None
    return await state.renderer.render(job, warnings=notes, budget=budget, preview=preview, recent=recent)


def add_tools(server: MCPServer[AppState]) -> None:
    """Register the tools on `server`: their docstrings and parameter descriptions are what the model reads."""
    acts = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
    reads = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)

    @server.tool(annotations=acts)
    async def imagine(
        prompt: Annotated[str, Field(description="The prompt: text, then parameters (e.g. 'a fox, ink --ar 16:9').")],
        ctx: Context[AppState],
        images: Annotated[
            list[str] | None, Field(description="Image prompts (http(s) URLs or local files), put before the text.")
        ] = None,
        wait_seconds: Wait = None,
        preview: Preview = True,
    ) -> Annotated[CallToolResult, JobView]:
        """Start a Midjourney /imagine job: a 2x2 grid of four images, 1 top-left, 2 top-right, 3 bottom-left,
        4 bottom-right.

        A job takes 30-90 s: this call waits up to wait_seconds (default 25, max 40); a job still queued or
        in_progress then is followed with get_message(message_id, wait_seconds=25) until completed. Next:
        press_button(message_id, 'U1'..'U4') upscales one image, 'V1'..'V4' varies one, 'reroll' redoes the grid.
        Prompt syntax: words, then --ar W:H --stylize 0-1000 --chaos 0-100 --no things --seed N --sref URL
        --oref URL --v 7 | --niji 6 --draft; a malformed parameter is refused at no cost (check_prompt explains).
        An image URL or local file with --video makes four videos (mp4s in video_urls); local files are uploaded.
        Calling again with the same arguments after a timeout returns the same job, not a second one.
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None
        text = _prompt_text(prompt)
        async with state.calls.track(client_of(ctx.headers), "imagine", (text, tuple(images or ()))) as call:
            warnings: list[str] = []
            if call.job is not None:
                job, warnings = call.job, [_reused("imagine")]
            else:
                if images or mentions_local_file(text):
                    assert state.http is not None and state.settings is not None
                    try:  # the prompt is checked (files as placeholder URLs) before anything is uploaded
                        text = await upload_local_refs(
                            text,
                            images or [],
                            engine.image_url_for,
                            client=state.http,
                            rules=state.settings,
                            check=_checked,
                        )
                    except (InputError, EngineError) as exc:
                        raise ToolError(str(exc)) from None
                check = _checked(text)
                warnings = list(check.warnings)
                cost: Kind = "video" if "video" in check.params else "job"
                try:
                    job = await engine.imagine(text, cost=cost, count=check.jobs)
                except (EngineError, BudgetExceeded) as exc:
                    raise ToolError(str(exc)) from None
            state.calls.started(call, job)
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds, ctx, call), ctx)
            return await _result(state, job, preview=preview, warnings=warnings)

    @server.tool(annotations=acts)
    async def press_button(
        message_id: Annotated[str, Field(description="The message_id of a result, as a tool returned it.")],
        button: Annotated[
            str,
            Field(
                description="A button the result lists: its name ('U2', 'reroll', 'vary_strong', 'animate_high'), "
                "label or id."
            ),
        ],
        ctx: Context[AppState],
        prompt: Annotated[
            str | None, Field(description="The prompt a form asks for (Remix, Custom Zoom, Vary (Region)).")
        ] = None,
        region: Annotated[
            list[float] | None,
            Field(description="Vary (Region): [left, top, right, bottom], fractions 0-1 of the image."),
        ] = None,
        mask_path: Annotated[
            str | None, Field(description="Vary (Region): a local PNG whose white pixels mark what to change.")
        ] = None,
        wait_seconds: Wait = None,
        preview: Preview = True,
    ) -> Annotated[CallToolResult, JobView]:
        """Press a button under a Midjourney result; returns the job it starts, with its own message_id.

        On a grid: U1-U4 upscales image 1-4 (1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right), V1-V4 varies
        it, reroll redoes the grid. On an upscale: vary_subtle, vary_strong, vary_region, zoom_out_2x, custom_zoom,
        pan_left/right/up/down, upscale_subtle/creative, ... (each result lists its buttons). Status needs_input:
        Midjourney asks for a prompt; call again on that message_id with button='submit', prompt=... (input_prompt
        has the pre-filled text), or pass prompt=... with the first press. Waits like imagine (wait_seconds default
        25, max 40; then get_message). The same U press twice returns the first upscale.
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None
        message_id = check_message_id(message_id)
        if not button.strip():
            raise ToolError("button is empty: pass a label or name from the result's buttons, e.g. 'U1'.")
        text = _prompt_text(prompt) if prompt else None
        mask_path = mask_path or None
        warnings: list[str] = []
        key = (message_id, button.strip(), text, tuple(region or ()), mask_path)
        async with state.calls.track(client_of(ctx.headers), "press_button", key) as call:
            try:
                if call.job is not None:
                    job, warnings = call.job, [_reused("press_button")]
                else:
                    job = await _press(state, message_id, button.strip(), text, region, mask_path, warnings)
                state.calls.started(call, job)
                job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds, ctx, call), ctx)
            except (EngineError, BudgetExceeded) as exc:
                raise ToolError(str(exc)) from None
            return await _result(state, job, preview=preview, warnings=warnings)

    @server.tool(annotations=reads)
    async def get_message(
        ctx: Context[AppState],
        message_id: Annotated[str, Field(description="A message_id a tool returned; omit for your latest job.")] = "",
        wait_seconds: Annotated[
            float, Field(description="Seconds to wait for the job to finish (default 0, max 40).")
        ] = 0,
        preview: Annotated[
            bool | None, Field(description="Attach a small preview (default: when a wait ends completed).")
        ] = None,
    ) -> Annotated[CallToolResult, JobView]:
        """Follow a job: its current state, waiting up to wait_seconds for it to finish.

        Call it on a queued or in_progress result's message_id until completed or failed, and go on with the
        message_id it returns (it changes once the result arrives). Works after a restart; refreshes expired
        image URLs. With no message_id: your latest job, and recent lists the others (message_id, status, prompt).
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None
        recent: list[str] | None = None
        if message_id.strip():
            message_id = check_message_id(message_id)
        else:
            jobs = state.calls.recent()
            if not jobs:
                raise ToolError("No job yet in this server: start one with imagine(prompt).")
            message_id = jobs[0].handle
            recent = [f"{j.handle} {j.kind} {j.status.value}: {j.prompt[:80]}" for j in jobs[1:]]
        async with state.calls.track(client_of(ctx.headers), "get_message", message_id) as call:
            try:
                job = await engine.get(message_id, refresh=True)
                state.calls.started(call, job)
                job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds, ctx, call), ctx)
            except EngineError as exc:
                raise ToolError(str(exc)) from None
            shown = preview if preview is not None else job.status is JobStatus.COMPLETED and wait_seconds > 0
            return await _result(state, job, preview=shown, recent=recent)

    @server.tool(annotations=reads)
    async def describe(
        image: Annotated[str, Field(description="An http(s) image URL or a local image file.")],
        ctx: Context[AppState],
        wait_seconds: Wait = None,
    ) -> Annotated[CallToolResult, JobView]:
        """Ask Midjourney to describe an image: four prompts that would make something like it (no image job).

        Use one with imagine, or press describe_1..describe_4 / imagine_all on the result. Waits like imagine.
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None and state.http is not None and state.settings is not None
        async with state.calls.track(client_of(ctx.headers), "describe", image.strip()) as call:
            try:
                if call.job is not None:
                    job = call.job
                elif image.strip().lower().startswith(("http://", "https://")):
                    job = await engine.command("describe", describe_options(link=image.strip()))
                else:
                    filename, data = await load_image(image, client=state.http, rules=state.settings)
                    job = await engine.command("describe", describe_options(), files=[(filename, data)])
                state.calls.started(call, job)
                job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds, ctx, call), ctx)
            except (InputError, EngineError) as exc:
                raise ToolError(str(exc)) from None
            return await _result(state, job, preview=False, warnings=[_reused("describe")] if call.inherited else None)

    @server.tool(annotations=acts)
    async def blend(
        images: Annotated[list[str], Field(description="2 to 5 images: http(s) URLs or local image files.")],
        ctx: Context[AppState],
        aspect: Annotated[Literal["2:3", "1:1", "3:2"] | None, Field(description="The shape (default 1:1).")] = None,
        wait_seconds: Wait = None,
        preview: Preview = True,
    ) -> Annotated[CallToolResult, JobView]:
        """Blend 2-5 images into a new 2x2 grid (/blend), numbered and pressed like an imagine grid; waits like
        imagine (wait_seconds default 25, max 40; then get_message)."""
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None and state.http is not None and state.settings is not None
        if not 2 <= len(images) <= 5:
            raise ToolError(f"blend takes 2 to 5 images; got {len(images)}.")
        async with state.calls.track(client_of(ctx.headers), "blend", (tuple(images), aspect)) as call:
            warnings: list[str] = []
            if call.job is not None:
                job, warnings = call.job, [_reused("blend")]
            else:
                trusted = frozenset[str]()
                try:
                    files = [
                        await load_image(ref, client=state.http, rules=state.settings, trusted_hosts=trusted)
                        for ref in images
                    ]
                except InputError as exc:
                    raise ToolError(str(exc)) from None
                try:
                    job = await engine.command("blend", blend_options(len(files), aspect), files=files, cost="job")
                except (EngineError, BudgetExceeded) as exc:
                    raise ToolError(str(exc)) from None
            state.calls.started(call, job)
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds, ctx, call), ctx)
            return await _result(state, job, preview=preview, warnings=warnings)

    add_info_tools(server, reads=reads, acts=acts)


async def _press(
    state: AppState,
    message_id: str,
    button: str,
    text: str | None,
    region: list[float] | None,
    mask_path: str | None,
    warnings: list[str],
) -> Job:
    """Press `button` of a message (or answer the form it waits on); the job the press starts."""
    engine = state.engine
    assert engine is not None
    target = await engine.get(message_id)
    if target.status is JobStatus.NEEDS_INPUT:
        return await _answer(state, target, text, region, mask_path)
    job = await engine.press(message_id, button)
    picks_prompt = re.fullmatch(r"describe_[1-4]|[1-4]\ufe0f?\u20e3", button) is not None
    if text is not None or region or mask_path or picks_prompt:
        # Open and answer in one call: wait (briefly) for the form Midjourney opens.
        job = await engine.wait(job, min(10.0, engine.settings.wait_ceiling), None, until_input=True)
        if job.status is JobStatus.NEEDS_INPUT:
            # A describe pick's form holds the chosen prompt: send it as it is unless told otherwise.
            job = await _answer(state, job, text, region, mask_path)
        elif text is not None:
            warnings.append("This press did not ask for a prompt (is Remix mode off?): prompt not used.")
    return job


async def _answer(
    state: AppState, job: Job, prompt: str | None, region: list[float] | None, mask_path: str | None
) -> Job:
    """Submit the form a job waits on: a prompt, and for Vary (Region) the mask."""
    # Imported at the first Vary (Region): Pillow stays out of the server's start-up.
    from ..media.mask import region_mask

    assert state.engine is not None and state.http is not None and state.settings is not None
    modal = job.modal
    text = prompt if prompt is not None else (modal.prefilled if modal is not None else None)
    if text is None:
        raise ToolError(f"Job {job.handle} waits for a prompt: call press_button again with prompt=... .")
    mask: str | None = None
    if modal is not None and modal.iframe:
        try:
            if mask_path:  # a local file only, decoded in a worker thread under the pixel cap
                mask = await load_mask(mask_path, state.settings)
            elif region:
                mask = region_mask(region=region)
        except (InputError, ValueError) as exc:
            raise ToolError(str(exc)) from None
    try:
        return await state.engine.submit_input(job, text, mask_png_b64=mask)
    except EngineError as exc:
        raise ToolError(str(exc)) from None
