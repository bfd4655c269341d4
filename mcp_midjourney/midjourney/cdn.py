"""Midjourney's own CDN: where the four single images of a finished grid live, with no cropping needed, and where
a video job's mp4 files live (protocol.md §7: a pattern the anchors build, not seen in a capture; kept here only)."""

from __future__ import annotations

from collections.abc import Sequence

from mcp_midjourney.models import Button

_GRID_PICKS = frozenset({"U1", "U2", "U3", "U4"})
_GRID_VARIATIONS = frozenset({"V1", "V2", "V3", "V4"})  # a grid without U buttons (v8, as the anchors build it)
# The mp4 of video <i> (0-based) of a video job. trueai-org/midjourney-proxy writes "0_<i>.mp4" instead: both are
# unconfirmed by a capture, and this is the one place to change when one is.
VIDEO_PATH = "video/{uuid}/{i}.mp4"


def grid_image_urls(cdn_base: str, job_uuid: str | None, buttons: Sequence[Button]) -> list[str]:
    """The four single-image URLs of a finished 2x2 grid (`<base>/<uuid>/0_<i>.png`); [] for anything else.

    A message is a grid when it carries U1-U4 (or V1-V4): an upscale, a describe answer or a video has no such four
    images.
    """
    names = {b.name for b in buttons}
    if not job_uuid or not (names >= _GRID_PICKS or names >= _GRID_VARIATIONS):
        return []
    base = cdn_base.rstrip("/")
    return [f"{base}/{job_uuid}/0_{i}.png" for i in range(4)]


def video_url(cdn_base: str, job_uuid: str, index: int = 0) -> str:
    """The mp4 of video `index` (0-based) of a video job."""
    return f"{cdn_base.rstrip('/')}/{VIDEO_PATH.format(uuid=job_uuid, i=index)}"


def video_urls(cdn_base: str, job_uuid: str | None, buttons: Sequence[Button]) -> list[str]:
    """The mp4 links of a finished video result; [] for anything else.

    A video grid (an Animate, an Extend, an `--video` prompt) carries one `video_virtual_upscale` pick per video
    (`--bs 1|2|4`): one mp4 each. A picked single video carries Extend buttons: one mp4.
    """
    from mcp_midjourney.midjourney.buttons import button_action

    if not job_uuid:
        return []
    actions = [button_action(b.custom_id) for b in buttons]
    picks = sorted({a.index for a in actions if a.kind == "upscale" and a.detail == "video" and a.index})
    if picks:
        return [video_url(cdn_base, job_uuid, i - 1) for i in picks if 1 <= i <= 4]
    if any(a.kind == "extend" for a in actions):
        return [video_url(cdn_base, job_uuid, 0)]
    return []
