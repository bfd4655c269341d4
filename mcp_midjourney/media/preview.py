"""Downscaling images into previews a model can see.

`make_preview`: Pillow decodes, downscales to about 1024 px on the long side and re-encodes as JPEG (or WEBP
when that is what fits), so a tool result stays far below Claude Desktop's 1,048,576-character limit.
`fetch_preview` fetches with the guarded `media.fetch.fetch_image` first.

Why Pillow rather than Discord's media proxy (``?width=&height=``): the proxy only resizes Discord attachment
URLs (not Midjourney's CDN), keeps the PNG format (a 1024 px PNG of a photo is still ~2 MB) and cannot be
exercised offline; Pillow costs ~0.1-0.3 s of CPU per image and always meets the bound. `discord_resize_url`
is kept for callers that want the proxy anyway. Numbers: docs/benchmarks-preview.md (bench/bench_preview.py).
"""

from __future__ import annotations

import io
import warnings
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import anyio.to_thread
import httpx2
from PIL import Image, ImageOps, features

from .fetch import DISCORD_CDN_HOST, DISCORD_MEDIA_HOST, ImageError, fetch_image

# The Anthropic API refuses images over 8000 px on a side; a preview never needs to come close.
MAX_OUTPUT_SIDE = 8000
# Pillow's own decompression-bomb threshold (89 M pixels), applied before any pixel is decoded.
MAX_INPUT_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# JPEG first: it encodes ~30x faster than WEBP at a similar size on photographic grids (see the benchmark).
JPEG_QUALITIES = (85, 75, 65, 50, 35)


class PreviewError(ImageError):
    """Bytes could not be turned into a preview (not an image, too many pixels, cannot fit the bound)."""


def _decode(data: bytes, max_side: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_INPUT_PIXELS:
                raise PreviewError(
                    f"the image is {width}x{height} pixels, more than {MAX_INPUT_PIXELS:,}: not decoded "
                    "(decompression-bomb guard)"
                )
            # JPEG can decode at 1/2, 1/4 or 1/8 scale directly: far less work for a big photo.
            image.draft("RGB", (max_side, max_side))
            image.load()
            return ImageOps.exif_transpose(image) or image
    except PreviewError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreviewError("the image has too many pixels to decode (decompression-bomb guard)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PreviewError(f"the bytes are not an image Pillow can decode ({type(exc).__name__})") from None


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white (JPEG has no alpha; black would hide dark art)."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=quality, optimize=True, progressive=False)
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def make_preview(data: bytes, *, max_side: int = 1024, max_bytes: int = 700_000) -> tuple[bytes, str]:
    """A downscaled copy of an image the model can see: ``(bytes, mime type)``, JPEG or WEBP.

    The long side becomes at most `max_side` (never upscaled), transparency is flattened on white, and the
    quality steps down until the bytes are at most `max_bytes` (WEBP is tried when no JPEG of the quality
    ladder fits; if nothing fits, the size shrinks). Raise `PreviewError` for bytes that are not a decodable
    image or that decode to more than `MAX_INPUT_PIXELS`. CPU-bound (~0.1-0.3 s): call it in a worker thread.
    """
    if not 16 <= max_side <= MAX_OUTPUT_SIDE:
        raise ValueError(f"max_side must be between 16 and {MAX_OUTPUT_SIDE}, got {max_side}")
    if max_bytes < 1024:
        raise ValueError(f"max_bytes must be at least 1024, got {max_bytes}")
    image = _flatten(_decode(data, max_side))
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    webp = features.check("webp")
    for _shrink in range(6):
        smallest = 0
        for quality in JPEG_QUALITIES:
            jpeg = _encode(image, "JPEG", quality)
            if len(jpeg) <= max_bytes:
                return jpeg, "image/jpeg"
            smallest = len(jpeg)
        if webp:
            # At low quality WEBP keeps more detail per byte than JPEG; only then is its slower encoder worth it.
            packed = _encode(image, "WEBP", JPEG_QUALITIES[-1])
            if len(packed) <= max_bytes:
                return packed, "image/webp"
            smallest = min(smallest, len(packed))
        width, height = image.size
        if min(width, height) <= 32:
            break
        # Bytes grow about with the pixel count: go straight to the size that should fit, a little under.
        scale = min(0.8, max(0.2, 0.9 * (max_bytes / smallest) ** 0.5))
        image = image.resize((max(1, int(width * scale)), max(1, int(height * scale))), Image.Resampling.LANCZOS)
    raise PreviewError(f"could not fit a preview in {max_bytes:,} bytes")


async def fetch_preview(
    client: httpx2.AsyncClient,
    url: str,
    *,
    trusted_hosts: frozenset[str] = frozenset(),
    max_side: int = 1024,
    max_bytes: int = 700_000,
    timeout: float = 15.0,
) -> tuple[bytes, str]:
    """`fetch_image` then `make_preview` in a worker thread (the event loop keeps serving): ``(bytes, mime)``.

    Raise `ImageError` (`ImageFetchError` or `PreviewError`) with a message fit for a note beside the URLs.
    """
    data, _ = await fetch_image(client, url, timeout=timeout, trusted_hosts=trusted_hosts)
    return await anyio.to_thread.run_sync(lambda: make_preview(data, max_side=max_side, max_bytes=max_bytes))


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """`width` x `height` scaled down (never up) so the long side is at most `max_side`, aspect kept."""
    long_side = max(width, height)
    if long_side <= max_side or long_side <= 0:
        return width, height
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def discord_resize_url(url: str, width: int, height: int, *, fmt: str | None = None) -> str | None:
    """The Discord media-proxy URL that serves a Discord attachment resized to `width` x `height`.

    ``https://cdn.discordapp.com/attachments/…?ex=…&is=…&hm=…`` becomes
    ``https://media.discordapp.net/attachments/…?ex=…&is=…&hm=…&width=W&height=H`` (the signature stays:
    the proxy checks it). `fmt` (e.g. ``"webp"``) asks the proxy to convert too. None for any other host
    (Midjourney's CDN has no such proxy). Give the size with the original's aspect ratio (`fit_within`).
    """
    if width <= 0 or height <= 0:
        raise ValueError("width and height must be positive")
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or host not in (DISCORD_CDN_HOST, DISCORD_MEDIA_HOST):
        return None
    if not parts.path.startswith(("/attachments/", "/ephemeral-attachments/")):
        return None
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("width", "height", "format")
    ]
    query += [("width", str(width)), ("height", str(height))]
    if fmt:
        query.append(("format", fmt))
    return urlunsplit(("https", DISCORD_MEDIA_HOST, parts.path, urlencode(query), ""))
