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
    """Where a job is in its life."""

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
    """A button: pass its name (or label) to press_button."""

    model_config = LEAN

    label: str
    name: str


class JobView(BaseModel):
    """One Midjourney job."""

    model_config = LEAN

    message_id: str = Field(
        description="Pass this to press_button / get_message. Once there is a result: the result message's "
        "Discord id, stable across restarts."
    )
    status: JobStatus
    progress: int = Field(ge=0, le=100, description="Percent done.")
    kind: str = Field(description="imagine, upscale, variation, reroll, zoom, pan, describe, blend, ...")
    prompt: str = Field(description="The prompt as sent.")
    job_uuid: str | None = Field(default=None, description="Midjourney's job id.")
    image_url: str | None = Field(default=None, description="The result image (the whole grid for a grid).")
    image_urls: list[str] = Field(
        default_factory=list,
        description="A grid's four images: 1 top-left .. 4 bottom-right.",
    )
    preview_url: str | None = Field(default=None, description="Low-resolution image while running.")
    buttons: list[ButtonView] = Field(default_factory=list, description="What press_button accepts next.")
    parent_message_id: str | None = Field(default=None, description="The message pressed to make this job.")
    parent_button: str | None = Field(default=None, description="The button pressed.")
    error: str | None = Field(default=None, description="Why it failed, in Midjourney's words.")
    prompts: list[str] = Field(default_factory=list, description="Prompts /describe suggests.")
    input_prompt: str | None = Field(default=None, description="needs_input: the pre-filled prompt to edit.")
    note: str | None = Field(default=None, description="Midjourney's reply in words.")
    files: list[str] = Field(default_factory=list, description="Saved copies (MJ_DOWNLOAD_DIR).")
    budget: str | None = Field(default=None, description="Usage budget left.")
    warnings: list[str] = Field(default_factory=list, description="Account trouble, risky parameters.")
    next: str = Field(description="What to do next.")


class PromptCheckView(BaseModel):
    """A prompt checked locally, before any job is sent."""

    model_config = LEAN

    ok: bool = Field(description="True when Midjourney should accept the prompt's parameters.")
    errors: list[str] = Field(default_factory=list, description="What must change, each with a corrected example.")
    warnings: list[str] = Field(default_factory=list, description="What may be a problem (unknown parameters...).")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The parameters, by canonical name.")
    text: str = Field(description="The prompt's words without parameters.")
    image_urls: list[str] = Field(default_factory=list, description="The leading image prompts.")
    jobs: int = Field(description="How many jobs the prompt runs (--repeat and {a, b} permutations).")
    shortened: list[str] = Field(default_factory=list, description="Midjourney's /shorten variants, if asked.")
    budget: str | None = Field(default=None, description="What the usage budget has left, when one is set.")


class AccountsView(BaseModel):
    """The Discord accounts the server drives."""

    model_config = LEAN

    accounts: list[dict[str, Any]] = Field(
        description="Each account: name, connected, healthy, load, info, and its own budget when it has one."
    )
    budget: str | None = Field(default=None, description="What the usage budget has left, when one is set.")
    problems: str | None = Field(default=None, description="Account trouble a person must fix, if any.")
