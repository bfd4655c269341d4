"""The simulator's video on the wire (protocol.md §7), driven by the engine: `_step_N.jpeg` progress frames, the
animated WebP grid, the mp4 paths of its CDN (both spellings the anchors use), pick, Extend, v8 button sets."""

from __future__ import annotations

import io
from collections.abc import Iterator

import anyio
import httpx2
import pytest
from PIL import Image

from mcp_midjourney.engine.engine import Engine
from mcp_midjourney.engine.store import Job
from mcp_midjourney.models import JobStatus
from mcp_midjourney.simulator import SimulatorServer
from tests.integration.test_faults import finish, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(job_seconds=0.6, ack_seconds=0.02, ready_min_bytes=0) as server:
        yield server


async def picked(engine: Engine, prompt: str) -> Job:
    grid = await finish(engine, await engine.imagine(prompt))
    single = await finish(engine, await engine.press(grid.handle, "U1"))
    assert single.status is JobStatus.COMPLETED
    return single


async def test_animate_shows_step_frames_then_an_animated_webp_grid_with_mp4s(sim: SimulatorServer) -> None:
    async with running(sim) as engine, httpx2.AsyncClient() as http:
        single = await picked(engine, "a fern unrolling")
        video = await engine.press(single.handle, "animate_high")
        frames: set[str] = set()
        with anyio.fail_after(15):
            while video.in_flight:
                if video.preview_url:
                    frames.add(video.preview_url.split("?")[0].rsplit("/", 1)[-1])
                await anyio.sleep(0.02)
        assert video.status is JobStatus.COMPLETED
        assert frames and all(
            f.startswith(video.job_uuid or "?") and "_step_" in f and f.endswith(".jpeg") for f in frames
        )
        assert video.prompt and "--motion high --video 1" in str(sim.channel_messages()[-1].get("content"))
        still = Image.open(io.BytesIO((await http.get(video.image_url or "")).content))
        assert still.format == "WEBP" and getattr(still, "n_frames", 1) > 1

        assert len(video.video_urls) == 4
        for url in video.video_urls:
            answer = await http.get(url)
            assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4"
            assert answer.content[4:8] == b"ftyp"
        trueai = video.video_urls[1].replace("/1.mp4", "/0_1.mp4")
        assert (await http.get(trueai)).status_code == 200
        assert (await http.get(video.video_urls[0].replace("/0.mp4", "/4.mp4"))).status_code == 404
        image_job = single.job_uuid or ""
        assert (await http.get(video.video_urls[0].replace(video.job_uuid or "", image_job))).status_code == 404


async def test_a_pick_is_answered_once_and_extend_makes_a_new_video_grid(sim: SimulatorServer) -> None:
    async with running(sim) as engine:
        single = await picked(engine, "a paper lantern")
        video = await finish(engine, await engine.press(single.handle, "animate_low"))
        before = len(sim.channel_messages())
        clip = await finish(engine, await engine.press(video.handle, "video_upscale_4"))
        assert clip.status is JobStatus.COMPLETED and len(clip.video_urls) == 1
        assert len(sim.channel_messages()) == before + 1  # the pick's reply, and nothing else
        longer = await finish(engine, await engine.press(clip.handle, "animate_low_extend"))
        assert longer.status is JobStatus.COMPLETED and len(longer.video_urls) == 4
        assert longer.job_uuid not in (clip.job_uuid, video.job_uuid)


async def test_bs_sets_how_many_videos_an_image_to_video_prompt_makes(sim: SimulatorServer) -> None:
    async with running(sim) as engine:
        single = await picked(engine, "a harbour at dawn")
        job = await finish(engine, await engine.imagine(f"{single.image_url} boats drift --video --bs 1 --no gulls"))
        assert job.status is JobStatus.COMPLETED and len(job.video_urls) == 1, job.error
        assert [b.name for b in job.buttons] == ["video_upscale_1", "reroll"]


async def test_a_video_prompt_without_an_image_is_refused_like_midjourney_does(sim: SimulatorServer) -> None:
    async with running(sim) as engine:
        job = await finish(engine, await engine.imagine("boats drift --video"))
        assert job.status is JobStatus.FAILED and "starting image" in (job.error or "")


async def test_v8_singles_have_no_upscale_zoom_or_pan(sim: SimulatorServer) -> None:
    async with running(sim) as engine:
        single = await picked(engine, "a glass city --v 8")
        names = {b.name for b in single.buttons}
        assert names == {"vary_subtle", "vary_strong", "animate_high", "animate_low", "bookmark"}
        v7 = await picked(engine, "a glass city --v 7")
        assert {"upscale_subtle", "zoom_out_2x", "pan_left"} <= {b.name for b in v7.buttons}
