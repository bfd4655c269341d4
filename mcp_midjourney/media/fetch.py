"""The guarded image fetch: an http(s) GET that cannot be turned against this machine or its network.

`fetch_image` caps the bytes and the time, wants ``image/*``, and guards against SSRF: no ``file://``, no
loopback/private/link-local/reserved addresses unless the host is trusted (`trusted_hosts_for`: the configured
Discord and CDN bases), every redirect hop checked again, and the connection pinned to the address that was
checked (a rebinding DNS cannot answer differently the second time). It loads no Pillow; media/preview.py
and media/save.py build on it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2

MAX_REDIRECTS = 3
DISCORD_CDN_HOST = "cdn.discordapp.com"
DISCORD_MEDIA_HOST = "media.discordapp.net"
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ImageError(Exception):
    """Base of the image errors: the message says what went wrong and never carries a secret."""


class ImageFetchError(ImageError):
    """An image could not be fetched (refused URL, network error, not an image, too big, too slow)."""


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
    videos: bool = False,
) -> tuple[bytes, str]:
    """GET an image (or, with `videos`, also an mp4); return ``(bytes, content type)``. Raise `ImageFetchError`
    with what went wrong.

    Only http(s); hosts that resolve to loopback, private, link-local or reserved addresses are refused
    unless listed in `trusted_hosts` (``host`` or ``host:port``, see `trusted_hosts_for`). At most
    `MAX_REDIRECTS` redirects, each hop checked again; the body must be ``image/*`` and at most `max_bytes`;
    the whole fetch (lookups, redirects, body) must finish within `timeout` seconds. The client's own
    redirect setting is ignored. Do not pass a client that carries credentials in its default headers.
    """
    try:
        with anyio.fail_after(timeout):
            return await _fetch(client, url, max_bytes, trusted_hosts, videos)
    except TimeoutError:
        raise ImageFetchError(f"fetching {shown_url(url)} took longer than {timeout:g} s") from None


async def _fetch(
    client: httpx2.AsyncClient, url: str, max_bytes: int, trusted: frozenset[str], videos: bool = False
) -> tuple[bytes, str]:
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
            return await _read_image(response, current, max_bytes, videos)
        finally:
            await response.aclose()
    raise ImageFetchError(f"{shown_url(url)} redirected more than {MAX_REDIRECTS} times")


async def _read_image(
    response: httpx2.Response, url: httpx2.URL, max_bytes: int, videos: bool = False
) -> tuple[bytes, str]:
    shown = shown_url(str(url))
    if response.status_code != 200:
        expired = response.status_code in (403, 404, 410)
        hint = " (Discord links expire after about a day: get_message gives fresh ones)" if expired else ""
        raise ImageFetchError(f"{shown} answered HTTP {response.status_code}{hint}")
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if (not content_type.startswith("image/") or content_type == "image/svg+xml") and not (
        videos and content_type == "video/mp4"
    ):
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
