"""Images the agent hands us: http(s) URLs (fetched with the SSRF guard) or local files (inside allowed folders),
alone or inside a prompt (image prompts, --sref/--cref/--oref/--end paths).

Every refusal is an `InputError` whose message says what to do instead; nothing here touches Discord: the
upload of a local file is a function the caller hands in. What is uploaded is an image's pixels re-encoded
(media/clean.py), decoded in a worker thread under a pixel cap; a local file is read only inside the allowed
folders and under no dot-folder there, and every path that may not be read gets the same answer, so the answers
say nothing about what exists elsewhere (README: "What an agent driving this server can reach").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import urlparse

import anyio
import httpx2

from ..media.fetch import ImageFetchError, fetch_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Images decoded at once, whatever the number of calls: each may take MJ_MAX_IMAGE_PIXELS x 4 bytes and more.
DECODING = anyio.CapacityLimiter(2)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # Discord's upload limit for an account without Nitro
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")
# A path in a prompt: alone, or as the value of a reference parameter (which makes it a file even if it is missing).
_LOCAL_REF = re.compile(r"(?<!\S)(--(?:sref|cref|oref|end)\s+)?((?:~|\.{1,2})?/[^\s]+|[A-Za-z]:[\\/][^\s]+)")


class InputError(Exception):
    """An image reference that cannot be used; the message says why and what to pass instead."""


class ImageRules(Protocol):
    """What the settings (`config.Settings`) say about the images an agent hands us."""

    @property
    def allowed_dirs(self) -> tuple[Path, ...]: ...  # MJ_ALLOWED_DIRS, resolved
    @property
    def max_image_pixels(self) -> int: ...  # MJ_MAX_IMAGE_PIXELS
    @property
    def max_images_per_call(self) -> int: ...  # MJ_MAX_IMAGES_PER_CALL


def is_url(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://"))


def is_local_path(ref: str) -> bool:
    """Whether a prompt token names a local file (absolute, home-relative or explicitly relative)."""
    return ref.startswith(("/", "~", "./", "../")) or bool(_WINDOWS_PATH.match(ref))


def _filename(ref: str, extension: str) -> str:
    name = PurePosixPath(urlparse(ref).path).name if is_url(ref) else Path(ref).name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(name).stem).strip("._") or "image"
    return f"{stem[:70]}.{extension}"


def _cleaned(ref: str, data: bytes, max_pixels: int) -> tuple[str, bytes]:
    """``(filename, bytes)``: the image re-encoded from its pixels alone (media/clean.py), within Discord's limit."""
    from ..media.clean import ImageRefused, clean_image

    try:
        extension, pixels = clean_image(data, max_pixels)
    except ImageRefused as exc:
        raise InputError(f"{ref} {exc}: use a PNG, JPEG, WEBP or GIF image.") from None
    except Exception:  # Pillow on bytes an agent chose: any failure is that image's, and says so
        raise InputError(f"{ref} could not be re-encoded: use a plain PNG, JPEG, WEBP or GIF image.") from None
    if len(pixels) > MAX_UPLOAD_BYTES:
        raise InputError(
            f"{ref} is over {MAX_UPLOAD_BYTES / 1e6:.0f} MB as an image Discord takes: send a smaller one."
        )
    return _filename(ref, extension), pixels


async def load_image(
    ref: str,
    *,
    client: httpx2.AsyncClient,
    rules: ImageRules,
    trusted_hosts: frozenset[str] = frozenset(),
) -> tuple[str, bytes]:
    """Read an image reference into ``(filename, bytes)`` ready to upload, refusing what must not be read.

    The bytes are the image's pixels re-encoded (no metadata, nothing appended), decoded in a worker thread.
    """
    ref = ref.strip()
    if not ref:
        raise InputError("an image reference is empty: pass an http(s) URL or the path of a local image file.")
    if ref.lower().startswith("file:"):
        raise InputError(f"{ref!r}: pass the local path itself (e.g. /home/me/cat.png), not a file:// URL.")
    if is_url(ref):
        try:
            data, _type = await fetch_image(client, ref, max_bytes=MAX_UPLOAD_BYTES, trusted_hosts=trusted_hosts)
        except ImageFetchError as exc:
            raise InputError(f"cannot use the image at {ref}: {exc}") from None
        return await anyio.to_thread.run_sync(_cleaned, ref, data, rules.max_image_pixels, limiter=DECODING)
    if "://" in ref:
        raise InputError(f"{ref!r}: only http(s) URLs and local file paths can be used as images.")
    pixels = rules.max_image_pixels
    return await anyio.to_thread.run_sync(lambda: _cleaned(ref, read_local(ref, rules), pixels), limiter=DECODING)


