"""The MCP tools and their texts (the docstrings and parameter descriptions are what the model reads).

Each tool validates its input, calls the engine, and hands the job to the `Renderer` (server/render.py): a text
summary, structured content (`JobView`, the outputSchema) and, once an image exists, a small preview. Errors
the model can act on are `ToolError`s.
"""

from __future__ import annotations

import contextlib
import re
from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..engine.budget import BudgetExceeded
from ..engine.engine import Engine, EngineError
from ..engine.store import Job
from ..midjourney import blend_options, describe_options, shorten_options
from ..midjourney.params import PromptCheck
from ..midjourney.params import check_prompt as check_prompt_text
from ..models import AccountsView, JobStatus, JobView, PromptCheckView
from .inputs import InputError, load_image, load_mask, mentions_local_file, upload_local_refs
from .state import AppState, ready_state

MAX_PROMPT_CHARS = 6000
_MESSAGE_ID = re.compile(r"^[0-9]{15,21}$")  # ASCII digits: \d takes any script's

# Parameters several tools share (module level: the SDK resolves annotations from the module's globals).
Wait = Annotated[float | None, Field(description="Seconds to wait for the result (capped; 0 = return at once).")]
Preview = Annotated[bool, Field(description="Include a small preview image of the result.")]


def check_message_id(message_id: str) -> str:
    """The message id stripped; a `ToolError` saying what to pass when it is not one."""
    message_id = message_id.strip()
    if not _MESSAGE_ID.match(message_id):
        raise ToolError(
            f"message_id {message_id!r} is not a Discord message id: pass the numeric message_id that a tool "
            "returned (e.g. '1083788807800897597')."
        )
    return message_id


def _wait(engine: Engine, wait_seconds: float | None) -> float:
    value = engine.settings.default_wait if wait_seconds is None else wait_seconds
    return max(0.0, min(float(value), engine.settings.wait_ceiling))


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
    state: AppState, job: Job, *, preview: bool = True, warnings: list[str] | None = None
) -> CallToolResult:
    assert state.engine is not None and state.renderer is not None
    notes = list(warnings or [])
    if state.engine.account_problem:
        notes.append(f"account needs a person: {state.engine.account_problem}")
    notes += [w for a in state.engine.accounts if (w := a.low_fast_time)]
    budget = state.budget.describe(job.account or "default") if state.budget is not None else None
    return await state.renderer.render(job, warnings=notes, budget=budget, preview=preview)


