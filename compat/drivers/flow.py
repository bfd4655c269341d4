"""The part of every driver that is not the framework: a scripted "model" and the record of what it saw.

Runs inside each framework's own venv, so it uses the standard library only. A driver gives an `Adapter`: it
connects with the framework's own MCP client, lists the tools as the framework hands them to a model, converts
their schemas with the framework's own converters, and calls a tool the way the framework's agent runtime does,
returning what the model would read (`Received`). No LLM runs: `run_flow` plays the model, reading only what
the framework gave it:

- imagine(prompt) at the defaults; a result it cannot read (an error, a timeout: "please try again") makes it
  call again with the same arguments, as models do; a job still running makes it follow the result's own hint
  (get_message with the message_id and the wait_seconds the text names);
- then press_button(U1) on the finished grid, the same way, and a last plain get_message of the upscale.

The driver writes one JSON object (see `Report`) to the path given as its second argument.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

PROMPT = "a lighthouse in a storm, oil painting"
TRIES = 6  # calls of one tool with the same arguments before the "model" gives up
FOLLOWS = 30  # get_message calls to follow one job (a 5 s client follows a 90 s job in ~20 calls)
STEP_SECONDS = 300.0

_STATUS = r"(queued|in_progress|needs_input|completed|failed)"
_STATUS_FIELD = re.compile(r"status\W{1,6}" + _STATUS + r"\b")
_STATUS_WORD = re.compile(r"\b" + _STATUS + r"\b")
_MESSAGE_ID = re.compile(r"message_id\W{1,8}(\d{15,21})")
_WAIT = re.compile(r"wait_seconds\W{1,3}(\d+)")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{4000,}")


@dataclass
class Received:
    """What the model reads from one tool call, as the framework builds it.

    `text` is everything the model would get, serialised as the framework sends it (for an image block: a short
    placeholder, not its bytes); `parts` names each piece: "text 812", "structured 1,650", "image 57,688",
    "text 85,000 (image as base64 text)"; `error` is true when the framework marks the result as a failure."""

    text: str
    parts: list[str]
    error: bool = False


class Adapter(Protocol):
    name: str

    async def __aenter__(self) -> Adapter: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def tool_names(self) -> list[str]: ...
    async def schemas(self) -> dict[str, dict[str, str | None]]: ...
    async def call(self, tool: str, args: dict[str, Any]) -> Received: ...


@dataclass
class Call:
    tool: str
    args: dict[str, Any]
    seconds: float
    outcome: str  # "in_progress 17%", "error: ...", "exception: ..."
    parts: list[str]


@dataclass
class Step:
    name: str
    ok: bool = False
    calls: list[Call] = field(default_factory=list)
    message_id: str | None = None
    status: str | None = None
    received: list[str] = field(default_factory=list)  # parts of the last result read


@dataclass
class Report:
    framework: str
    version: str = ""
    transport: str = "stdio"
    connects: bool = False
    connect_error: str | None = None
    tools: list[str] = field(default_factory=list)
    schemas: dict[str, dict[str, str | None]] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    flow_ok: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # the framework defaults in force (timeouts, ...)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def text_part(text: str, label: str = "text") -> str:
    """Name a text piece, saying when an image travels inside it as base64."""
    if _BASE64_RUN.search(text):
        return f"{label} {len(text):,} (image as base64 text)"
    return f"{label} {len(text):,}"


def parse(received: Received) -> tuple[str | None, str | None]:
    """(message_id, status) as a model would read them from the result."""
    text = received.text
    found = _STATUS_FIELD.search(text) or _STATUS_WORD.search(text)
    ident = _MESSAGE_ID.search(text)
    return (ident.group(1) if ident else None, found.group(1) if found else None)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _act(adapter: Adapter, step: Step, tool: str, args: dict[str, Any], deadline: float) -> Received | None:
    """Call a tool as a model does: the same call again after an error, until a result it can read."""
    for _ in range(TRIES):
        if time.monotonic() > deadline:
            return None
        started = time.monotonic()
        try:
            received = await adapter.call(tool, args)
        except Exception as exc:  # the framework raised into its runtime: the model is told it failed
            received = Received(f"{type(exc).__name__}: {exc}", ["exception"], error=True)
        seconds = time.monotonic() - started
        message_id, status = parse(received)
        readable = not received.error and message_id is not None and status is not None
        outcome = "error: " + _short(received.text)
        if readable:
            progress = re.search(r"(\d{1,3})%", received.text)
            outcome = f"{status}" + (f" {progress.group(1)}%" if progress and status == "in_progress" else "")
        step.calls.append(Call(tool, dict(args), round(seconds, 2), outcome, received.parts))
        if readable:
            step.message_id, step.status, step.received = message_id, status, received.parts
            return received
    return None


async def _until_done(adapter: Adapter, step: Step, received: Received, deadline: float) -> None:
    """Follow a job with get_message, as the result's hint says, until it is completed or failed."""
    for _ in range(FOLLOWS):
        if step.status not in ("queued", "in_progress"):
            break
        wait = _WAIT.search(received.text)
        args: dict[str, Any] = {"message_id": step.message_id}
        if wait:
            args["wait_seconds"] = int(wait.group(1))
        nxt = await _act(adapter, step, "get_message", args, deadline)
        if nxt is None:
            return
        received = nxt
    step.ok = step.status == "completed"


