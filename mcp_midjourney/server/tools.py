"""The MCP tools, resources and prompt, and how their results look.

Tools validate input, call the engine, and render a job as a short text summary, structured content
(`JobView`, the tools' outputSchema) and, once an image exists, a small preview the model can see.
Errors the model can act on are `ToolError`s.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any, Literal

import anyio
import httpx2
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..config import ConfigError, Settings, load_settings
from ..discord.rest import tls_context
from ..engine.budget import Budget, BudgetExceeded
from ..engine.engine import Engine, EngineError
from ..engine.store import Job
from ..midjourney.params import check_prompt as check_prompt_text
from ..models import AccountsView, JobStatus, JobView, PromptCheckView, lean_schema
from .inputs import InputError, is_local_path, load_image
from .render import Renderer, job_view

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 6000
_MESSAGE_ID = re.compile(r"^\d{15,21}$")
_LOCAL_REF = re.compile(r"(?<!\S)(--(?:sref|cref|oref)\s+)?((?:~|\.{1,2})?/[^\s]+|[A-Za-z]:[\\/][^\s]+)")

INSTRUCTIONS = """\
Generate and refine images with Midjourney (through Discord).
Workflow: imagine(prompt) makes a 2x2 grid of four candidates, returned with a preview you can see. Then
press_button on the returned message_id: U1-U4 picks one image (1 top-left, 2 top-right, 3 bottom-left,
4 bottom-right), V1-V4 makes four variations of one, reroll makes a new grid. A picked image has its own
buttons (vary_subtle, vary_strong, vary_region, zoom_out_2x, custom_zoom, pan_left, upscale_subtle, ...):
each result lists the ones you may press. If a result has status needs_input, Midjourney asks for a prompt:
call press_button again with prompt=... . describe(image) suggests prompts for an image; blend(images) mixes
2-5 images; check_prompt validates a prompt for free before you spend; account() shows fast time and modes.
Jobs take 30-90 s. A call waits at most wait_seconds (capped under a minute); a job still running comes back
queued or in_progress: call get_message(message_id, wait_seconds=30) until completed or failed. Always pass
the latest message_id a result gave you. Prompting advice: the prompt 'midjourney_guide' (or resource
midjourney://guide).
"""


# Parameters several tools share (module level: the SDK resolves annotations from the module's globals).
Wait = Annotated[float | None, Field(description="Seconds to wait for the result (capped; 0 = return at once).")]
Preview = Annotated[bool, Field(description="Include a small preview image of the result.")]


@dataclass
class AppState:
    """What lives as long as the server: the engine, the budget, or why there is none."""

    engine: Engine | None = None
    settings: Settings | None = None
    config_error: str | None = None
    budget: Budget | None = None
    http: httpx2.AsyncClient | None = None
    renderer: Renderer | None = None
    started: anyio.Event = field(default_factory=anyio.Event)  # the HTTP client and the engine are up (or failed)


@asynccontextmanager
async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
    """Read the configuration, then start the Discord side in the background: the client's `initialize` is answered
    at once, and a bad configuration is reported at the first tool call."""
    state = AppState()
    try:
        state.settings = load_settings()
        state.budget = Budget.from_settings(state.settings)
    except ConfigError as exc:
        # Nothing runs on a configuration half read: a malformed budget must not mean no budget.
        state.settings, state.config_error = None, str(exc)
        log.error("%s The server keeps running; tools will report this.", exc)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_run_backend, state)
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()


def _http_client() -> httpx2.AsyncClient:
    """The shared HTTP client, built in a worker thread: its transport imports and the CA bundle (~0.2 s of CPU)
    stay off the event loop, which answers the client meanwhile. The gateway's websocket module loads here too."""
    import httpx2.websockets  # loaded for the gateway, off the event loop

    return httpx2.AsyncClient(timeout=15.0, follow_redirects=False, verify=tls_context())


async def _run_backend(state: AppState) -> None:
    """The shared HTTP client and the engine (every account's gateway session), until the server stops."""
    try:
        client = await anyio.to_thread.run_sync(_http_client)
        async with client as http, anyio.create_task_group() as tg:
            state.http = http
            if state.settings is not None:
                engine = Engine(state.settings, budget=state.budget)
                await tg.start(engine.run)
                state.engine = engine
                state.renderer = Renderer(state.settings, http)
            # The ~90,000 objects of start-up (the SDK's models, the HTTP stack) live as long as the process: a
            # full collection that walks them all takes ~50 ms and lands on some unlucky tool call. Freeze them.
            gc.freeze()
            state.started.set()
            await anyio.sleep_forever()
    except Exception as exc:  # never kill the server: every tool call says what went wrong
        log.exception("the Discord side stopped")
        state.engine = state.renderer = state.http = None
        state.config_error = state.config_error or (
            f"The server's Discord side stopped ({type(exc).__name__}: {exc}); restart the server. The log (stderr) "
            "has the details."
        )
    finally:
        state.started.set()


async def _state(ctx: Context[AppState]) -> AppState:
    state: AppState = ctx.request_context.lifespan_context
    with anyio.move_on_after(30):
        await state.started.wait()
    if state.engine is None:
        raise ToolError(state.config_error or "The server is still starting: try again in a few seconds.")
    return state


def _check_id(message_id: str) -> str:
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


def _prompt_text(prompt: str) -> str:
    text = " ".join(prompt.split())
    if not text:
        raise ToolError("prompt is empty: describe the image, e.g. 'a lighthouse in a storm, oil painting'.")
    if len(text) > MAX_PROMPT_CHARS:
        raise ToolError(f"prompt is {len(text)} characters; Midjourney accepts at most {MAX_PROMPT_CHARS}.")
    return text


async def _upload_local_refs(state: AppState, prompt: str, images: list[str]) -> str:
    """Replace local files (image prompts, --sref/--cref paths) with URLs Midjourney can read."""
    assert state.engine is not None and state.settings is not None and state.http is not None
    engine, settings, http = state.engine, state.settings, state.http

    async def url_for(ref: str) -> str:
        if ref.lower().startswith(("http://", "https://")):
            return ref
        try:
            filename, data = await load_image(ref, client=http, allowed_dirs=list(settings.allowed_dirs))
        except InputError as exc:
            raise ToolError(str(exc)) from None
        return await engine.image_url_for(filename, data)

    leading = [await url_for(ref) for ref in images]
    parts: list[str] = []
    last = 0
    for match in _LOCAL_REF.finditer(prompt):
        if not is_local_path(match.group(2)):
            continue
        if match.group(1) is None and not await (await anyio.Path(match.group(2)).expanduser()).exists():
            continue  # words like "/r/earthporn" in a prompt are not files unless a reference parameter says so
        parts += [prompt[last : match.start(2)], await url_for(match.group(2))]
        last = match.end(2)
    return " ".join([*leading, "".join([*parts, prompt[last:]])]).strip()


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


def build_server() -> MCPServer[AppState]:
    """The MCP server with its tools, resources and prompt (no I/O until it runs)."""
    server: MCPServer[AppState] = MCPServer("midjourney", instructions=INSTRUCTIONS, lifespan=lifespan)
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

        The prompt is checked first (a malformed parameter is refused at no cost). Local files in --sref/--cref
        or in `images` are uploaded. Returns the job: message_id, status, the grid's image_url, the four
        image_urls, a preview, and the buttons to press next (U1-U4, V1-V4, reroll). If it is still running
        when the wait ends, call get_message with the returned message_id.
        """
        state = await _state(ctx)
        engine = state.engine
        assert engine is not None
        text = _prompt_text(prompt)
        if images or _LOCAL_REF.search(text):
            text = await _upload_local_refs(state, text, images or [])
        check = check_prompt_text(text)
        if not check.ok:
            raise ToolError("The prompt was not sent: " + " ".join(check.errors))
        try:
            job = await engine.imagine(text, cost="job", count=check.jobs)
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
                "('U2', 'reroll', 'vary_strong', 'zoom_out_2x', 'pan_left', 'custom_zoom') or raw custom_id."
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
        state = await _state(ctx)
        engine = state.engine
        assert engine is not None
        message_id = _check_id(message_id)
        if not button.strip():
            raise ToolError("button is empty: pass a label or name from the result's buttons, e.g. 'U1'.")
        text = _prompt_text(prompt) if prompt is not None else None
        warnings: list[str] = []
        try:
            target = await engine.get(message_id)
            if target.status is JobStatus.NEEDS_INPUT:
                job = await _answer(state, target, text, region, mask_path)
            else:
                job = await engine.press(message_id, button.strip(), cost=_press_kind(button))
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
        state = await _state(ctx)
        engine = state.engine
        assert engine is not None
        message_id = _check_id(message_id)
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
        state = await _state(ctx)
        engine = state.engine
        assert engine is not None and state.http is not None and state.settings is not None
        try:
            if image.strip().lower().startswith(("http://", "https://")):
                job = await engine.command("describe", [{"type": 3, "name": "link", "value": image.strip()}])
            else:
                filename, data = await load_image(
                    image, client=state.http, allowed_dirs=list(state.settings.allowed_dirs)
                )
                job = await engine.command(
                    "describe", [{"type": 11, "name": "image", "value": 0}], files=[(filename, data)]
                )
            job = await _wait_with_progress(engine, job, _wait(engine, wait_seconds), ctx)
        except InputError as exc:
            raise ToolError(str(exc)) from None
        except EngineError as exc:
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
        state = await _state(ctx)
        engine = state.engine
        assert engine is not None and state.http is not None and state.settings is not None
        if not 2 <= len(images) <= 5:
            raise ToolError(f"blend takes 2 to 5 images; got {len(images)}.")
        trusted = frozenset[str]()
        try:
            files = [
                await load_image(
                    ref, client=state.http, allowed_dirs=list(state.settings.allowed_dirs), trusted_hosts=trusted
                )
                for ref in images
            ]
        except InputError as exc:
            raise ToolError(str(exc)) from None
        options: list[dict[str, Any]] = [{"type": 11, "name": f"image{i + 1}", "value": i} for i in range(len(files))]
        if aspect:
            options.append({"type": 3, "name": "dimensions", "value": f"--ar {aspect}"})
        try:
            job = await engine.command("blend", options, files=files, cost="job")
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
            engine = (await _state(ctx)).engine
            assert engine is not None
            try:
                job = await engine.command("shorten", [{"type": 3, "name": "prompt", "value": text}], prompt=text)
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
        state = await _state(ctx)
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

    @server.resource("midjourney://jobs/{message_id}", mime_type="application/json")
    async def job_resource(message_id: str, ctx: Context[AppState]) -> str:
        """A Midjourney job as JSON (the same fields the tools return)."""
        state = await _state(ctx)
        assert state.engine is not None
        try:
            job = await state.engine.get(_check_id(message_id))
        except EngineError as exc:
            raise ToolError(str(exc)) from None
        return job_view(job).model_dump_json(indent=2)

    @server.resource("midjourney://guide", mime_type="text/markdown")
    def guide_resource() -> str:
        """How to write Midjourney prompts and iterate with the buttons."""
        return _guide()

    @server.prompt()
    def midjourney_guide() -> str:
        """Midjourney prompting practice: prompt structure, parameters, iterating with the buttons."""
        return _guide()

    for tool in server._tool_manager.list_tools():
        # The SDK derives input schemas from the signatures; trim them the same way as the outputs.
        lean_schema(tool.parameters, keep_defaults=True)
    return server


def _guide() -> str:
    return resources.files("mcp_midjourney.server").joinpath("guide.md").read_text(encoding="utf-8")


def _press_kind(button: str) -> Literal["job", "upscale"] | None:
    """What a press costs against the budget: bookmarks and cancels cost nothing."""
    lowered = button.strip().lower()
    if any(word in lowered for word in ("bookmark", "cancel", "❤", "appeal")):
        return None
    if re.fullmatch(r"u[1-4]", lowered) or "upsample::" in lowered:
        return "upscale"
    return "job"


async def _answer(
    state: AppState, job: Job, prompt: str | None, region: list[float] | None, mask_path: str | None
) -> Job:
    """Submit the form a job waits on: a prompt, and for Vary (Region) the mask."""
    from .render import region_mask

    assert state.engine is not None and state.http is not None and state.settings is not None
    modal = job.modal
    text = prompt if prompt is not None else (modal.prefilled if modal is not None else None)
    if text is None:
        raise ToolError(f"Job {job.handle} waits for a prompt: call press_button again with prompt=... .")
    mask: str | None = None
    if modal is not None and modal.iframe:
        try:
            if mask_path:
                allowed = list(state.settings.allowed_dirs)
                _name, data = await load_image(mask_path, client=state.http, allowed_dirs=allowed)
                mask = region_mask(data=data)
            elif region:
                mask = region_mask(region=region)
        except (InputError, ValueError) as exc:
            raise ToolError(str(exc)) from None
    try:
        return await state.engine.submit_input(job, text, mask_png_b64=mask)
    except EngineError as exc:
        raise ToolError(str(exc)) from None
