"""``mcp-midjourney demo``: the whole product, offline.

Starts the simulator, spawns the real server over stdio with the `mcp` SDK's own client, and runs what an
agent would: imagine, then U1, then get_message, then a short video flow (Animate, pick one video) — showing
progress and saving the images and the mp4 it gets.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import httpx2


def _say(text: str) -> None:
    print(text, flush=True)


def server_env(sim: Any, **extra: str) -> dict[str, str]:
    """The environment a spawned server needs to talk to a running simulator."""
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")}
    env.update(
        {
            "MJ_DISCORD_TOKEN": sim.token,
            "MJ_GUILD_ID": sim.guild_id,
            "MJ_CHANNEL_ID": sim.channel_id,
            "MJ_DISCORD_API_BASE": sim.api_base,
            "MJ_CDN_BASE": sim.mj_cdn_base,
            "MJ_INPAINT_BASE": sim.base_url,
            "MJ_INTERACTION_INTERVAL": "0.05",
            # A state of its own (slots, budget, jobs): a simulated account never shares the user's real state.
            "MJ_STATE_DIR": tempfile.mkdtemp(prefix="mcp-midjourney-sim-state-"),
        }
    )
    env.update(extra)
    return env


async def _download(client: httpx2.AsyncClient, url: str, path: Path) -> int:
    response = await client.get(url)
    response.raise_for_status()
    path.write_bytes(response.content)
    return len(response.content)


async def _demo(prompt: str, out: Path, job_seconds: float) -> int:
    from mcp import Client, StdioServerParameters

    from ..simulator import SimulatorServer

    with SimulatorServer(job_seconds=job_seconds) as sim:
        _say(f"simulator: Discord + Midjourney on {sim.base_url}")
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "mcp_midjourney"], env=server_env(sim, MJ_LOG_LEVEL="WARNING")
        )

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            _say(f"  ... {message or f'{progress:.0f}%'}")

        async with Client(params, mode="legacy") as client, httpx2.AsyncClient() as http:
            tools = await client.list_tools()
            _say("server tools: " + ", ".join(t.name for t in tools.tools))

            _say(f'\n> imagine("{prompt}")')
            result = await client.call_tool(
                "imagine", {"prompt": prompt, "wait_seconds": 40}, progress_callback=progress
            )
            grid = _show(result)
            if grid is None or grid.get("status") != "completed":
                return 1

            _say(f"\n> press_button(message_id={grid['message_id']}, button='U1')")
            result = await client.call_tool(
                "press_button",
                {"message_id": grid["message_id"], "button": "U1", "wait_seconds": 40},
                progress_callback=progress,
            )
            upscale = _show(result)
            if upscale is None or upscale.get("status") != "completed":
                return 1

            _say(f"\n> get_message(message_id={upscale['message_id']})")
            again = _show(await client.call_tool("get_message", {"message_id": upscale["message_id"]}))
            if again is None:
                return 1

            clip = await _video(client, upscale["message_id"], progress)
            if clip is None:
                return 1

            out.mkdir(parents=True, exist_ok=True)
            saved: list[Path] = []
            targets = [(grid["image_url"], out / "grid.png")]
            targets += [(url, out / f"grid_{i}.png") for i, url in enumerate(grid["image_urls"], start=1)]
            targets.append((upscale["image_url"], out / "upscale_U1.png"))
            targets.append((clip["video_urls"][0], out / "video_U1.mp4"))
            for url, path in targets:
                await _download(http, url, path)
                saved.append(path)
        _say(f"\nsaved {len(saved)} files in {out.resolve()}:")
        for path in saved:
            _say(f"  {path.name} ({path.stat().st_size:,} bytes)")
    return 0


async def _video(client: Any, message_id: str, progress: Any) -> dict[str, Any] | None:
    """Animate the picked image, then pick the first of its videos: the single video, with its mp4."""
    picked: dict[str, Any] | None = {"message_id": message_id}
    for button in ("animate_high", "U1"):
        assert picked is not None
        _say(f"\n> press_button(message_id={picked['message_id']}, button='{button}')")
        arguments = {"message_id": picked["message_id"], "button": button, "wait_seconds": 40}
        picked = _show(await client.call_tool("press_button", arguments, progress_callback=progress))
        if picked is None or picked.get("status") != "completed" or not picked.get("video_urls"):
            return None
    return picked


def _show(result: Any) -> dict[str, Any] | None:
    for block in result.content:
        text = getattr(block, "text", None)
        if text:
            _say("  " + text.replace("\n", "\n  "))
    if result.is_error:
        return None
    data: dict[str, Any] | None = result.structured_content
    return data


def run_demo(prompt: str, *, out: str = "demo-output", job_seconds: float = 4.0) -> int:
    """Run the demo; return the process exit code."""
    return anyio.run(_demo, prompt, Path(out), job_seconds)
