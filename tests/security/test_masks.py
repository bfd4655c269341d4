"""Finding 3: Vary (Region)'s mask. A small file of many pixels is refused before it is decoded, a URL is not
taken, and decoding one leaves the event loop free for every other call."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import anyio
import anyio.lowlevel
import pytest

from tests.e2e.conftest import data, spawn, text

from .conftest import env_for, huge_png, png

pytestmark = pytest.mark.anyio


async def test_a_mask_of_too_many_pixels_or_from_a_url_is_refused(sim, server_log: Path, home: Path) -> None:
    pictures = home / "Pictures"
    bomb = huge_png(pictures / "mask.png", 12_000, 12_000)
    assert bomb.stat().st_size < 1_000_000  # small on disk: 144 million pixels once decoded
    async with spawn(sim, server_log, env=env_for(home, MJ_ALLOWED_DIRS=str(pictures))) as client:
        grid = data(await client.call_tool("imagine", {"prompt": "a castle --v 6.1", "wait_seconds": 20}))
        single = data(
            await client.call_tool(
                "press_button", {"message_id": grid["message_id"], "button": "U1", "wait_seconds": 20}
            )
        )
        press = {"message_id": single["message_id"], "button": "vary_region", "prompt": "a dragon", "wait_seconds": 0}
        refused = await client.call_tool("press_button", {**press, "mask_path": str(bomb)})
        assert refused.is_error and "pixels" in text(refused) and "MJ_MAX_IMAGE_PIXELS" in text(refused), text(refused)
        url = await client.call_tool("press_button", {**press, "mask_path": "https://example.com/mask.png"})
        assert url.is_error and "URLs are not taken" in text(url), text(url)
        mask = pictures / "good.png"
        png(mask, (256, 256), (255, 255, 255))
        made = data(await client.call_tool("press_button", {**press, "mask_path": str(mask), "wait_seconds": 20}))
        assert made["status"] == "completed" and made["parent_button"] == "vary_region"


async def test_decoding_a_mask_leaves_the_event_loop_free(home: Path) -> None:
    from mcp_midjourney.server.inputs import load_mask  # (the function that reads a mask_path)

    pictures = home / "Pictures"
    mask = huge_png(pictures / "big-mask.png", 5000, 5000)  # within the cap; decoding it takes a while
    rules = SimpleNamespace(allowed_dirs=(pictures.resolve(),), max_image_pixels=40_000_000, max_images_per_call=8)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.lowlevel.checkpoint()
            ticks += 1

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        await anyio.lowlevel.checkpoint()
        started = ticks
        with pytest.raises(Exception, match="empty"):  # a black mask marks nothing: refused once decoded
            await load_mask(str(mask), rules)
        during = ticks - started
        group.cancel_scope.cancel()
    assert during > 10  # the loop kept turning while the mask was decoded
