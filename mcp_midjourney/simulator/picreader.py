"""/describe: reading an uploaded image and writing four prompts about it."""

from __future__ import annotations

import colorsys
import hashlib
import io
from functools import partial
from typing import Any

from PIL import Image, UnidentifiedImageError

from .chat import Interaction
from .state import StoredFile, World

JSON = dict[str, Any]

_HUES = ["red", "orange", "yellow", "green", "teal", "blue", "purple", "magenta"]


def _picture_facts(data: bytes) -> tuple[int, int, str] | None:
    """(width, height, content type) of an image that decodes whole; None for anything else."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            content_type = Image.MIME.get(image.format or "", "application/octet-stream")
            image.load()  # a truncated or lying file fails here, not later in a job
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    if width <= 0 or height <= 0:
        return None
    return width, height, content_type


def stored_upload(world: World, it: Interaction) -> JSON | None:
    """Put the image a /describe names (an uploaded attachment) on the CDN; its attachment object.

    None when the upload is missing or is not an image that decodes: the bot then says it cannot read it.
    """
    options = {o.get("name"): o.get("value") for o in it.data.get("options") or [] if isinstance(o, dict)}
    wanted = str(options.get("image"))
    attachments = it.data.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        if not isinstance(attachment, dict) or str(attachment.get("id")) != wanted:
            continue
        data = world.uploads.get(str(attachment.get("uploaded_filename")))
        facts = _picture_facts(data) if data is not None else None
        if data is None or facts is None:
            return None
        width, height, content_type = facts
        filename = str(attachment.get("filename") or "image.png")
        stored = StoredFile(filename, content_type, len(data), width, height, loader=partial(bytes, data))
        return world.add_file(it.channel.id, stored)
    return None


def _mean_pixel(data: bytes) -> tuple[float, ...] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixel = image.convert("RGB").resize((1, 1)).getpixel((0, 0))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return tuple(float(c) for c in pixel) if isinstance(pixel, tuple) else None


def _colour_words(world: World, picture: JSON | None, link: str) -> tuple[str, str]:
    if picture is not None:
        stored = world.files.get(str(picture["id"]))
        pixel = _mean_pixel(world.file_bytes(stored)) if stored is not None else None
        if pixel is not None:
            red, green, blue = (float(channel) / 255 for channel in pixel[:3])
            hue, lightness, _ = colorsys.rgb_to_hls(red, green, blue)
            shade = "dark" if lightness < 0.35 else "pale" if lightness > 0.7 else "vivid"
            ratio = f"{picture['width']}:{picture['height']}" if picture["width"] != picture["height"] else "1:1"
            return f"{shade} {_HUES[int(hue * len(_HUES)) % len(_HUES)]}", ratio
    digest = hashlib.sha256(link.encode()).digest()
    return _HUES[digest[0] % len(_HUES)], "1:1"


def describe_prompts(world: World, picture: JSON | None, link: str) -> list[str]:
    """Four prompts in Midjourney's /describe style, derived from the picture's colour and shape."""
    colour, ratio = _colour_words(world, picture, link)
    return [
        f"a {colour} square with a large white number in the middle, flat minimal poster design --ar {ratio}",
        f"an abstract {colour} composition, bold typography, clean vector art --ar {ratio}",
        f"a {colour} background with white text, simple graphic design, centered numeral --ar {ratio}",
        f"minimalist {colour} card with a single digit, swiss style poster --ar {ratio}",
    ]
