"""Previews within their bounds, fetches that refuse what they must, and saved images named as promised."""

from __future__ import annotations

import io
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image, ImageFilter

from mcp_midjourney.media.fetch import ImageFetchError, fetch_image, trusted_hosts_for
from mcp_midjourney.media.preview import PreviewError, discord_resize_url, fetch_preview, fit_within, make_preview
from mcp_midjourney.media.save import SaveError, download_items, save_images

pytestmark = pytest.mark.anyio

PUBLIC_IP = "93.184.216.34"


def photo(width: int, height: int, mode: str = "RGB", seed: int = 7) -> Image.Image:
    """A noisy, photo-like picture: compresses about as badly as a real render."""
    rnd = random.Random(seed)
    coarse = Image.frombytes("RGB", (width // 8, height // 8), rnd.randbytes(width // 8 * (height // 8) * 3))
    image = coarse.resize((width, height), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1))
    fine = Image.frombytes("RGB", (width, height), rnd.randbytes(width * height * 3))
    return Image.blend(image, fine, 0.1).convert(mode)


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    # Fast PNG compression: these tests are about the preview, not about making the input small.
    image.save(buffer, fmt, **({"compress_level": 1} if fmt == "PNG" else {}))
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


PNG = encoded(Image.new("RGB", (8, 8), (200, 10, 10)))


# --- make_preview --------------------------------------------------------------------------------------


def test_preview_of_a_big_photo_is_1024_on_the_long_side_and_under_the_byte_bound() -> None:
    data, mime = make_preview(encoded(photo(1800, 1200)))
    image = decode(data)
    assert image.size == (1024, 683)
    assert len(data) < 700_000
    assert mime == "image/jpeg" and image.format == "JPEG"


def test_a_small_image_is_not_upscaled() -> None:
    data, _ = make_preview(encoded(photo(300, 200)))
    assert decode(data).size == (300, 200)


def test_quality_and_size_step_down_until_the_bytes_fit() -> None:
    data, mime = make_preview(encoded(photo(1200, 1200)), max_bytes=25_000)
    assert len(data) <= 25_000
    assert mime in ("image/jpeg", "image/webp")
    assert max(decode(data).size) <= 1024


def test_transparency_is_flattened_on_white() -> None:
    image = Image.new("RGBA", (1500, 1000), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 100, 100))
    data, mime = make_preview(encoded(image))
    out = decode(data)
    assert mime == "image/jpeg" and out.mode == "RGB" and out.size == (1024, 683)
    red, green, blue = out.getpixel((1000, 600))  # type: ignore[misc]
    assert min(red, green, blue) > 245
    red, green, blue = out.getpixel((20, 20))  # type: ignore[misc]
    assert blue > 200 and red < 40


def test_a_palette_image_with_transparency_and_a_webp_input_decode() -> None:
    palette = Image.new("P", (64, 64), 0)
    palette.info["transparency"] = 0
    assert decode(make_preview(encoded(palette, "PNG"))[0]).getpixel((5, 5)) == (255, 255, 255)
    assert decode(make_preview(encoded(photo(640, 480), "WEBP"))[0]).size == (640, 480)


def test_a_big_jpeg_decodes_in_draft_mode_and_keeps_its_aspect() -> None:
    data, _ = make_preview(encoded(photo(4000, 1000), "JPEG"), max_side=800)
    assert decode(data).size == (800, 200)


def test_undecodable_bytes_raise_a_preview_error() -> None:
    with pytest.raises(PreviewError, match="not an image"):
        make_preview(b"<html>not an image</html>")
    with pytest.raises(PreviewError):
        make_preview(PNG[:20])


def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded() -> None:
    # 9600 x 9600 = 92 M pixels of mode "1": a few kilobytes of PNG, more than Pillow's 89 M pixel bound.
    bomb = encoded(Image.new("1", (9600, 9600)))
    assert len(bomb) < 100_000
    with pytest.raises(PreviewError, match="decompression-bomb"):
        make_preview(bomb)