async def load_mask(ref: str, rules: ImageRules) -> str:
    """Vary (Region)'s mask from a local image file (never a URL), as base64 PNG; decoded in a worker thread."""
    from ..media.mask import region_mask

    ref = ref.strip()
    if "://" in ref or ref.lower().startswith("file:") or not ref:
        raise InputError(f"mask_path {ref!r}: pass the path of a local image file (URLs are not taken for masks).")

    def build() -> str:
        data = read_local(ref, rules)
        try:
            return region_mask(data=data, max_pixels=rules.max_image_pixels)
        except ValueError as exc:
            raise InputError(f"the mask {ref} {exc}" if str(exc).startswith("is ") else str(exc)) from None

    return await anyio.to_thread.run_sync(build, limiter=DECODING)


def _shown(folder: Path) -> str:
    """A folder as errors show it: under the home folder as ~/..., so the user's name stays out of them."""
    try:
        return str(Path("~") / folder.relative_to(Path.home()))
    except ValueError:
        return str(folder)


def _refusal(ref: str, allowed_dirs: list[Path]) -> InputError:
    """The one answer for a path this server may not read, whether or not it exists."""
    if not allowed_dirs:
        where = "no folder: MJ_ALLOWED_DIRS is empty"
    else:
        where = ", ".join(_shown(f) + ("" if f.is_dir() else " (not created yet)") for f in allowed_dirs)
    return InputError(
        f"{ref} may not be used: this server reads local images only from {where}, and never from hidden "
        "(dot) folders. Copy the image into an allowed folder, or ask the user to add its folder to "
        "MJ_ALLOWED_DIRS (folders separated by the path separator, ':' or ';' on Windows)."
    )


def read_local(ref: str, rules: ImageRules) -> bytes:
    """A local file's bytes, if it lies in an allowed folder and under no dot-folder there (blocking I/O)."""
    allowed_dirs = list(rules.allowed_dirs)
    try:
        resolved = Path(ref).expanduser().resolve()  # symlinks that exist are followed: where the bytes really are
    except (OSError, RuntimeError, ValueError):
        raise _refusal(ref, allowed_dirs) from None
    inside = [resolved.relative_to(f) for f in allowed_dirs if resolved.is_relative_to(f)]
    if not inside or all(any(part.startswith(".") for part in rel.parts) for rel in inside):
        raise _refusal(ref, allowed_dirs)
    if not resolved.exists():
        raise InputError(f"no such file: {ref}. Pass the full path of an existing image file.")
    if not resolved.is_file():
        raise InputError(f"{ref} is not a file.")
    size = resolved.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise InputError(f"{ref} is {size / 1e6:.1f} MB; Discord accepts at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    return resolved.read_bytes()


def mentions_local_file(prompt: str) -> bool:
    """Whether a prompt may name a local file (then `upload_local_refs` has work to do)."""
    return _LOCAL_REF.search(prompt) is not None


def _local_refs(prompt: str) -> list[re.Match[str]]:
    """The local files a prompt names: after --sref/--cref/--oref, or alone when the name ends like an image's.

    Whether a bare path is a file is decided from its text, never by looking: the answer must not say what
    exists outside the allowed folders ("/r/earthporn" stays a word).
    """
    return [
        match
        for match in _LOCAL_REF.finditer(prompt)
        if is_local_path(match.group(2))
        and (match.group(1) is not None or match.group(2).lower().endswith(IMAGE_SUFFIXES))
    ]


async def upload_local_refs(
    prompt: str,
    images: list[str],
    upload: Callable[[str, bytes], Awaitable[str]],
    *,
    client: httpx2.AsyncClient,
    rules: ImageRules,
    check: Callable[[str], object] | None = None,
) -> str:
    """The prompt with local files (image prompts, --sref/--cref paths) replaced by URLs Midjourney can read.

    `images` go first, as image prompts; `upload(filename, data)` turns an image's bytes into a URL. Nothing is
    uploaded before `check` (which raises to refuse) has passed the prompt as it will be, with placeholder
    URLs, and every image has been read and re-encoded; the same file named twice is uploaded once.
    """
    matches, max_images = _local_refs(prompt), rules.max_images_per_call
    if len(images) + len(matches) > max_images:
        raise InputError(
            f"{len(images) + len(matches)} images in one call; at most {max_images} are taken "
            "(MJ_MAX_IMAGES_PER_CALL). Send fewer."
        )
    refs = [ref for ref in images if not is_url(ref)] + [m.group(2) for m in matches]

    def compose(url_of: Callable[[str], str]) -> str:
        parts, last = [url_of(ref) for ref in images], 0
        text: list[str] = []
        for match in matches:
            text += [prompt[last : match.start(2)], url_of(match.group(2))]
            last = match.end(2)
        return " ".join([*parts, "".join([*text, prompt[last:]])]).strip()

    def placeholder(ref: str) -> str:
        return ref if is_url(ref) else f"https://cdn.discordapp.com/attachments/1/{refs.index(ref) + 1}/image.png"

    if check is not None:
        check(compose(placeholder))
    loaded: dict[str, tuple[str, bytes]] = {}
    for ref in refs:
        if ref not in loaded:
            loaded[ref] = await load_image(ref, client=client, rules=rules)
    urls = {ref: await upload(*image) for ref, image in loaded.items()}
    return compose(lambda ref: urls.get(ref, ref))