def add_tools(server: MCPServer[AppState]) -> None:
    """Register the tools on `server`: their docstrings and parameter descriptions are what the model reads."""
    acts = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
    reads = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)

    @server.tool(annotations=acts)
    async def imagine(
        prompt: Annotated[str, Field(description="The Midjourney prompt, parameters included (e.g. '--ar 16:9').")],
        ctx: Context[AppState],
        images: Annotated[
            list[str] | None,
            Field(description="Image prompts: http(s) URLs or local image files, placed before the text."),
        ] = None,
        wait_seconds: Wait = None,
        preview: Preview = True,
    ) -> Annotated[CallToolResult, JobView]:
        """Start a Midjourney /imagine job: four candidate images in a 2x2 grid.

        The prompt is checked first (a malformed parameter is refused at no cost). Local files in --sref/--cref/
        --oref/--end or in `images` are uploaded. An image with --video makes videos (mp4s in video_urls).
        Returns the job: message_id, status, the grid's image_url, the four image_urls, a preview, and the
        buttons to press next (U1-U4, V1-V4, reroll). If it is still running when the wait ends, call
        get_message with the returned message_id.
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None
        text = _prompt_text(prompt)
        if images or mentions_local_file(text):
            assert state.http is not None and state.settings is not None
            try:  # the prompt is checked (files as placeholder URLs) before anything is uploaded
                text = await upload_local_refs(
                    text, images or [], engine.image_url_for, client=state.http, rules=state.settings, check=_checked
                )
            except (InputError, EngineError) as exc:
                raise ToolError(str(exc)) from None
        check = _checked(text)
        try:
            job = await engine.imagine(text, cost="video" if "video" in check.params else "job", count=check.jobs)
        except (EngineError, BudgetExceeded) as exc:
            raise ToolError(str(exc)) from None
        job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        return await _result(state, job, preview=preview, warnings=check.warnings)

    @server.tool(annotations=acts)
    async def press_button(
        message_id: Annotated[str, Field(description="The message_id of a result, as a tool returned it.")],
        button: Annotated[
            str,
            Field(
                description="A button of that result: its label ('U2', 'V3', '🔄', 'Vary (Strong)'), short name "
                "('U2', 'reroll', 'vary_strong', 'zoom_out_2x', 'pan_left', 'animate_high') or raw custom_id."
            ),
        ],
        ctx: Context[AppState],
        prompt: Annotated[
            str | None,
            Field(description="A new prompt when the press asks for one (Remix, Custom Zoom, Vary (Region))."),
        ] = None,
        region: Annotated[
            list[float] | None,
            Field(description="Vary (Region): [left, top, right, bottom] as fractions 0-1 of the image."),
        ] = None,
        mask_path: Annotated[
            str | None, Field(description="Vary (Region): a local PNG whose white pixels mark what to change.")
        ] = None,
        wait_seconds: Wait = None,
        preview: Preview = True,
    ) -> Annotated[CallToolResult, JobView]:
        """Press a button under a Midjourney result: upscale, vary, reroll, zoom, pan, cancel, ...

        Returns the job the press starts (its own message_id, images and buttons). A press that opens a form
        returns status needs_input with the pre-filled prompt: call again on that message_id with prompt=...
        (or pass prompt=... with the first press to do both at once). Pressing the same U button twice returns
        the first result.
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None
        message_id = check_message_id(message_id)
        if not button.strip():
            raise ToolError("button is empty: pass a label or name from the result's buttons, e.g. 'U1'.")
        text = _prompt_text(prompt) if prompt is not None else None
        warnings: list[str] = []
        try:
            target = await engine.get(message_id)
            if target.status is JobStatus.NEEDS_INPUT:
                job = await _answer(state, target, text, region, mask_path)
            else:
                job = await engine.press(message_id, button.strip())
                picks_prompt = re.fullmatch(r"describe_[1-4]|[1-4]\ufe0f?\u20e3", button.strip()) is not None
                if text is not None or region or mask_path or picks_prompt:
                    # Open and answer in one call: wait (briefly) for the form Midjourney opens.
                    job = await engine.wait(job, min(10.0, engine.settings.wait_ceiling), None, until_input=True)
                    if job.status is JobStatus.NEEDS_INPUT:
                        # A describe pick's form holds the chosen prompt: send it as it is unless told otherwise.
                        job = await _answer(state, job, text, region, mask_path)
                    elif text is not None:
                        warnings.append("This press did not ask for a prompt (is Remix mode off?): prompt not used.")
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        except (EngineError, BudgetExceeded) as exc:
            raise ToolError(str(exc)) from None
        return await _result(state, job, preview=preview, warnings=warnings)

    @server.tool(annotations=reads)
    async def get_message(
        message_id: Annotated[str, Field(description="A message_id a tool returned.")],
        ctx: Context[AppState],
        wait_seconds: Annotated[float, Field(description="Wait up to this long for the job to finish (0 = now).")] = 0,
        preview: Preview = False,
    ) -> Annotated[CallToolResult, JobView]:
        """Get the current state of a Midjourney job, optionally waiting for it to finish.

        Follow a job that was still running, or read any Midjourney message again (even after a server restart;
        expired image URLs are refreshed). The returned message_id may change once the result arrives: use it.
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None
        message_id = check_message_id(message_id)
        try:
            job = await engine.get(message_id, refresh=True)
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        except EngineError as exc:
            raise ToolError(str(exc)) from None
        return await _result(state, job, preview=preview or (job.status is JobStatus.COMPLETED and wait_seconds > 0))

    @server.tool(annotations=reads)
    async def describe(
        image: Annotated[str, Field(description="An http(s) image URL or a local image file.")],
        ctx: Context[AppState],
        wait_seconds: Wait = None,
    ) -> Annotated[CallToolResult, JobView]:
        """Ask Midjourney to describe an image: four prompts that would make something like it.

        The result's prompts can be used at once with imagine, or by pressing its buttons (describe_1 ..
        describe_4, imagine_all). Costs no image job.
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None and state.http is not None and state.settings is not None
        try:
            if image.strip().lower().startswith(("http://", "https://")):
                job = await engine.command("describe", describe_options(link=image.strip()))
            else:
                filename, data = await load_image(image, client=state.http, rules=state.settings)
                job = await engine.command("describe", describe_options(), files=[(filename, data)])
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        except (InputError, EngineError) as exc:
            raise ToolError(str(exc)) from None
        return await _result(state, job, preview=False)

    @server.tool(annotations=acts)
    async def blend(
        images: Annotated[list[str], Field(description="2 to 5 images: http(s) URLs or local image files.")],
        ctx: Context[AppState],
        aspect: Annotated[
            Literal["2:3", "1:1", "3:2"] | None, Field(description="The result's shape (default: square).")
        ] = None,
        wait_seconds: Wait = None,
        preview: Preview = True,
    ) -> Annotated[CallToolResult, JobView]:
        """Blend 2-5 images into a new 2x2 grid (Midjourney's /blend). Press its buttons like an imagine grid."""
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None and state.http is not None and state.settings is not None
        if not 2 <= len(images) <= 5:
            raise ToolError(f"blend takes 2 to 5 images; got {len(images)}.")
        trusted = frozenset[str]()
        try:
            files = [
                await load_image(ref, client=state.http, rules=state.settings, trusted_hosts=trusted) for ref in images
            ]
        except InputError as exc:
            raise ToolError(str(exc)) from None
        try:
            job = await engine.command("blend", blend_options(len(files), aspect), files=files, cost="job")
        except (EngineError, BudgetExceeded) as exc:
            raise ToolError(str(exc)) from None
        job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        return await _result(state, job, preview=preview)

    @server.tool(annotations=reads)
    async def check_prompt(
        prompt: Annotated[str, Field(description="The prompt to check, parameters included.")],
        ctx: Context[AppState],
        shorten: Annotated[
            bool, Field(description="Also ask Midjourney's /shorten for shorter variants (a few seconds, free).")
        ] = False,
    ) -> PromptCheckView:
        """Check a prompt before spending: malformed or out-of-range parameters, conflicts, unknown parameters.

        Costs nothing (no Discord request) unless shorten=true. Returns errors (each with a corrected example),
        warnings, the parsed parameters, how many jobs the prompt would run, and the budget left.
        """
        state: AppState = ctx.request_context.lifespan_context
        text = _prompt_text(prompt)
        check = check_prompt_text(text)
        view = PromptCheckView(
            ok=check.ok,
            errors=check.errors,
            warnings=check.warnings,
            parameters={k: v for k, v in check.params.items()},
            text=check.text,
            image_urls=check.image_urls,
            jobs=check.jobs,
            budget=state.budget.describe() if state.budget is not None else None,
        )
        if shorten:
            engine = (await ready_state(ctx)).engine
            assert engine is not None
            try:
                job = await engine.command("shorten", shorten_options(text), prompt=text)
                job = await engine.wait(job, min(20.0, engine.settings.wait_ceiling))
            except EngineError as exc:
                raise ToolError(str(exc)) from None
            view.shortened = list(job.prompts)
            if job.status is JobStatus.FAILED:
                view.warnings.append(f"/shorten failed: {job.error}")
        return view

    @server.tool(annotations=acts)
    async def account(
        ctx: Context[AppState],
        action: Annotated[
            Literal["status", "info", "fast", "relax", "turbo"],
            Field(
                description="status: the accounts' connection and load (no Discord request); info: Midjourney's "
                "/info (fast time left, queued and running jobs, mode); fast/relax/turbo: switch the speed mode."
            ),
        ] = "status",
    ) -> AccountsView:
        """The Midjourney accounts this server drives: health, load, fast time left; switch fast/relax/turbo.

        Check before a long batch: info shows the fast hours left (relax mode costs none but is slower).
        """
        state = await ready_state(ctx)
        engine = state.engine
        assert engine is not None
        with contextlib.suppress(EngineError):
            await engine.ready()  # right after start the sessions may still be connecting: report them settled
        accounts = engine.accounts_status()
        if state.budget is not None and state.budget.per_account:
            for entry in accounts:
                entry["budget"] = state.budget.describe(entry["name"])
        if action != "status":
            jobs: list[tuple[str, Job]] = []
            try:
                for entry in accounts:
                    if entry["healthy"] and entry["connected"]:
                        jobs.append((entry["name"], await engine.command(action, [], account=entry["name"])))
                for _name, job in jobs:
                    await engine.wait(job, min(15.0, engine.settings.wait_ceiling))
            except EngineError as exc:
                raise ToolError(str(exc)) from None
            by_name = dict(jobs)
            for entry in accounts:
                answer = by_name.get(entry["name"])
                if answer is None:
                    continue
                if answer.info is not None:
                    entry["info"] = answer.info
                if answer.note:
                    entry["reply"] = answer.note
                if answer.status is JobStatus.FAILED:
                    entry["reply"] = answer.error
        return AccountsView(
            accounts=accounts,
            budget=state.budget.describe() if state.budget is not None else None,
            problems=engine.account_problem,
        )


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