def test_the_output_side_is_bounded() -> None:
    with pytest.raises(ValueError, match="8000"):
        make_preview(PNG, max_side=9000)


def test_fit_within_keeps_the_aspect() -> None:
    assert fit_within(2048, 1024, 1024) == (1024, 512)
    assert fit_within(500, 400, 1024) == (500, 400)
    assert fit_within(1000, 3000, 1024) == (341, 1024)


# --- fetch_image refusals and limits -------------------------------------------------------------------


def forbid_network(request: httpx2.Request) -> httpx2.Response:
    raise AssertionError(f"no request should have been sent, got {request.url}")


def mock_client(handler: Callable[[httpx2.Request], Any]) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


@pytest.fixture
def resolve_to(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make every DNS lookup answer the given addresses (no network in unit tests)."""

    def install(*addresses: str) -> None:
        async def fake(host: str, port: int, **_: Any) -> list[Any]:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

        monkeypatch.setattr(anyio, "getaddrinfo", fake)

    return install


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http"),
        ("ftp://example.com/a.png", "only http"),
        ("gopher://example.com/", "only http"),
        ("http://10.1.2.3/a.png", "private"),
        ("http://192.168.0.7:8080/a.png", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://127.0.0.1:9/a.png", "loopback"),
        ("http://[::1]/a.png", "loopback"),
        ("http://[::ffff:127.0.0.1]/a.png", "loopback"),
        ("http://0.0.0.0/a.png", "unspecified"),
        ("http://100.64.0.1/a.png", "reserved"),
        ("http://user:secret@example.com/a.png", "user name or password"),
        ("not a url at all", "only http"),
    ],
)
async def test_refused_urls_never_reach_the_network(url: str, reason: str) -> None:
    async with mock_client(forbid_network) as client:
        with pytest.raises(ImageFetchError, match=reason) as caught:
            await fetch_image(client, url)
    assert "secret" not in str(caught.value)


async def test_a_name_resolving_to_any_private_address_is_refused(resolve_to: Callable[..., None]) -> None:
    resolve_to(PUBLIC_IP, "10.0.0.5")  # one bad answer is enough: a rebinding resolver would pick it
    async with mock_client(forbid_network) as client:
        with pytest.raises(ImageFetchError, match="private"):
            await fetch_image(client, "https://images.example/a.png")


async def test_the_connection_is_pinned_to_the_checked_address(resolve_to: Callable[..., None]) -> None:
    resolve_to(PUBLIC_IP)
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, content=PNG, headers={"content-type": "image/png"})

    async with mock_client(handler) as client:
        data, content_type = await fetch_image(client, "https://images.example:8443/a.png?sig=1")
    assert (data, content_type) == (PNG, "image/png")
    assert seen[0].url.host == PUBLIC_IP and seen[0].url.port == 8443
    assert seen[0].headers["host"] == "images.example:8443"
    assert seen[0].extensions["sni_hostname"] == "images.example"


async def test_localhost_is_refused_unless_trusted(local_server: str) -> None:
    port = local_server.rsplit(":", 1)[1]
    url = f"http://localhost:{port}/img.png"
    async with httpx2.AsyncClient() as client:
        with pytest.raises(ImageFetchError, match="loopback"):
            await fetch_image(client, url)
        with pytest.raises(ImageFetchError, match="loopback"):
            await fetch_image(client, url, trusted_hosts=frozenset({"localhost:1"}))  # another port
        data, content_type = await fetch_image(client, url, trusted_hosts=frozenset({f"localhost:{port}"}))
        assert content_type == "image/png" and data == PNG
        data, _ = await fetch_image(client, url, trusted_hosts=trusted_hosts_for([f"http://localhost:{port}/api"]))
        assert data == PNG


async def test_content_type_status_and_size_are_checked(local_server: str) -> None:
    trusted = trusted_hosts_for([local_server])
    async with httpx2.AsyncClient() as client:
        with pytest.raises(ImageFetchError, match=r"not a raster image.*text/html"):
            await fetch_image(client, f"{local_server}/page", trusted_hosts=trusted)
        with pytest.raises(ImageFetchError, match="more than the 100,000 bytes"):
            await fetch_image(client, f"{local_server}/big", trusted_hosts=trusted, max_bytes=100_000)
        with pytest.raises(ImageFetchError, match="more than the 100,000 bytes"):
            await fetch_image(client, f"{local_server}/big-chunked", trusted_hosts=trusted, max_bytes=100_000)
        with pytest.raises(ImageFetchError, match=r"HTTP 404.*expire") as caught:
            await fetch_image(client, f"{local_server}/gone.png?hm=signature", trusted_hosts=trusted)
        assert "signature" not in str(caught.value)
        data, _ = await fetch_image(client, f"{local_server}/big", trusted_hosts=trusted)
        assert len(data) == 300_000


async def test_redirects_are_followed_three_times_and_each_hop_is_checked(local_server: str) -> None:
    trusted = trusted_hosts_for([local_server])
    async with httpx2.AsyncClient() as client:
        data, _ = await fetch_image(client, f"{local_server}/redirect/3", trusted_hosts=trusted)
        assert data == PNG
        with pytest.raises(ImageFetchError, match="redirected more than 3 times"):
            await fetch_image(client, f"{local_server}/redirect/4", trusted_hosts=trusted)
        with pytest.raises(ImageFetchError, match="private"):
            await fetch_image(client, f"{local_server}/to-private", trusted_hosts=trusted)
        with pytest.raises(ImageFetchError, match="only http"):
            await fetch_image(client, f"{local_server}/to-file", trusted_hosts=trusted)


async def test_the_whole_fetch_is_bounded_in_time() -> None:
    async def slow(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep(5)
        return httpx2.Response(200, content=PNG, headers={"content-type": "image/png"})

    async with mock_client(slow) as client:
        with anyio.fail_after(3), pytest.raises(ImageFetchError, match=r"longer than 0\.2 s"):
            await fetch_image(
                client, "https://cdn.discordapp.com/a.png", timeout=0.2, trusted_hosts=trusted_hosts_for([])
            )


async def test_network_errors_become_fetch_errors() -> None:
    def broken(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused")

    async with mock_client(broken) as client:
        with pytest.raises(ImageFetchError, match="ConnectError"):
            await fetch_image(client, "https://cdn.discordapp.com/a.png", trusted_hosts=trusted_hosts_for([]))


# --- save_images ---------------------------------------------------------------------------------------


async def test_save_images_names_files_by_base_name_and_content_type(tmp_path: Path) -> None:
    bodies = {
        "/grid": (PNG, "image/png"),
        "/1": (encoded(photo(32, 32), "JPEG"), "image/jpeg"),
        "/2": (encoded(photo(32, 32), "WEBP"), "image/webp; charset=binary"),
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        body, content_type = bodies[request.url.path]
        return httpx2.Response(200, content=body, headers={"content-type": content_type})

    folder = tmp_path / "downloads" / "nested"
    trusted = trusted_hosts_for([])
    items = [(f"https://cdn.discordapp.com{path}", f"abc-123_{path[1:]}") for path in bodies]
    async with mock_client(handler) as client:
        paths = await save_images(client, items, folder, trusted_hosts=trusted)
    assert [p.name for p in paths] == ["abc-123_grid.png", "abc-123_1.jpg", "abc-123_2.webp"]
    assert paths[0].read_bytes() == PNG
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)  # no temporary left


async def test_save_images_keeps_names_inside_the_folder_and_reports_failures(tmp_path: Path) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/missing":
            return httpx2.Response(404)
        return httpx2.Response(200, content=PNG, headers={"content-type": "image/png"})

    items = [("https://cdn.discordapp.com/ok", "../../escape"), ("https://cdn.discordapp.com/missing", "job_2")]
    async with mock_client(handler) as client:
        with pytest.raises(SaveError, match="saved 1 of 2") as caught:
            await save_images(client, items, tmp_path, trusted_hosts=trusted_hosts_for([]))
    assert [p.name for p in caught.value.saved] == ["escape.png"]
    assert caught.value.saved[0].parent == tmp_path
    assert caught.value.failures[0][0].endswith("/missing")


def test_download_items_name_a_grid_and_a_single() -> None:
    urls = [f"https://cdn.midjourney.com/u/0_{i}.png" for i in range(4)]
    grid = download_items("u", "https://cdn.discordapp.com/attachments/1/2/g.png", urls)
    assert [name for _, name in grid] == ["u_grid", "u_1", "u_2", "u_3", "u_4"]
    assert grid[1][0] == urls[0]
    assert download_items("v", "https://cdn.discordapp.com/attachments/1/2/s.png", []) == [
        ("https://cdn.discordapp.com/attachments/1/2/s.png", "v")
    ]
    assert download_items("w", None, []) == []


async def test_fetch_preview_fetches_then_downscales() -> None:
    big = encoded(photo(1400, 700))

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=big, headers={"content-type": "image/png"})

    async with mock_client(handler) as client:
        data, mime = await fetch_preview(
            client, "https://cdn.discordapp.com/g.png", trusted_hosts=trusted_hosts_for([])
        )
    assert mime == "image/jpeg" and decode(data).size == (1024, 512)
    async with mock_client(
        lambda request: httpx2.Response(200, content=b"garbage", headers={"content-type": "image/png"})
    ) as client:
        with pytest.raises(PreviewError):
            await fetch_preview(client, "https://cdn.discordapp.com/g.png", trusted_hosts=trusted_hosts_for([]))


# --- Discord's media proxy and trusted hosts -----------------------------------------------------------


def test_discord_resize_url_moves_attachments_to_the_media_proxy() -> None:
    url = "https://cdn.discordapp.com/attachments/1/2/grid.png?ex=6b&is=6a&hm=abc&"
    resized = discord_resize_url(url, 1024, 512)
    assert resized == "https://media.discordapp.net/attachments/1/2/grid.png?ex=6b&is=6a&hm=abc&width=1024&height=512"
    again = discord_resize_url(str(resized), 300, 150, fmt="webp")
    assert again is not None and again.endswith("hm=abc&width=300&height=150&format=webp")
    assert discord_resize_url("https://cdn.midjourney.com/u/0_0.png", 10, 10) is None
    assert discord_resize_url("https://cdn.discordapp.com/avatars/1/a.png", 10, 10) is None
    assert discord_resize_url("file:///cdn.discordapp.com/attachments/x", 10, 10) is None


def test_trusted_hosts_keep_explicit_ports() -> None:
    hosts = trusted_hosts_for(["http://127.0.0.1:8765/api/v9", "https://cdn.midjourney.com", "http://[::1]:9/x"])
    assert {"127.0.0.1:8765", "cdn.midjourney.com", "[::1]:9", "cdn.discordapp.com"} <= hosts
    assert "127.0.0.1" not in hosts


# --- a small local HTTP server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    """A stdlib HTTP server on 127.0.0.1 answering the routes the fetch tests need."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    big = bytes(300_000)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:  # keep the test output clean
            pass

        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/img.png":
                self._send(200, PNG, "image/png")
            elif path == "/page":
                self._send(200, b"<html></html>", "text/html; charset=utf-8")
            elif path == "/big":
                self._send(200, big, "image/png")
            elif path == "/big-chunked":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for _ in range(30):
                    self.wfile.write(b"2710\r\n" + bytes(10_000) + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif path.startswith("/redirect/"):
                left = int(path.rsplit("/", 1)[1])
                target = "/img.png" if left <= 1 else f"/redirect/{left - 1}"
                self._send(302, b"", "text/plain", {"Location": target})
            elif path == "/to-private":
                self._send(302, b"", "text/plain", {"Location": "http://10.0.0.1/a.png"})
            elif path == "/to-file":
                self._send(301, b"", "text/plain", {"Location": "file:///etc/passwd"})
            else:
                self._send(404, b"404: Not Found", "text/plain")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