async def run_flow(adapter: Adapter, report: Report) -> None:
    started = time.monotonic()
    try:
        async with adapter:
            report.tools = await adapter.tool_names()
            report.connects = len(report.tools) > 0
            try:
                report.schemas = await adapter.schemas()
            except Exception as exc:
                report.schemas = {"(converter)": {"*": f"{type(exc).__name__}: {_short(str(exc))}"}}
            imagine = Step("imagine")
            report.steps.append(imagine)
            first = await _act(adapter, imagine, "imagine", {"prompt": PROMPT}, time.monotonic() + STEP_SECONDS)
            if first is not None:
                await _until_done(adapter, imagine, first, time.monotonic() + STEP_SECONDS)
            if not imagine.ok:
                return
            upscale = Step("U1")
            report.steps.append(upscale)
            args = {"message_id": imagine.message_id, "button": "U1"}
            pressed = await _act(adapter, upscale, "press_button", args, time.monotonic() + STEP_SECONDS)
            if pressed is not None:
                await _until_done(adapter, upscale, pressed, time.monotonic() + STEP_SECONDS)
            if not upscale.ok:
                return
            final = Step("get_message")
            report.steps.append(final)
            got = await _act(adapter, final, "get_message", {"message_id": upscale.message_id}, time.monotonic() + 60)
            final.ok = got is not None and final.status == "completed"
            report.flow_ok = final.ok
    except Exception as exc:
        if not report.connects:
            report.connect_error = f"{type(exc).__name__}: {_short(str(exc), 300)}"
        else:
            report.notes.append(f"the run stopped: {type(exc).__name__}: {_short(str(exc), 300)}")
        traceback.print_exc()
    finally:
        report.seconds = round(time.monotonic() - started, 1)


def config() -> dict[str, Any]:
    """The driver's settings, written by `python -m compat`: transport, command/args/env or url."""
    result: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    return result


def main(make: Any, framework: str, version_of: str) -> None:
    """Build the adapter from the config, run the flow, write the report (whatever happens)."""
    from importlib.metadata import version

    settings = config()
    report = Report(framework=framework, transport=settings["transport"])
    try:
        report.version = version(version_of)
        adapter = make(settings, report)
    except Exception as exc:
        report.connect_error = f"{type(exc).__name__}: {_short(str(exc), 300)}"
        traceback.print_exc()
    else:
        asyncio.run(run_flow(adapter, report))
    Path(sys.argv[2]).write_text(json.dumps(asdict(report), indent=1), encoding="utf-8")
