"""A tiny Chrome DevTools Protocol driver: Debian's Chromium, headless, spoken to over its websocket with httpx2.

No browser download and no driver package: the tests need a handful of CDP methods (evaluate, frames, mouse
events, a screenshot), and httpx2's websocket client is already a dependency.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

# Without these a headless Chromium on a closed network stalls on its own background traffic.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--window-size=760,900",
)


def find_chromium() -> str | None:
    """The Chromium to run: $CHROMIUM, else Debian's `chromium` on PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named)
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium(binary: str) -> Iterator[str]:
    """Run a headless Chromium with a fresh profile; yields its DevTools HTTP base (`http://127.0.0.1:<port>`)."""
    with tempfile.TemporaryDirectory(prefix="mj-chromium-") as profile:
        log = Path(profile) / "stderr.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"], stdout=subprocess.DEVNULL, stderr=err
            )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Chromium did not start: {log.read_text(errors='replace')[-800:]}")
                time.sleep(0.05)
            port = port_file.read_text().split()[0]
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class Frame:
    """Where to evaluate inside an iframe: an attached target's session, or an execution context of the tab."""

    session: str | None = None
    context: int | None = None


class Page:
    """One browser tab: CDP calls by id, events kept for whoever asks."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._next = 0
        self._waiting: dict[int, Any] = {}
        self._answers: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    async def _read(self) -> None:
        while True:
            message = json.loads(await self._ws.receive_text())
            if "id" in message:
                self._answers[message["id"]] = message
                self._waiting.pop(message["id"]).set()
            else:
                self.events.append(message)

    async def call(self, method: str, *, session: str | None = None, **params: Any) -> dict[str, Any]:
        """A CDP method, on the tab or on an attached target's `session` (an out-of-process iframe)."""
        self._next += 1
        ident = self._next
        done = anyio.Event()
        self._waiting[ident] = done
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_text(json.dumps(message))
        with anyio.fail_after(30):
            await done.wait()
        answer = self._answers.pop(ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def evaluate(self, expression: str, frame: Frame | None = None) -> Any:
        """The value of a JavaScript expression (promises awaited), in the page or in a frame."""
        params: dict[str, Any] = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if frame is not None and frame.context is not None:
            params["contextId"] = frame.context
        answer = await self.call("Runtime.evaluate", session=frame.session if frame else None, **params)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression[:80]}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def frame(self) -> Frame:
        """The page's iframe: its own target when Chromium runs it out of process (a sandboxed frame usually is),
        else an isolated world in the page's frame tree (it shares the frame's DOM)."""
        attached = [e["params"] for e in self.events if e.get("method") == "Target.attachedToTarget"]
        frames = [a["sessionId"] for a in attached if a["targetInfo"]["type"] == "iframe"]
        if frames:
            return Frame(session=frames[-1])
        tree = (await self.call("Page.getFrameTree"))["frameTree"]
        frame_id = tree["childFrames"][0]["frame"]["id"]
        world = await self.call("Page.createIsolatedWorld", frameId=frame_id, worldName="test")
        return Frame(context=world["executionContextId"])

    async def click(self, x: float, y: float) -> None:
        """A real left click at page coordinates."""
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode((await self.call("Page.captureScreenshot", **params))["data"])


@asynccontextmanager
async def open_page(devtools: str, url: str) -> AsyncIterator[Page]:
    """A new tab at `url`, closed afterwards."""
    async with httpx2.AsyncClient(timeout=30) as http:
        target = (await http.put(f"{devtools}/json/new?{url}")).json()
        async with (
            http.websocket(
                target["webSocketDebuggerUrl"], max_message_size_bytes=64 * 2**20, keepalive_ping_interval_seconds=None
            ) as ws,
            anyio.create_task_group() as tg,
        ):
            page = Page(ws)
            tg.start_soon(page._read)
            await page.call("Page.enable")
            await page.call("Runtime.enable")
            # Out-of-process iframes become targets of their own, attached on this socket (flat sessions).
            await page.call("Target.setAutoAttach", autoAttach=True, waitForDebuggerOnStart=False, flatten=True)
            try:
                yield page
            finally:
                tg.cancel_scope.cancel()
        await http.get(f"{devtools}/json/close/{target['id']}")
