"""The shared vocabulary: jobs, their status, buttons, and what the tools return.

Everything here is plain data. It imports nothing from the rest of the package so that every layer
(server, engine, midjourney, discord, simulator) can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def lean_schema(schema: dict[str, Any], *, keep_defaults: bool = False) -> None:
    """Keep schemas short, and acceptable to every agent framework's converter.

    They are sent to the model with the tool list on every turn. Drops pydantic's titles (and, for outputs, empty
    defaults). An optional ``X | None`` becomes plain ``X``, optional by absence: google-genai, anthropic's strict
    transform and pydantic-ai's Gemini transformer reject ``type: [X, "null"]`` lists, and an ``anyOf`` with null
    costs bytes and confuses some of them. Nulls are never sent in results; a client sending null still validates.
    """
    schema.pop("title", None)
    for sub in schema.get("$defs", {}).values():
        lean_schema(sub, keep_defaults=keep_defaults)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
        options = prop.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del prop["anyOf"]
            if len(rest) == 1:
                prop.update(rest[0])
            else:
                prop["anyOf"] = rest
            if prop.get("default", 0) is None:
                del prop["default"]
        if not keep_defaults and "default" in prop and prop["default"] in (None, [], ""):
            del prop["default"]
        items = prop.get("items")
        if isinstance(items, dict):
            items.pop("title", None)


def _lean_output(schema: dict[str, Any]) -> None:
    lean_schema(schema)


LEAN = ConfigDict(json_schema_extra=_lean_output)

MIDJOURNEY_BOT_ID = "936929561302675456"
NIJI_BOT_ID = "1022952195194359889"


class JobStatus(StrEnum):
    # Where a job is in its life (a comment, not a docstring: it would be sent in every output schema).

    QUEUED = "queued"  # sent, or held by Midjourney's "Job queued"; not yet rendering
    IN_PROGRESS = "in_progress"  # Midjourney is rendering (a percentage is known or soon will be)
    NEEDS_INPUT = "needs_input"  # a modal opened: the job waits for a prompt (Remix, Custom Zoom)
    COMPLETED = "completed"  # the result message arrived
    FAILED = "failed"  # Midjourney or Discord refused; `error` says why

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


@dataclass(frozen=True, slots=True)
class Button:
    """One pressable component under a Midjourney message, as Discord sent it.

    A slotted dataclass, not a pydantic model: every finished job keeps its buttons (nine or more), and a
    validated model cost ~1 KiB and several microseconds each (bench/memory.py, bench/dispatch.py).
    """

    custom_id: str
    label: str  # what Discord shows: the label, else the emoji (e.g. 'U1', '🔄', 'Vary (Strong)')
    name: str  # stable short name derived from the custom_id (e.g. 'U1', 'reroll', 'vary_strong')
    emoji: str | None = None
    style: int | None = None
    disabled: bool = False
    component_type: int = 2


class ButtonView(BaseModel):
    model_config = LEAN

    label: str
    name: str


class JobView(BaseModel):
    """One Midjourney job; fields that are empty are left out. The tool descriptions say what each means."""

    model_config = LEAN

    message_id: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    kind: str
    prompt: str
    job_uuid: str | None = None
    image_url: str | None = None
    image_urls: list[str] = Field(default_factory=list)  # a grid's four: 1 top-left .. 4 bottom-right
    preview_url: str | None = None
    buttons: list[ButtonView] = Field(default_factory=list)
    parent_message_id: str | None = None
    parent_button: str | None = None
    error: str | None = None
    prompts: list[str] = Field(default_factory=list)
    input_prompt: str | None = None
    note: str | None = None
    files: list[str] = Field(default_factory=list)
    budget: str | None = None
    warnings: list[str] = Field(default_factory=list)
    recent: list[str] = Field(default_factory=list)  # get_message without an id: the other recent jobs
    next: str


class PromptCheckView(BaseModel):
    """A prompt checked locally, before any job is sent; empty fields are left out."""

    model_config = LEAN

    ok: bool  # Midjourney should accept the prompt's parameters
    errors: list[str] = Field(default_factory=list)  # what must change, each with a corrected example
    warnings: list[str] = Field(default_factory=list)  # what may be a problem (unknown parameters...)
    parameters: dict[str, Any] = Field(default_factory=dict)  # by canonical name
    text: str  # the prompt's words without parameters
    image_urls: list[str] = Field(default_factory=list)  # the leading image prompts
    jobs: int  # how many jobs the prompt runs (--repeat and {a, b} permutations)
    shortened: list[str] = Field(default_factory=list)  # Midjourney's /shorten variants, if asked
    budget: str | None = None  # what the usage budget has left, when one is set


class AccountsView(BaseModel):
    """The Discord accounts the server drives: name, connected, healthy, load, info, budget each."""

    model_config = LEAN

    accounts: list[dict[str, Any]]
    budget: str | None = None  # what the usage budget has left, when one is set
    problems: str | None = None  # account trouble a person must fix, if any


# What the job tools publish as their outputSchema: the fields a client may rely on (every result has the first
# six), inlined. A result carries the others too when they are set (image_url, parent_message_id, error, ...,
# see JobView); the schema allows them. Five tools return jobs: the whole JobView five times was 7,000 characters.
JOB_OUTPUT_FIELDS = ("message_id", "status", "progress", "kind", "prompt", "next", "image_url", "image_urls", "buttons")


def published_schema(model: type[BaseModel], fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """`model`'s JSON schema with its definitions inlined, titles and descriptions dropped, only `fields` kept."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
            return {k: inline(v) for k, v in node.items() if k not in ("title", "description")}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    out: dict[str, Any] = inline(schema)
    if fields is not None:
        out["properties"] = {k: v for k, v in out["properties"].items() if k in fields}
        out["required"] = [k for k in out.get("required", []) if k in fields]
    return out
