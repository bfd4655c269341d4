"""Fetching images safely, downscaling them into previews a model can see, and saving them to disk.

Three jobs, one concern (images that leave Discord and reach the model or the disk):

- `fetch_image`: an http(s) GET with a byte cap, a time cap, an ``image/*`` check, and SSRF guards (no
  ``file://``, no loopback/private/link-local/reserved addresses unless the host is trusted, every redirect
  hop checked again, and the connection pinned to the address that was checked).
- `make_preview`: Pillow decodes, downscales to about 1024 px on the long side and re-encodes as JPEG (or
  WEBP when that is what fits), so a tool result stays far below Claude Desktop's 1,048,576-character limit.
- `save_images`: the finished images written atomically into ``MJ_DOWNLOAD_DIR``.

Why Pillow rather than Discord's media proxy (``?width=&height=``): the proxy only resizes Discord attachment
URLs (not Midjourney's CDN), keeps the PNG format (a 1024 px PNG of a photo is still ~2 MB) and cannot be
exercised offline; Pillow costs ~0.1-0.3 s of CPU per image and always meets the bound. `discord_resize_url`
is kept for callers that want the proxy anyway. Numbers: docs/benchmarks-preview.md (bench/bench_preview.py).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import logging
import os
import re
import socket
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import anyio.to_thread
import httpx2
from PIL import Image, ImageOps, features

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
# The Anthropic API refuses images over 8000 px on a side; a preview never needs to come close.
MAX_OUTPUT_SIDE = 8000
# Pillow's own decompression-bomb threshold (89 M pixels), applied before any pixel is decoded.
MAX_INPUT_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# JPEG first: it encodes ~30x faster than WEBP at a similar size on photographic grids (see the benchmark).
JPEG_QUALITIES = (85, 75, 65, 50, 35)
DISCORD_CDN_HOST = "cdn.discordapp.com"
DISCORD_MEDIA_HOST = "media.discordapp.net"
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ImageError(Exception):
    """Base of the image errors: the message says what went wrong and never carries a secret."""


class ImageFetchError(ImageError):
    """An image could not be fetched (refused URL, network error, not an image, too big, too slow)."""


class PreviewError(ImageError):
    """Bytes could not be turned into a preview (not an image, too many pixels, cannot fit the bound)."""


class SaveError(ImageFetchError):
    """Some images could not be saved; `saved` lists those that were, `failures` the (url, reason) of the rest."""

    def __init__(self, message: str, saved: list[Path], failures: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.saved = saved
        self.failures = failures


# --- where a URL may point -----------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """A URL fit for a message: no credentials, no query string (Discord's signatures live there), bounded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    text = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return text if len(text) <= 200 else text[:197] + "..."


def trusted_hosts_for(urls: Iterable[str]) -> frozenset[str]:
    """The hosts of configured base URLs, as `fetch_image` matches them (``host`` or ``host:port``).

    An explicit port is kept so that trusting the simulator's ``127.0.0.1:<port>`` does not trust every
    service on loopback. Discord's CDN and media proxy are always trusted.
    """
    hosts = {DISCORD_CDN_HOST, DISCORD_MEDIA_HOST}
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            continue
        if parts.hostname:
            hosts.add(f"{_bracket(parts.hostname)}:{port}" if port is not None else parts.hostname.lower())
    return frozenset(hosts)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host.lower()


def _is_trusted(url: httpx2.URL, trusted: frozenset[str]) -> bool:
    host = url.host.lower()
    port = url.port or (443 if url.scheme == "https" else 80)
    return host in trusted or f"{_bracket(host)}:{port}" in trusted


def _forbidden(ip: IPAddress) -> str | None:
    """Why an address must not be fetched from (None when it is a public unicast address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    if ip.is_unspecified:
        return "an unspecified address (it reaches this machine)"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def _parse(url: str) -> httpx2.URL:
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, TypeError, ValueError):
        raise ImageFetchError(f"{shown_url(url)!r} is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        scheme = parsed.scheme or "no scheme"
        raise ImageFetchError(f"only http(s) image URLs can be fetched, not {scheme}: {shown_url(url)}")
    if not parsed.host:
        raise ImageFetchError(f"the URL has no host: {shown_url(url)}")
    if parsed.userinfo:
        raise ImageFetchError(f"URLs with a user name or password are not fetched: {shown_url(url)}")
    return parsed


async def _checked_address(url: httpx2.URL) -> IPAddress:
    """Resolve the URL's host and check every address; return the one to connect to."""
    host = url.raw_host.decode("ascii")
    try:
        literal: IPAddress | None = ipaddress.ip_address(url.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise ImageFetchError(f"cannot resolve the host of {shown_url(str(url))}") from None
        # A scope id (fe80::1%eth0) is not part of the address.
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise ImageFetchError(f"cannot resolve the host of {shown_url(str(url))}")
    for address in addresses:
        reason = _forbidden(address)
        if reason is not None:
            raise ImageFetchError(
                f"refusing to fetch {shown_url(str(url))}: its host is {reason}. Give a public http(s) image URL."
            )
    return addresses[0]


async def _request(client: httpx2.AsyncClient, url: httpx2.URL, trusted: frozenset[str]) -> httpx2.Request:
    headers = {"Accept": "image/*", "Accept-Encoding": "identity"}
    if _is_trusted(url, trusted):
        return client.build_request("GET", url, headers=headers)
    address = await _checked_address(url)
    # Connect to the address just checked, not to a second lookup that a rebinding DNS could answer
    # differently; the Host header and TLS SNI (and so certificate checks) keep the real name.
    pinned = url.copy_with(host=str(address))
    headers["Host"] = url.netloc.decode("ascii")
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else None
    return client.build_request("GET", pinned, headers=headers, extensions=extensions)


# --- fetching ------------------------------------------------------------------------------------------


async def fetch_image(
    client: httpx2.AsyncClient,
    url: str,
    *,
    max_bytes: int = 25_000_000,
    timeout: float = 15.0,
    trusted_hosts: frozenset[str] = frozenset(),
) -> tuple[bytes, str]:
    """GET an image; return ``(bytes, content type)``. Raise `ImageFetchError` with what went wrong.

    Only http(s); hosts that resolve to loopback, private, link-local or reserved addresses are refused
    unless listed in `trusted_hosts` (``host`` or ``host:port``, see `trusted_hosts_for`). At most
    `MAX_REDIRECTS` redirects, each hop checked again; the body must be ``image/*`` and at most `max_bytes`;
    the whole fetch (lookups, redirects, body) must finish within `timeout` seconds. The client's own
    redirect setting is ignored. Do not pass a client that carries credentials in its default headers.
    """
    try:
        with anyio.fail_after(timeout):
            return await _fetch(client, url, max_bytes, trusted_hosts)
    except TimeoutError:
        raise ImageFetchError(f"fetching {shown_url(url)} took longer than {timeout:g} s") from None


async def _fetch(client: httpx2.AsyncClient, url: str, max_bytes: int, trusted: frozenset[str]) -> tuple[bytes, str]:
    current = _parse(url)
    for _hop in range(MAX_REDIRECTS + 1):
        request = await _request(client, current, trusted)
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx2.HTTPError as exc:
            raise ImageFetchError(f"could not fetch {shown_url(str(current))}: {type(exc).__name__}") from None
        try:
            if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                # Resolve against the logical URL: the request itself went to a pinned address.
                current = _parse(str(current.join(response.headers["location"])))
                continue
            return await _read_image(response, current, max_bytes)
        finally:
            await response.aclose()
    raise ImageFetchError(f"{shown_url(url)} redirected more than {MAX_REDIRECTS} times")


async def _read_image(response: httpx2.Response, url: httpx2.URL, max_bytes: int) -> tuple[bytes, str]:
    shown = shown_url(str(url))
    if response.status_code != 200:
        expired = response.status_code in (403, 404, 410)
        hint = " (Discord links expire after about a day: get_message gives fresh ones)" if expired else ""
        raise ImageFetchError(f"{shown} answered HTTP {response.status_code}{hint}")
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not content_type.startswith("image/") or content_type == "image/svg+xml":
        raise ImageFetchError(f"{shown} is not a raster image (content type {content_type or 'missing'!r})")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ImageFetchError(f"{shown} is {int(declared):,} bytes, more than the {max_bytes:,} bytes allowed")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > max_bytes:
                raise ImageFetchError(f"{shown} is more than the {max_bytes:,} bytes allowed")
            chunks.append(chunk)
    except httpx2.HTTPError as exc:
        raise ImageFetchError(f"reading {shown} failed: {type(exc).__name__}") from None
    return b"".join(chunks), content_type


# --- previews ------------------------------------------------------------------------------------------


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


# --- saving --------------------------------------------------------------------------------------------


def extension_for(content_type: str) -> str:
    """The file extension for an image content type (``.img`` for an unknown image type)."""
    return _EXTENSIONS.get(content_type.split(";", 1)[0].strip().lower(), ".img")


def safe_name(name: str) -> str:
    """A base file name that cannot leave its folder: only letters, digits, ``.``, ``_`` and ``-``."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._")
    if not cleaned:
        raise ValueError(f"{name!r} gives an empty file name")
    return cleaned[:150]


def download_items(job_uuid: str, image_url: str | None, image_urls: list[str]) -> list[tuple[str, str]]:
    """What `save_images` should save for a finished job: ``<uuid>_grid`` and ``<uuid>_1..4`` for a grid
    (``image_urls`` holds the four singles), ``<uuid>`` for a single image."""
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
                    client, url, max_bytes=max_bytes, timeout=timeout, trusted_hosts=trusted_hosts
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
