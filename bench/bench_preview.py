"""How to downscale a finished image into a preview the model can see: Pillow re-encode vs. Discord's media proxy.

    python bench/bench_preview.py            # prints the tables, writes docs/benchmarks-preview.md

Inputs: the simulator's real PNGs (the bytes its CDN serves: a 1024 px grid, a 512 px single, a 1024 px
upscale) and a photo-like 2048 px PNG, the size and entropy of a real Midjourney grid (the simulator's flat
colours compress far better than a render does).

- **Pillow** (`mcp_midjourney.media.preview.make_preview`): the server fetches the original, then decodes, resizes
  to 1024 px and re-encodes. Measured: CPU time per image (median of several runs) and bytes out.
- **Discord's media proxy** (``media.discordapp.net/...?width=&height=[&format=webp]``): Discord resizes; the
  server only fetches the result. It cannot be called offline, so the bytes it would return are emulated:
  the same 1024 px resize, encoded as PNG (the proxy keeps the format unless asked) and as WEBP quality 80.
"""

from __future__ import annotations

import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcp_midjourney.media.preview import make_preview  # noqa: E402
from mcp_midjourney.simulator.images import ImageKey, render  # noqa: E402

P = ParamSpec("P")
T = TypeVar("T")
OUT = ROOT / "docs" / "benchmarks-preview.md"
RUNS = 5
BOUND = 700_000  # make_preview's default byte bound
CLAUDE_LIMIT = 1_048_576  # characters of a whole tool result in Claude Desktop; base64 grows bytes by 4/3


