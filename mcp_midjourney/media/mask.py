"""Vary (Region)'s mask: a rectangle, or a PNG the caller drew, turned into the black-and-white PNG Midjourney's
inpaint form takes (white where it should redraw)."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw

from ..config import MAX_IMAGE_PIXELS
from .clean import decoded


def region_mask(
    *,
    region: list[float] | None = None,
    data: bytes | None = None,
    size: int = 1024,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> str:
    """Vary (Region)'s mask as base64 PNG: white where Midjourney should redraw, black elsewhere.

    From a rectangle of fractions ``[left, top, right, bottom]``, or from a PNG the caller drew (its white or
    opaque pixels mark the region), refused (`ValueError`) above `max_pixels` before anything is decoded. Decoding
    a drawn mask takes a while: call it in a worker thread.
    """
    if region is not None:
        if len(region) != 4 or not all(0.0 <= v <= 1.0 for v in region):
            raise ValueError("region must be [left, top, right, bottom], each a fraction between 0 and 1.")
        left, top, right, bottom = region
        if right - left < 0.02 or bottom - top < 0.02:
            raise ValueError("region is empty: right must exceed left and bottom exceed top.")
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).rectangle(
            (round(left * size), round(top * size), round(right * size) - 1, round(bottom * size) - 1), fill=255
        )
    elif data is not None:
        with decoded(data, max_pixels) as drawn:
            if "A" in drawn.getbands():
                mask = drawn.getchannel("A").point(lambda v: 255 if v > 127 else 0)
            else:
                mask = drawn.convert("L").point(lambda v: 255 if v > 127 else 0)
        if mask.getbbox() is None:
            raise ValueError("the mask is empty: paint the region to change in white.")
    else:
        raise ValueError("give a region or a mask image")
    out = io.BytesIO()
    mask.save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")
