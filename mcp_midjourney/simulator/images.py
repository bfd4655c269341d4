"""Real, small images that show where they came from: the prompt, the job and the image number.

Every picture is a pure function of its `ImageKey`, so bytes can be dropped from the cache and rendered
again identically; a job's images render in a few tens of milliseconds.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import textwrap
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont

SINGLE_SIZE = 512
GRID_SIZE = 1024
UPSCALED_SIZE = 1024
PROGRESS_SIZE = 256


@dataclass(frozen=True)
class ImageKey:
    """One picture: `index` 1..4 is a single image of a job, 0 the whole 2x2 grid.

    `seed` is the job uuid the pixels descend from (an upscale shows its parent's image), `percent`
    marks a low-resolution progress frame, `scale` 2 an upscaled single.
    """

    prompt: str
    seed: str
    index: int
    percent: int | None = None
    scale: int = 1


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colour(prompt: str, seed: str, index: int) -> tuple[int, int, int]:
    """A background colour: its hue from the prompt, its shade from the job and image number."""
    hue_digest = hashlib.sha256(prompt.encode()).digest()
    shade_digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    hue = (hue_digest[0] / 255 + (index - 1) * 0.06 + shade_digest[0] / 255 * 0.05) % 1.0
    lightness = 0.30 + shade_digest[1] / 255 * 0.25
    saturation = 0.45 + shade_digest[2] / 255 * 0.4
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return int(red * 255), int(green * 255), int(blue * 255)


def render_single(prompt: str, seed: str, index: int, size: int = SINGLE_SIZE) -> Image.Image:
    """Image `index` (1..4) of job `seed`: a coloured square with the prompt and the image number."""
    image = Image.new("RGB", (size, size), _colour(prompt, seed, index))
    draw = ImageDraw.Draw(image)
    unit = size / SINGLE_SIZE
    draw.rectangle((0, 0, size - 1, size - 1), outline=(255, 255, 255), width=max(1, int(4 * unit)))
    number = _font(int(180 * unit))
    draw.text((size / 2, size / 2), str(index), font=number, fill=(255, 255, 255), anchor="mm")
    small = _font(int(22 * unit))
    lines = textwrap.wrap(prompt, width=38)[:6]
    for line_number, line in enumerate(lines):
        draw.text((int(18 * unit), int((18 + line_number * 28) * unit)), line, font=small, fill=(255, 255, 255))
    draw.text(
        (int(18 * unit), size - int(40 * unit)),
        f"job {seed[:8]} · #{index}",
        font=small,
        fill=(230, 230, 230),
    )
    return image


def render_grid(prompt: str, seed: str) -> Image.Image:
    """The 2x2 grid of a job's four singles, left to right, top to bottom."""
    half = GRID_SIZE // 2
    grid = Image.new("RGB", (GRID_SIZE, GRID_SIZE))
    for index in range(1, 5):
        grid.paste(render_single(prompt, seed, index, half), (((index - 1) % 2) * half, ((index - 1) // 2) * half))
    return grid


def _progress(key: ImageKey) -> Image.Image:
    frame = render_grid(key.prompt, key.seed) if key.index == 0 else render_single(key.prompt, key.seed, key.index)
    frame = frame.resize((PROGRESS_SIZE, PROGRESS_SIZE), Image.Resampling.BILINEAR)
    # Early frames are blurrier, like a diffusion preview sharpening up.
    radius = max(0.0, (100 - (key.percent or 0)) / 12)
    frame = frame.filter(ImageFilter.GaussianBlur(radius))
    ImageDraw.Draw(frame).text((8, 8), f"{key.percent}%", font=_font(20), fill=(255, 255, 255))
    return frame


def encode(image: Image.Image, fmt: str) -> bytes:
    """PNG (fast compression) or WEBP bytes."""
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, "PNG", compress_level=1)
    else:
        image.save(buffer, "WEBP", quality=60, method=0)
    return buffer.getvalue()


def render(key: ImageKey) -> tuple[bytes, str, int, int]:
    """The encoded picture for `key`: (bytes, content type, width, height)."""
    if key.percent is not None:
        return encode(_progress(key), "WEBP"), "image/webp", PROGRESS_SIZE, PROGRESS_SIZE
    if key.index == 0:
        return encode(render_grid(key.prompt, key.seed), "PNG"), "image/png", GRID_SIZE, GRID_SIZE
    size = UPSCALED_SIZE if key.scale > 1 else SINGLE_SIZE
    return encode(render_single(key.prompt, key.seed, key.index, size), "PNG"), "image/png", size, size


def render_animation(prompt: str, seed: str, index: int = 0) -> bytes:
    """A small animated WEBP, like the attachment of a video result: the 2x2 grid of its videos (`index` 0) or one
    picked video (1..4), whose frames turn a little; its first frame is a still of the first frames."""
    still = render_grid(prompt, seed) if index == 0 else render_single(prompt, seed, index)
    base = still.resize((SINGLE_SIZE, SINGLE_SIZE), Image.Resampling.BILINEAR)
    frames = [base.rotate(angle, fillcolor=(0, 0, 0)) for angle in (0, 3, 6, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=150, loop=0, quality=50)
    return buffer.getvalue()


def render_step(prompt: str, seed: str, percent: int) -> bytes:
    """A video job's progress frame (`…_step_N.jpeg`): a blurred still of its grid, as JPEG."""
    buffer = io.BytesIO()
    _progress(ImageKey(prompt, seed, 0, percent)).save(buffer, "JPEG", quality=60)
    return buffer.getvalue()


def fake_mp4(seed: str, index: int) -> bytes:
    """The bytes served for a video's mp4: an ISO-BMFF `ftyp` box and an `mdat` naming the job and the video.

    Not playable (no `moov`): the simulator only has to show where the file is and that it downloads."""
    body = f"simulated video {index} of job {seed}".encode()
    ftyp = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    return ftyp + (len(body) + 8).to_bytes(4, "big") + b"mdat" + body


class ImageCache:
    """A bounded, thread-safe cache of rendered bytes; what falls out is rendered again on demand."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._items: OrderedDict[ImageKey, tuple[bytes, str, int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: ImageKey) -> tuple[bytes, str, int, int]:
        """The rendered picture for `key`, from the cache or freshly drawn."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        rendered = render(key)
        with self._lock:
            self._items[key] = rendered
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return rendered