def photo_like(size: int = 2048, seed: int = 3) -> bytes:
    """A PNG with a real render's entropy: smooth shapes, gradients and fine grain."""
    rnd = random.Random(seed)
    coarse = Image.frombytes("RGB", (size // 16, size // 16), rnd.randbytes((size // 16) ** 2 * 3))
    shapes = coarse.resize((size, size), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(6))
    gradient = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    grain = Image.frombytes("RGB", (size, size), rnd.randbytes(size * size * 3)).filter(ImageFilter.GaussianBlur(0.7))
    image = Image.blend(Image.blend(shapes, gradient, 0.35), grain, 0.08)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def samples() -> list[tuple[str, bytes]]:
    prompt, seed = "a lighthouse in a storm, oil painting", "d0e3c4c2-f5de-4cad-b901-7577cea5793d"
    grid, _, _, _ = render(ImageKey(prompt, seed, 0))
    single, _, _, _ = render(ImageKey(prompt, seed, 1))
    upscale, _, _, _ = render(ImageKey(prompt, seed, 1, scale=2))
    return [
        ("simulator grid 1024 px PNG", grid),
        ("simulator single 512 px PNG", single),
        ("simulator upscale 1024 px PNG", upscale),
        ("photo-like grid 2048 px PNG", photo_like()),
    ]


def timed(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[float, T]:
    """Median wall time in ms over RUNS calls (after one warm-up), and the last result."""
    result = function(*args, **kwargs)
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def proxy_bytes(data: bytes, fmt: str) -> int:
    """What the media proxy would send for a 1024 px resize (emulated with Pillow)."""
    image = Image.open(io.BytesIO(data))
    image.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, "PNG", optimize=True)
    else:
        image.convert("RGB").save(buffer, "WEBP", quality=80)
    return len(buffer.getvalue())


def encoders(data: bytes) -> list[tuple[str, float, int]]:
    """The encoders make_preview can use, on one 1024 px image: (name, ms, bytes)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    rows = []
    choices: list[tuple[str, str, dict[str, int]]] = [
        ("JPEG q85 (optimize)", "JPEG", {"quality": 85, "optimize": 1}),
        ("JPEG q65 (optimize)", "JPEG", {"quality": 65, "optimize": 1}),
        ("WEBP q85 (method 4)", "WEBP", {"quality": 85, "method": 4}),
        ("WEBP q35 (method 4)", "WEBP", {"quality": 35, "method": 4}),
        ("WEBP q85 (method 0)", "WEBP", {"quality": 85, "method": 0}),
    ]
    for name, fmt, options in choices:

        def encode(fmt: str = fmt, options: dict[str, int] = options) -> bytes:
            buffer = io.BytesIO()
            image.save(buffer, fmt, **options)
            return buffer.getvalue()

        ms, out = timed(encode)
        rows.append((name, ms, len(out)))
    return rows


def breakdown(data: bytes) -> list[tuple[str, float]]:
    """Where make_preview's time goes for one image: decode, resize, encode (ms)."""

    def decode() -> Image.Image:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")

    decode_ms, decoded = timed(decode)

    def resize() -> Image.Image:
        copy = decoded.copy()
        copy.thumbnail((1024, 1024), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return copy

    resize_ms, small = timed(resize)

    def encode() -> bytes:
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=85, optimize=True)
        return buffer.getvalue()

    encode_ms, _ = timed(encode)
    return [("decode the PNG", decode_ms), ("resize to 1024 px", resize_ms), ("encode JPEG q85", encode_ms)]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    rows = []
    photo = b""
    proxy_png = 0
    for name, data in samples():
        ms, (preview, mime) = timed(make_preview, data)
        proxy_png = proxy_bytes(data, "PNG")
        size = Image.open(io.BytesIO(preview)).size
        base64_chars = (len(preview) + 2) // 3 * 4
        rows.append(
            [
                name,
                f"{len(data):,}",
                f"{ms:.0f}",
                f"{len(preview):,} {mime.split('/')[1].upper()} {size[0]}x{size[1]}",
                f"{base64_chars / CLAUDE_LIMIT:.0%}",
                f"{proxy_png:,}",
                f"{proxy_bytes(data, 'WEBP'):,}",
            ]
        )
        photo = data
    main_table = table(
        [
            "image",
            "original bytes (fetched for Pillow)",
            "Pillow ms / image",
            "Pillow preview bytes",
            "of Claude's 1 MiB result (base64)",
            "proxy bytes, PNG (emulated)",
            "proxy bytes, format=webp (emulated)",
        ],
        rows,
    )
    coded = encoders(photo)
    encoder_table = table(
        ["encoder (photo-like grid at 1024 px)", "ms", "bytes"],
        [[name, f"{ms:.1f}", f"{size:,}"] for name, ms, size in coded],
    )
    steps = breakdown(photo)
    total = sum(ms for _, ms in steps)
    steps_table = table(
        ["step (photo-like grid)", "ms", "share"], [[name, f"{ms:.0f}", f"{ms / total:.0%}"] for name, ms in steps]
    )
    jpeg_ms, jpeg_bytes = coded[0][1], coded[0][2]
    webp_ms, webp_bytes = coded[2][1], coded[2][2]
    photo_row = rows[-1]
    sim_ms = f"{min(int(r[2]) for r in rows[:-1])}-{max(int(r[2]) for r in rows[:-1])}"
    verdict = "is over the bound" if proxy_png > BOUND else "fits the bound only for this synthetic image"
    text = f"""## Previews: Pillow re-encode vs. Discord's media proxy

Rerun: `python bench/bench_preview.py` (medians of {RUNS} runs on this machine, Python {sys.version.split()[0]}).

{main_table}

{steps_table}

{encoder_table}

Reading it:
- Pillow meets the bound ({BOUND:,} bytes, about two thirds of Claude Desktop's 1,048,576-character result once
  base64-encoded) for any source: the photo-like grid's preview is {photo_row[3]}, {photo_row[4]} of that limit.
  It costs {photo_row[2]} ms of CPU for a full-size 2048 px grid, {steps[0][1] / total:.0%} of it decoding the
  PNG, and {sim_ms} ms for the simulator's images; and it works for Midjourney's CDN (the four single images),
  which Discord's proxy does not serve.
- The proxy spares that CPU and most of the download ({photo_row[1]} bytes of original), but left as PNG its
  1024 px answer for a render ({photo_row[5]} bytes) {verdict}; `format=webp` ({photo_row[6]}
  bytes, at a quality we do not control) would fit. It resizes only Discord attachment URLs and cannot be
  tested offline. So the server re-encodes with Pillow; `discord_resize_url` stays for callers that prefer
  to save bandwidth.
- JPEG first: WEBP q85 is {1 - webp_bytes / jpeg_bytes:.0%} smaller than JPEG q85 but {webp_ms / jpeg_ms:.0f}x slower
  to encode, and both are far under the bound. WEBP is tried only when no JPEG quality fits.
"""
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"written to {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
