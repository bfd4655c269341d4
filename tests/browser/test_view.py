"""The result view in a real browser: headless Chromium loads it in a minimal MCP Apps host page of the tests' own,
which hands it real tool results from the server (spawned over stdio against the simulator) and relays its
`tools/call`s back to that server, as a host does.

Skipped, with the reason, where no Chromium can be had (`.ci/run` installs Debian's). MJ_VIEW_SCREENSHOT=<path>
also writes the finished grid's screenshot there (the README's docs/app-grid.png).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_midjourney.simulator import SimulatorServer
from tests.browser.cdp import Frame, Page, chromium, find_chromium, open_page
from tests.e2e.conftest import data
from tests.e2e.test_apps import VIEW, apps_client

pytestmark = pytest.mark.anyio
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def devtools() -> Iterator[str]:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install -y chromium; .ci/run installs it)")
    try:
        with chromium(binary) as base:
            yield base
    except RuntimeError as exc:
        pytest.skip(f"Chromium is here but would not start headless: {exc}")


@pytest.fixture(scope="module")
def host_url() -> Iterator[str]:
    """The tests' own host page, served on 127.0.0.1."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(HERE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/host.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(job_seconds=0.4) as simulator:
        yield simulator


def wire(result: Any) -> dict[str, Any]:
    """A CallToolResult as the host hands it on: its JSON form."""
    dumped: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


