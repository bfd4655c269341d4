"""Midjourney's own CDN: where the four single images of a finished grid live, with no cropping needed."""

from __future__ import annotations

from collections.abc import Sequence

from mcp_midjourney.models import Button

_GRID_PICKS = frozenset({"U1", "U2", "U3", "U4"})


def grid_image_urls(cdn_base: str, job_uuid: str | None, buttons: Sequence[Button]) -> list[str]:
    """The four single-image URLs of a finished 2x2 grid (`<base>/<uuid>/0_<i>.png`); [] for anything else.

    A message is a grid when it carries U1-U4: an upscale, a describe answer or a video has no such four images.
    """
    if not job_uuid or not {b.name for b in buttons} >= _GRID_PICKS:
        return []
    base = cdn_base.rstrip("/")
    return [f"{base}/{job_uuid}/0_{i}.png" for i in range(4)]
