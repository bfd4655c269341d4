"""Saving a finished job's images into ``MJ_DOWNLOAD_DIR``: named for the job, written atomically.

Every download goes through the guarded `media.fetch.fetch_image`; `download_items` says what a job's files are
called (``<uuid>_grid`` and ``<uuid>_1..4`` for a grid, ``<uuid>`` for a single image).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import anyio
import anyio.to_thread
import httpx2

from .fetch import ImageFetchError, fetch_image

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "video/mp4": ".mp4",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class SaveError(ImageFetchError):
    """Some images could not be saved; `saved` lists those that were, `failures` the (url, reason) of the rest."""

    def __init__(self, message: str, saved: list[Path], failures: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.saved = saved
        self.failures = failures


def extension_for(content_type: str) -> str:
    """The file extension for an image content type (``.img`` for an unknown image type)."""
    return _EXTENSIONS.get(content_type.split(";", 1)[0].strip().lower(), ".img")


def safe_name(name: str) -> str:
    """A base file name that cannot leave its folder: only letters, digits, ``.``, ``_`` and ``-``."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._")
    if not cleaned:
        raise ValueError(f"{name!r} gives an empty file name")
    return cleaned[:150]


def download_items(
    job_uuid: str, image_url: str | None, image_urls: list[str], video_urls: list[str] | None = None
) -> list[tuple[str, str]]:
    """What `save_images` should save for a finished job: ``<uuid>_grid`` and ``<uuid>_1..4`` for a grid
    (``image_urls`` holds the four singles), ``<uuid>`` for a single image; a video result adds its mp4 files,
    ``<uuid>_video_1..4`` (``<uuid>_video`` for a single video)."""
    if video_urls:
        videos = [
            (url, f"{job_uuid}_video_{i}" if len(video_urls) > 1 else f"{job_uuid}_video")
            for i, url in enumerate(video_urls, start=1)
        ]
        return download_items(job_uuid, image_url, image_urls) + videos
    if len(image_urls) > 1:
        items = [(image_url, f"{job_uuid}_grid")] if image_url else []
        return items + [(url, f"{job_uuid}_{index}") for index, url in enumerate(image_urls, start=1)]
    single = image_url or (image_urls[0] if image_urls else None)
    return [(single, job_uuid)] if single else []


def _write_atomic(path: Path, data: bytes) -> None:
    # Write beside the target and rename: a reader never sees half a file, a crash leaves no partial image.
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


async def save_images(
    client: httpx2.AsyncClient,
    items: list[tuple[str, str]],
    directory: Path,
    *,
    trusted_hosts: frozenset[str] = frozenset(),
    max_bytes: int = 25_000_000,
    timeout: float = 30.0,
) -> list[Path]:
    """Download each ``(url, base name)`` into `directory` as ``<base name><extension>``; return the paths.

    The extension comes from the content type (``.png``, ``.jpg``, ``.webp``...); the folder is created;
    every file is written atomically and replaces an older one of the same name. Fetches run concurrently.
    If some fail, the rest are still saved and `SaveError` (an `ImageFetchError`) lists both.
    """
    names = [safe_name(base) for _, base in items]
    await anyio.to_thread.run_sync(lambda: directory.mkdir(parents=True, exist_ok=True))
    saved: list[Path | None] = [None] * len(items)
    failures: list[tuple[str, str]] = []
    limiter = anyio.CapacityLimiter(4)

    async def one(index: int, url: str) -> None:
        async with limiter:
            try:
                data, content_type = await fetch_image(
                    client, url, max_bytes=max_bytes, timeout=timeout, trusted_hosts=trusted_hosts, videos=True
                )
                path = directory / f"{names[index]}{extension_for(content_type)}"
                await anyio.to_thread.run_sync(_write_atomic, path, data)
            except ImageFetchError as exc:
                failures.append((url, str(exc)))
                return
            except OSError as exc:
                failures.append((url, f"cannot write into {directory}: {exc.strerror or type(exc).__name__}"))
                return
            saved[index] = path

    async with anyio.create_task_group() as group:
        for index, (url, _) in enumerate(items):
            group.start_soon(one, index, url)
    paths = [path for path in saved if path is not None]
    if failures:
        reasons = "; ".join(reason for _, reason in failures)
        raise SaveError(f"saved {len(paths)} of {len(items)} images in {directory}: {reasons}", paths, failures)
    return paths
