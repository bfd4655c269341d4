"""Images the agent hands us: http(s) URLs (fetched with the SSRF guard) or local files (inside allowed folders),
alone or inside a prompt (image prompts, --sref/--cref/--oref/--end paths).

Every refusal is an `InputError` whose message says what to do instead; nothing here touches Discord: the
upload of a local file is a function the caller hands in.
"""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import anyio
import httpx2

from ..media.fetch import ImageFetchError, fetch_image

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # Discord's upload limit for an account without Nitro
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")
# A path in a prompt: alone, or as the value of a reference parameter (which makes it a file even if it is missing).
_LOCAL_REF = re.compile(r"(?<!\S)(--(?:sref|cref|oref|end)\s+)?((?:~|\.{1,2})?/[^\s]+|[A-Za-z]:[\\/][^\s]+)")


class InputError(Exception):
    """An image reference that cannot be used; the message says why and what to pass instead."""


def is_url(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://"))


def is_local_path(ref: str) -> bool:
    """Whether a prompt token names a local file (absolute, home-relative or explicitly relative)."""
    return ref.startswith(("/", "~", "./", "../")) or bool(_WINDOWS_PATH.match(ref))


def _filename(ref: str, content_type: str) -> str:
    name = PurePosixPath(urlparse(ref).path).name if is_url(ref) else Path(ref).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    if "." not in name:
        name += "." + (content_type.split("/")[-1].split(";")[0] or "png")
    return name[:80]


def _check_image(data: bytes, what: str) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            return Image.MIME.get(image.format or "", "image/png")
    except (UnidentifiedImageError, OSError, ValueError):
        raise InputError(f"{what} is not an image Midjourney can read: use a PNG, JPEG, WEBP or GIF.") from None


async def load_image(
    ref: str,
    *,
    client: httpx2.AsyncClient,
    allowed_dirs: list[Path],
    trusted_hosts: frozenset[str] = frozenset(),
) -> tuple[str, bytes]:
    """Read an image reference into ``(filename, bytes)``, refusing what must not be read."""
    ref = ref.strip()
    if not ref:
        raise InputError("an image reference is empty: pass an http(s) URL or the path of a local image file.")
    if ref.lower().startswith("file:"):
        raise InputError(f"{ref!r}: pass the local path itself (e.g. /home/me/cat.png), not a file:// URL.")
    if is_url(ref):
        try:
            data, content_type = await fetch_image(client, ref, max_bytes=MAX_UPLOAD_BYTES, trusted_hosts=trusted_hosts)
        except ImageFetchError as exc:
            raise InputError(f"cannot use the image at {ref}: {exc}") from None
        return _filename(ref, content_type), data
    if "://" in ref:
        raise InputError(f"{ref!r}: only http(s) URLs and local file paths can be used as images.")
    return await anyio.to_thread.run_sync(_read_local, ref, allowed_dirs)


def _read_local(ref: str, allowed_dirs: list[Path]) -> tuple[str, bytes]:
    path = Path(ref).expanduser()
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InputError(f"no such file: {ref}. Pass the full path of an existing image file.") from None
    if not any(resolved.is_relative_to(folder) for folder in allowed_dirs):
        folders = ", ".join(str(f) for f in allowed_dirs) or "(none)"
        raise InputError(
            f"{ref} is outside the folders this server may read ({folders}). Move the file there, or ask the "
            "user to add its folder to MJ_ALLOWED_DIRS."
        )
    if not resolved.is_file():
        raise InputError(f"{ref} is not a file.")
    size = resolved.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise InputError(f"{ref} is {size / 1e6:.1f} MB; Discord accepts at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    data = resolved.read_bytes()
    content_type = _check_image(data, ref)
    return _filename(str(resolved), content_type), data


def mentions_local_file(prompt: str) -> bool:
    """Whether a prompt may name a local file (then `upload_local_refs` has work to do)."""
    return _LOCAL_REF.search(prompt) is not None


async def upload_local_refs(
    prompt: str,
    images: list[str],
    upload: Callable[[str, bytes], Awaitable[str]],
    *,
    client: httpx2.AsyncClient,
    allowed_dirs: list[Path],
) -> str:
    """The prompt with local files (image prompts, --sref/--cref paths) replaced by URLs Midjourney can read.

    `images` go first, as image prompts; `upload(filename, data)` turns a local file's bytes into a URL.
    """

    async def url_for(ref: str) -> str:
        if ref.lower().startswith(("http://", "https://")):
            return ref
        filename, data = await load_image(ref, client=client, allowed_dirs=allowed_dirs)
        return await upload(filename, data)

    leading = [await url_for(ref) for ref in images]
    parts: list[str] = []
    last = 0
    for match in _LOCAL_REF.finditer(prompt):
        if not is_local_path(match.group(2)):
            continue
        if match.group(1) is None and not await (await anyio.Path(match.group(2)).expanduser()).exists():
            continue  # words like "/r/earthporn" in a prompt are not files unless a reference parameter says so
        parts += [prompt[last : match.start(2)], await url_for(match.group(2))]
        last = match.end(2)
    return " ".join([*leading, "".join([*parts, prompt[last:]])]).strip()
