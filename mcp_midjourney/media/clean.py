"""What an image the agent hands us becomes before it leaves the machine: its pixels, and nothing else.

A file is opened only as PNG, JPEG, WebP or GIF, its size checked against a pixel cap before anything is
decoded, decoded in full, and re-encoded from the pixels alone: no EXIF (GPS), no text chunks, no ICC profile, no
bytes after the image's end. Lossless sources (PNG, GIF, lossless WebP) become PNG; lossy ones stay lossy (JPEG,
WebP) at a high quality. An animated image is sent as its first frame.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
# Pillow warns (and only warns) above ~89 million pixels: here that is an error, whatever the caller's cap.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class ImageRefused(ValueError):
    """The bytes are not an image this server sends; the message says why."""


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """The image in `data`, opened (its header read, nothing decoded yet) and within `max_pixels`."""
    too_large = f"at most {max_pixels:,} pixels are accepted (MJ_MAX_IMAGE_PIXELS)"
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused(f"has more pixels than Pillow decodes safely; {too_large}") from None
    except Exception:  # any failure to read untrusted bytes is a refusal, never a crash of the tool
        raise ImageRefused("is not a PNG, JPEG, WebP or GIF image") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageRefused(f"is {width}x{height} pixels; {too_large}")
    return image


def decoded(data: bytes, max_pixels: int) -> Image.Image:
    """The image in `data`, decoded in full (truncated or corrupt data is refused)."""
    image = open_image(data, max_pixels)
    try:
        image.load()
    except Exception:
        image.close()
        raise ImageRefused("is damaged or truncated: it could not be decoded") from None
    return image


def clean_image(data: bytes, max_pixels: int) -> tuple[str, bytes]:
    """``(extension, bytes)``: the image in `data` re-encoded from its pixels alone; `ImageRefused` if it is not one."""
    with decoded(data, max_pixels) as image:
        source = image.format
        lossless = source in ("PNG", "GIF") or (source == "WEBP" and webp_is_lossless(data))
        try:
            pixels = ImageOps.exif_transpose(image)  # the orientation is applied: the EXIF that said so goes
        except Exception:
            pixels = image.copy()
    alpha = "A" in pixels.getbands() or "transparency" in pixels.info
    keep = ("1", "L", "P", "RGB", "I;16") if lossless else ("L", "RGB")  # modes the output format stores as they are
    if pixels.mode not in keep or "transparency" in pixels.info:
        pixels = pixels.convert("RGBA" if alpha else "RGB")
    pixels.info.clear()  # what Pillow would write back: exif, icc_profile, text chunks, comments
    out = io.BytesIO()
    if lossless:
        extension = "png"
        pixels.save(out, format="PNG")
    elif source == "WEBP":
        extension = "webp"
        pixels.save(out, format="WEBP", quality=92)
    else:
        extension = "jpg"
        pixels.convert("L" if pixels.mode == "L" else "RGB").save(out, format="JPEG", quality=95)
    return extension, out.getvalue()


def webp_is_lossless(data: bytes) -> bool:
    """Whether a WebP file's (first) image is VP8L, WebP's lossless coding, walking its RIFF chunks."""
    offset = 12
    while offset + 8 <= len(data):
        tag, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if tag in (b"VP8L", b"VP8 "):
            return tag == b"VP8L"
        offset += 8 + 16 if tag == b"ANMF" else 8 + size + (size & 1)  # a frame's chunks follow its 16-byte header
    return False
