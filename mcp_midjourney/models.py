"""The shared vocabulary: jobs, their status, buttons, and what the tools return.

Everything here is plain data. It imports nothing from the rest of the package so that every layer
(server, engine, midjourney, discord, simulator) can depend on it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

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


class Button(BaseModel):
    """One pressable component under a Midjourney message, as Discord sent it."""

    model_config = ConfigDict(frozen=True)

    custom_id: str
    label: str = Field(description="What Discord shows: the label, else the emoji (e.g. 'U1', '🔄', 'Vary (Strong)').")
    name: str = Field(description="Stable short name derived from the custom_id (e.g. 'U1', 'reroll', 'vary_strong').")
    emoji: str | None = None
    style: int | None = None
    disabled: bool = False
    component_type: int = 2


class ButtonView(BaseModel):
    """A button as the model sees it: what to pass to press_button."""

    label: str
    name: str


class JobView(BaseModel):
    """The state of one Midjourney job, as every tool returns it."""

    message_id: str = Field(
        description="The id to pass to press_button / get_message. Once the job has its result this is the "
        "Discord id of the result message, which is stable and survives a server restart."
    )
    status: JobStatus
    progress: int = Field(ge=0, le=100, description="Percent done, 0-100.")
    kind: str = Field(description="What made this job: imagine, upscale, variation, reroll, zoom, pan, ...")
    prompt: str = Field(description="The prompt as sent (Midjourney's echo may differ slightly).")
    job_uuid: str | None = Field(default=None, description="Midjourney's job id (also in its image URLs).")
    image_url: str | None = Field(default=None, description="The result image (the 2x2 grid for a grid job).")
    image_urls: list[str] = Field(
        default_factory=list,
        description="For a grid, the four single images (1..4, left-to-right, top-to-bottom).",
    )
    preview_url: str | None = Field(default=None, description="Low-resolution preview while the job runs.")
    buttons: list[ButtonView] = Field(default_factory=list, description="Buttons you may press next.")
    parent_message_id: str | None = Field(default=None, description="The message whose button made this job.")
    parent_button: str | None = Field(default=None, description="The short name of that button.")
    error: str | None = Field(default=None, description="Why the job failed, in Midjourney's words where it gave them.")
    warnings: list[str] = Field(
        default_factory=list, description="Things to know: account trouble, prompt parameters Midjourney may reject."
    )
    next: str = Field(description="A one-line hint of what to do next.")