class Host:
    """The host's backend: the view's tools/call requests go to the real server, their results back to the view."""

    def __init__(self, page: Page, client: Client) -> None:
        self.page, self.client = page, client
        self.calls: list[dict[str, Any]] = []  # every tools/call the view sent, in order
        self.results: list[dict[str, Any]] = []  # what the server answered each
        self.view: Frame | None = None  # where the view runs, once it is loaded

    async def load(self, html: str, result: Any, **options: Any) -> None:
        await self.page.evaluate(f"load({json.dumps(html)}, {json.dumps(wire(result))}, {json.dumps(options)})")
        await self.until("document.readyState === 'complete' && seen.some(m => m.method === 'ui/initialize')", top=True)
        self.view = await self.page.frame()

    async def relay(self) -> None:
        """Forward the view's tools/calls to the server, each as it comes (several may be open at once), for as
        long as the test runs."""
        async with anyio.create_task_group() as tg:
            while True:
                for call in await self.page.evaluate("calls.splice(0, calls.length)"):
                    self.calls.append(call)
                    tg.start_soon(self._forward, call)
                await anyio.sleep(0.05)

    async def _forward(self, call: dict[str, Any]) -> None:
        params = call["params"]
        result = await self.client.call_tool(params["name"], params["arguments"])
        self.results.append(data(result))
        await self.page.evaluate(f"answer({json.dumps(call['id'])}, {json.dumps(wire(result))})")

    async def shown(self, expression: str) -> Any:
        """The value of `expression` evaluated inside the view."""
        return await self.page.evaluate(expression, self.view)

    async def until(self, expression: str, *, top: bool = False, seconds: float = 30) -> Any:
        """Wait until `expression` (in the view, or the host page with top=True) is truthy; its value."""
        with anyio.fail_after(seconds):
            while True:
                value = await self.page.evaluate(expression, None if top else self.view)
                if value:
                    return value
                await anyio.sleep(0.05)

    async def click_button(self, label: str) -> None:
        """A real mouse click on the view's button labelled `label`, once the host has made room for it."""
        await self.until(FITS)
        box = await self.shown(
            f"(() => {{ const b = [...document.querySelectorAll('button')].find(b => b.textContent === "
            f"{json.dumps(label)}); const r = b.getBoundingClientRect(); "
            "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        frame = await self.page.evaluate("(() => { const r = frame.getBoundingClientRect(); return [r.x, r.y]; })()")
        await self.page.click(frame[0] + box[0], frame[1] + box[1])


@asynccontextmanager
async def hosted(devtools: str, host_url: str, sim: SimulatorServer, log: Path) -> AsyncIterator[tuple[Host, str]]:
    """A host page with the view's HTML read from the server, and the relay running."""
    async with apps_client(sim, log, apps=True) as client, open_page(devtools, host_url) as page:
        await Host(page, client).until("typeof load === 'function'", top=True)
        (content,) = (await client.read_resource(VIEW)).contents
        html = content.text  # type: ignore[union-attr]
        host = Host(page, client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(host.relay)
            yield host, html
            tg.cancel_scope.cancel()


IMAGE_LOADED = (
    "(() => { const i = document.querySelector('#media img'); "
    "return !!i && i.complete && i.naturalWidth > 0 && i.src; })()"
)
FITS = "innerHeight >= Math.ceil(document.documentElement.getBoundingClientRect().height)"
BUTTONS = "[...document.querySelectorAll('#buttons button')].map(b => b.textContent)"


async def test_a_finished_grid_shows_its_image_and_buttons_and_u2_upscales(
    devtools: str, host_url: str, sim: SimulatorServer, tmp_path: Path
) -> None:
    async with hosted(devtools, host_url, sim, tmp_path / "server.log") as (host, html):
        grid = await host.client.call_tool("imagine", {"prompt": "a lighthouse in a storm", "wait_seconds": 20})
        job = data(grid)
        assert job["status"] == "completed"
        await host.load(html, grid, hostCapabilities={"serverTools": {}, "updateModelContext": {"text": {}}})

        assert await host.until(IMAGE_LOADED) == job["image_url"]
        assert await host.shown("document.querySelector('#media img').alt") == "a lighthouse in a storm"
        labels = await host.until(f"{BUTTONS}.length && {BUTTONS}")
        assert len(labels) == 9 and labels[:4] == ["U1", "U2", "U3", "U4"]
        assert await host.shown("document.querySelectorAll('#buttons button:not([type=button])').length") == 0
        assert "completed" in await host.shown("document.getElementById('state').textContent")
        await host.until("document.documentElement.dataset.theme === 'light'")
        # Emoji-only labels have a name a screen reader can say.
        assert await host.shown("document.querySelector('#buttons [data-name=reroll]').ariaLabel") == "reroll"
        # The view told the host its size, and the host made room for all of it.
        await host.until(FITS)

        shot = await host.page.screenshot(await grid_clip(host))
        (tmp_path / "app-grid.png").write_bytes(shot)
        if os.environ.get("MJ_VIEW_SCREENSHOT"):
            Path(os.environ["MJ_VIEW_SCREENSHOT"]).write_bytes(shot)

        await host.click_button("U2")
        await host.until("document.getElementById('state').textContent.includes('upscale')")
        press = host.calls[0]
        assert press["method"] == "tools/call" and press["params"]["name"] == "press_button"
        assert press["params"]["arguments"]["message_id"] == job["message_id"]
        assert press["params"]["arguments"]["button"] == "U2"

        # The host answered with the real press result: the view shows the upscale, its image and its buttons.
        upscale = host.results[-1]
        assert upscale["kind"] == "upscale" and upscale["status"] == "completed"
        assert upscale["image_url"] != job["image_url"]
        await host.until(f"{IMAGE_LOADED} === {json.dumps(upscale['image_url'])}")
        labels = await host.shown(BUTTONS)
        assert labels == [b["label"] for b in upscale["buttons"]] and "U1" not in labels
        assert await host.shown("document.getElementById('state').textContent") == "upscale · completed"
        # The host said it takes model context: the view tells the model what the person chose.
        told = await host.until(
            "seen.filter(m => m.method === 'ui/update-model-context').map(m => m.params.content[0].text)", top=True
        )
        assert len(told) == 1 and "pressed U2" in told[0] and upscale["message_id"] in told[0]


async def grid_clip(host: Host) -> dict[str, float]:
    rect = await host.page.evaluate(
        "(() => { const r = frame.getBoundingClientRect(); "
        "return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
    )
    return {k: float(v) for k, v in rect.items()}


async def test_a_running_job_follows_to_its_result(
    devtools: str, host_url: str, sim: SimulatorServer, tmp_path: Path
) -> None:
    async with hosted(devtools, host_url, sim, tmp_path / "server.log") as (host, html):
        started = await host.client.call_tool("imagine", {"prompt": "a quiet harbour", "wait_seconds": 0})
        assert data(started)["status"] in ("queued", "in_progress")
        await host.load(html, started, theme="dark")

        await host.until(IMAGE_LOADED)
        await host.until("document.getElementById('state').textContent.includes('completed')")
        follows = [c["params"] for c in host.calls]
        assert follows and all(c["name"] == "get_message" for c in follows)
        assert follows[0]["arguments"]["message_id"] == data(started)["message_id"]
        assert follows[0]["arguments"]["wait_seconds"] > 0
        assert len(await host.shown(BUTTONS)) == 9
        # The host's dark theme: a dark background, light text; a change of theme follows.
        assert await host.shown("document.documentElement.dataset.theme") == "dark"
        dark = await host.shown("getComputedStyle(document.body).backgroundColor")
        await host.page.evaluate("setTheme('light')")
        await host.until("document.documentElement.dataset.theme === 'light'")
        light = await host.shown("getComputedStyle(document.body).backgroundColor")
        assert brightness(dark) < 80 < 200 < brightness(light)


def brightness(css: str) -> float:
    red, green, blue = (int(part) for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return (red + green + blue) / 3


async def test_a_failed_job_shows_midjourneys_reason(
    devtools: str, host_url: str, sim: SimulatorServer, tmp_path: Path
) -> None:
    async with hosted(devtools, host_url, sim, tmp_path / "server.log") as (host, html):
        failed = await host.client.call_tool("imagine", {"prompt": "a forbiddenword at dawn", "wait_seconds": 20})
        job = data(failed)
        assert job["status"] == "failed" and job["error"]
        await host.load(html, failed)

        reason = await host.until(
            "!document.getElementById('error').hidden && document.getElementById('error').textContent"
        )
        assert reason == job["error"]
        assert await host.shown("document.getElementById('error').getAttribute('role')") == "alert"
        assert host.calls == []


async def test_a_video_result_plays_and_media_come_only_from_the_listed_hosts(
    devtools: str, host_url: str, sim: SimulatorServer, tmp_path: Path
) -> None:
    """The simulator has no video yet: the grid's result is handed on with the mp4 links a video result carries
    (`video_urls`), and with its image moved to a host the view's CSP does not name (the same simulator, as
    `localhost`)."""
    async with hosted(devtools, host_url, sim, tmp_path / "server.log") as (host, html):
        grid = await host.client.call_tool("imagine", {"prompt": "a paper boat", "wait_seconds": 20})
        job = data(grid)
        mp4 = f"{sim.base_url}/video/{job['job_uuid']}_0.mp4"
        elsewhere = job["image_url"].replace("127.0.0.1", "localhost")
        grid.structured_content = {**job, "video_urls": [mp4], "image_url": elsewhere}
        await host.load(html, grid)

        video = await host.until(
            "(() => { const v = document.querySelector('#media video'); "
            "return v && {src: v.src, controls: v.controls, label: v.getAttribute('aria-label')}; })()"
        )
        assert video == {"src": mp4, "controls": True, "label": "a paper boat"}
        # The poster is on a host the CSP does not name: the browser refuses it.
        violation = await host.until(
            "new Promise(done => { document.addEventListener('securitypolicyviolation', "
            "e => done([e.effectiveDirective, e.blockedURI])); const i = new Image(); "
            f"i.onload = () => done('loaded'); i.src = {json.dumps(elsewhere)}; }})"
        )
        assert violation == ["img-src", elsewhere]
        allowed = await host.shown(
            "new Promise(done => { const i = new Image(); i.onload = () => done('loaded'); "
            f"i.onerror = () => done('refused'); i.src = {json.dumps(job['image_url'])}; }})"
        )
        assert allowed == "loaded"


async def test_a_running_job_can_be_cancelled_from_the_view(
    devtools: str, host_url: str, sim: SimulatorServer, tmp_path: Path
) -> None:
    async with hosted(devtools, host_url, sim, tmp_path / "server.log") as (host, html):
        sim.set_job_duration(8.0)
        started = await host.client.call_tool("imagine", {"prompt": "a job to cancel", "wait_seconds": 0})
        await host.load(html, started)

        # While it runs the view keeps asking, so Midjourney's Cancel button shows up before the job ends.
        await host.until("!!document.querySelector('#buttons [data-name=cancel]')", seconds=20)
        assert "in progress" in await host.shown("document.getElementById('state').textContent")
        label = await host.shown("document.querySelector('#buttons [data-name=cancel]').textContent")
        await host.click_button(label)

        # The press answers with Midjourney's acknowledgement; the view goes on to show the job it stopped.
        reason = await host.until(
            "!document.getElementById('error').hidden && document.getElementById('error').textContent"
        )
        assert "imagine · failed" in await host.shown("document.getElementById('state').textContent")
        assert "stopped" in reason.lower()
        # The press went to the message the view showed the Cancel button on (the running job's own message).
        shown = [r for r in host.results if "cancel" in {b["name"] for b in r.get("buttons", [])}][-1]
        presses = [c["params"] for c in host.calls if c["params"]["name"] == "press_button"]
        assert presses == [
            {
                "name": "press_button",
                "arguments": {"message_id": shown["message_id"], "button": "cancel", "preview": False},
            }
        ]


async def test_a_press_that_asks_for_a_prompt_is_answered_in_the_view(
    devtools: str, host_url: str, sim: SimulatorServer, tmp_path: Path
) -> None:
    async with hosted(devtools, host_url, sim, tmp_path / "server.log") as (host, html):
        grid = data(
            await host.client.call_tool("imagine", {"prompt": "a castle on a hill --v 6.1", "wait_seconds": 20})
        )
        single = await host.client.call_tool(
            "press_button", {"message_id": grid["message_id"], "button": "U1", "wait_seconds": 20}
        )
        await host.load(html, single)
        await host.until(IMAGE_LOADED)

        await host.click_button("Custom Zoom")
        # Midjourney's form opens: its pre-filled prompt is there to edit, in a labelled text box.
        prefilled = await host.until(
            "!document.getElementById('ask').hidden && document.getElementById('answer').value"
        )
        assert "--zoom" in prefilled
        assert (
            await host.shown("document.getElementById('answer').labels[0].textContent")
            == "Midjourney asks for a prompt"
        )
        await host.shown("document.getElementById('answer').value = 'a castle on a hill --zoom 1.8'")
        await host.click_button("Send")

        await host.until("document.getElementById('state').textContent === 'custom zoom · completed'")
        await host.until(IMAGE_LOADED)
        sent = [c["params"]["arguments"] for c in host.calls if c["params"]["name"] == "press_button"]
        assert [(a["button"], a.get("prompt")) for a in sent] == [
            ("custom_zoom", None),
            ("custom_zoom", "a castle on a hill --zoom 1.8"),
        ]
        assert sent[1]["message_id"] == host.results[0]["message_id"]  # the job that waits on the form
        assert host.results[-1]["status"] == "completed" and host.results[-1]["image_url"]
        assert await host.shown("document.getElementById('ask').hidden") is True
