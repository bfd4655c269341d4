"""How a job looks to the model: one-line hints, a text summary, structured content, a preview it can see.

The `Renderer` also keeps, outside the job, what it saved of each job into ``MJ_DOWNLOAD_DIR``: only the
engine writes a `Job`. Images are fetched, downscaled and saved through media/ (which knows Discord's hosts
and the file names of a grid); nothing here reads a URL's grammar.
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from typing import TypeVar

import httpx2
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from ..config import Settings
from ..engine.store import Job
from ..media.fetch import ImageError, trusted_hosts_for
from ..media.save import SaveError, download_items, save_images
from ..models import ButtonView, JobStatus, JobView

log = logging.getLogger(__name__)
_V = TypeVar("_V")

PREVIEW_SIDE = 1024
PREVIEW_BYTES = 700_000  # base64 makes it ~0.93 MB: far below the 1,048,576-character limit of a tool result
PREVIEWS_KEPT = 64
SAVED_KEPT = 1024  # jobs whose saved paths are remembered (a few hundred bytes each)


def next_hint(job: Job) -> str:
    """One line telling the model what it can do now (with the result's message_id, which the result carries)."""
    if job.status is JobStatus.COMPLETED:
        names = {b.name for b in job.buttons}
        if {"U1", "V1"} <= names:
            return (
                "press_button on this message_id: 'U1'..'U4' upscales image 1-4 (1 top-left, 2 top-right, "
                "3 bottom-left, 4 bottom-right), 'V1'..'V4' varies it, 'reroll' makes a new grid."
            )
        if job.video_urls:
            return _video_hint(job, names)
        if "V1" in names and len(job.image_urls) == 4:  # a grid with no U buttons (v8)
            return (
                "The four images are in image_urls. press_button on this message_id: 'V1'..'V4' varies one, "
                "'reroll' makes a new grid."
            )
        if job.prompts:
            return "Use one of the prompts with imagine, or press describe_1..describe_4 / imagine_all."
        if job.buttons:
            some = ", ".join(b.name for b in job.buttons[:6])
            video = " (animate_high / animate_low make a video)" if "animate_high" in names else ""
            return f"Refine with press_button on this message_id, e.g. {some}{video}."
        return "Done."
    if job.status is JobStatus.FAILED:
        if job.buttons:  # a moderation hold's message: its buttons are for a person to choose
            some = " or ".join(f"'{b.label}'" for b in job.buttons[:3])
            return (
                f"The job failed and Midjourney holds the account: tell the user; press_button on this message_id "
                f"with button={some} only if they ask."
            )
        return "The job failed: read error, adjust the prompt or settings, and try again."
    if job.status is JobStatus.NEEDS_INPUT:
        if job.modal is not None and job.modal.iframe:
            return (
                "Vary (Region) waits: press_button on this message_id with button='submit', prompt=..., "
                "region=[left, top, right, bottom] (fractions 0-1 of the image)."
            )
        return "Midjourney asks for a prompt: press_button on this message_id, button='submit', prompt=... ."
    return "Still running: call get_message with this message_id and wait_seconds=25 until completed."


def _video_hint(job: Job, names: set[str]) -> str:
    if any(n.startswith("video_upscale") for n in names):
        return (
            f"The mp4 files are in video_urls. press_button on this message_id: 'U1'..'U{len(job.video_urls)}' "
            "picks one video, which can then be extended."
        )
    if "animate_high_extend" in names or "animate_low_extend" in names:
        return (
            "The mp4 is in video_urls. press_button on this message_id with 'extend_high' or 'extend_low' makes "
            "it about 4 s longer."
        )
    return "The mp4 files are in video_urls."


def job_view(
    job: Job,
    warnings: list[str] | None = None,
    budget: str | None = None,
    files: list[str] | None = None,
    recent: list[str] | None = None,
) -> JobView:
    """The structured form of a job, as every tool returns it; `files` are its saved copies, if any."""
    notes = list(warnings or [])
    if job.queued_note and job.in_flight:
        notes.append(job.queued_note)
    return JobView(
        message_id=job.handle,
        status=job.status,
        progress=max(0, min(100, job.progress)),
        kind=job.kind,
        prompt=job.prompt,
        job_uuid=job.job_uuid,
        image_url=job.image_url,
        # A single image's one URL is image_url already: the list is a grid's four.
        image_urls=list(job.image_urls) if len(job.image_urls) > 1 else [],
        video_urls=list(job.video_urls),
        preview_url=job.preview_url,
        buttons=[
            ButtonView(label=b.label, name=b.name) for b in (job.buttons or job.progress_buttons) if not b.disabled
        ],
        parent_message_id=job.parent_message_id,
        parent_button=job.parent_button,
        error=job.error,
        prompts=list(job.prompts),
        input_prompt=job.modal.prefilled if job.modal is not None else None,
        note=job.note,
        files=list(files or []),
        budget=budget,
        warnings=notes,
        recent=list(recent or []),
        next=next_hint(job),
    )


def structured(view: JobView) -> dict[str, object]:
    """The view as structured content: empty fields left out (the output schema requires none of them)."""
    return view.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {
        "message_id": view.message_id,
        "status": view.status.value,
        "progress": view.progress,
        "kind": view.kind,
        "prompt": view.prompt,
        "next": view.next,
    }


def summary(view: JobView) -> str:
    """A few lines a person (or a model that is given only the text) can read: each URL once."""
    head = f"{view.kind} {view.status.value}" + (f" {view.progress}%" if view.status == "in_progress" else "")
    lines = [f"{head} · message_id {view.message_id}"]
    if view.prompt:
        lines.append(f"prompt: {view.prompt}")
    if view.parent_message_id:
        lines.append(f"from: {view.parent_button or 'a press'} on {view.parent_message_id}")
    if view.error:
        lines.append(f"error: {view.error}")
    if view.note:
        lines.append(f"reply: {view.note}")
    if view.image_url:
        lines.append(f"image: {view.image_url}")
    for i, url in enumerate(view.image_urls, start=1):
        lines.append(f"image {i}: {url}")
    lines += [f"video {i}: {url}" for i, url in enumerate(view.video_urls, start=1)]
    lines += [f"prompt {i}: {p}" for i, p in enumerate(view.prompts, start=1)]
    if view.input_prompt is not None:
        lines.append(f"input_prompt: {view.input_prompt}")
    lines += [f"saved: {f}" for f in view.files]
    if view.buttons:
        lines.append(
            "buttons: " + ", ".join(b.name if b.name == b.label else f"{b.label} ({b.name})" for b in view.buttons)
        )
    lines += [f"warning: {w}" for w in view.warnings]
    if view.budget:
        lines.append(view.budget)
    if view.recent:
        lines.append("recent jobs: " + "; ".join(view.recent))
    lines.append(f"next: {view.next}")
    return "\n".join(lines)


class Renderer:
    """Turns jobs into tool results, fetching previews and saving downloads where asked.

    It remembers (bounded, oldest forgotten first) the previews it made and the files it saved per job, so a
    job read again shows its saved copies without downloading them twice.
    """

    def __init__(self, settings: Settings, http: httpx2.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        # Result images come from Discord's messages, not from the user: the configured hosts are trusted.
        self.trusted = trusted_hosts_for([settings.api_base, settings.cdn_base])
        self._previews: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._saved: OrderedDict[str, list[str]] = OrderedDict()

    def saved_files(self, job: Job) -> list[str]:
        """The local copies saved of `job` (MJ_DOWNLOAD_DIR), empty when none were."""
        return list(self._saved.get(_job_key(job), []))

    async def render(
        self,
        job: Job,
        *,
        warnings: list[str],
        budget: str | None,
        preview: bool = True,
        recent: list[str] | None = None,
    ) -> CallToolResult:
        """The tool result for `job`: the summary text, the structured `JobView` and, if asked (and MJ_PREVIEW is
        not off), a preview."""
        notes = list(warnings)
        blocks: list[ContentBlock] = []
        if job.status is JobStatus.COMPLETED and job.image_url:
            # Saved once per job; a job none of whose images could be saved is tried again.
            if self.settings.download_dir is not None and not self.saved_files(job):
                await self._save(job, notes)
            if preview and self.settings.preview:
                image = await self._preview(job.image_url, notes)
                if image is not None:
                    blocks.append(image)
        view = job_view(job, notes, budget, self.saved_files(job), recent)
        return CallToolResult(
            content=[TextContent(type="text", text=summary(view)), *blocks], structured_content=structured(view)
        )

    async def _preview(self, url: str, notes: list[str]) -> ImageContent | None:
        # Imported at the first preview: Pillow stays out of the server's start-up.
        from ..media.preview import fetch_preview

        cached = self._previews.get(url)
        if cached is None:
            try:
                cached = await fetch_preview(
                    self.http, url, trusted_hosts=self.trusted, max_side=PREVIEW_SIDE, max_bytes=PREVIEW_BYTES
                )
            except ImageError as exc:
                notes.append(f"no preview ({exc}); open image_url instead")
                return None
            _remember(self._previews, url, cached, PREVIEWS_KEPT)
        data, mime = cached
        return ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime)

    async def _save(self, job: Job, notes: list[str]) -> None:
        assert self.settings.download_dir is not None
        items = download_items(job.job_uuid or job.handle, job.image_url, job.image_urls, job.video_urls)
        try:
            paths = await save_images(self.http, items, self.settings.download_dir, trusted_hosts=self.trusted)
        except SaveError as exc:
            paths = list(exc.saved)
            notes.append(f"could not save every image: {exc}")
        except ImageError as exc:
            notes.append(f"could not save the images: {exc}")
            return
        _remember(self._saved, _job_key(job), [str(p) for p in paths], SAVED_KEPT)


def _job_key(job: Job) -> str:
    # Midjourney's job uuid outlives the message ids (and a restart); the handle serves before there is one.
    return job.job_uuid or job.handle


def _remember(memory: OrderedDict[str, _V], key: str, value: _V, limit: int) -> None:
    memory[key] = value
    while len(memory) > limit:
        memory.popitem(last=False)
