"""The tools that start no image job: check_prompt (free, local) and account (the accounts, /info, speed modes)."""

from __future__ import annotations

import contextlib
from typing import Annotated, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..engine.engine import EngineError
from ..engine.store import Job
from ..midjourney import shorten_options
from ..midjourney.params import check_prompt as check_prompt_text
from ..models import AccountsView, JobStatus, PromptCheckView
from .state import AppState, ready_state


def compact(view: BaseModel) -> CallToolResult:
    """A model as a result: compact JSON text, and the same fields (empty ones left out) as structured content."""
    content = view.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    text = view.model_dump_json(exclude_none=True, exclude_defaults=True)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=content)


def add_info_tools(server: MCPServer[AppState], *, reads: ToolAnnotations, acts: ToolAnnotations) -> None:
    """Register check_prompt and account on `server`."""
    from .tools import _prompt_text

    @server.tool(annotations=reads)
    async def check_prompt(
        prompt: Annotated[str, Field(description="The prompt to check, parameters included.")],
        ctx: Context[AppState],
        shorten: Annotated[
            bool, Field(description="Also ask Midjourney's /shorten for shorter variants (a few seconds, free).")
        ] = False,
    ) -> Annotated[CallToolResult, PromptCheckView]:
        """Check a prompt before spending: malformed or out-of-range parameters, conflicts, unknown parameters.

        Costs nothing (no Discord request) unless shorten=true. Returns errors (each with a corrected example),
        warnings, the parsed parameters, how many jobs the prompt would run, and the budget left.
        """
        state: AppState = ctx.request_context.lifespan_context
        text = _prompt_text(prompt)
        check = check_prompt_text(text)
        if state.settings is not None and state.budget is None:
            with anyio.move_on_after(5):  # right after start the budget's record may still be opening
                await state.started.wait()
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
        return compact(view)

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
    ) -> Annotated[CallToolResult, AccountsView]:
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
        return compact(
            AccountsView(
                accounts=accounts,
                budget=state.budget.describe() if state.budget is not None else None,
                problems=engine.account_problem,
            )
        )
