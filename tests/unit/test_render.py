"""A finished job rendered for the model: its saved copies remembered by the renderer, not written into the job."""

from __future__ import annotations

import io
from pathlib import Path

import httpx2
import pytest
from PIL import Image
from pydantic import SecretStr

from mcp_midjourney.config import Settings
from mcp_midjourney.engine.store import Job
from mcp_midjourney.models import JobStatus
from mcp_midjourney.server.render import Renderer

pytestmark = pytest.mark.anyio

CDN = "https://cdn.discordapp.com/attachments/1/2"  # trusted without a DNS lookup: no network in unit tests
UUID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def finished_grid() -> Job:
    job = Job(nonce="1", kind="imagine", prompt="a lighthouse")
    job.status = JobStatus.COMPLETED
    job.result_message_id = "1083788807800897597"
    job.job_uuid = UUID
    job.image_url = f"{CDN}/grid.png"
    job.image_urls = [f"{CDN}/{i}.png" for i in range(1, 5)]
    return job


class CDNStub:
    """Serves a PNG for every URL, or a 404 while `broken`; counts the requests."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.broken = False
        self.body = png()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(str(request.url))
        if self.broken:
            return httpx2.Response(404)
        return httpx2.Response(200, content=self.body, headers={"content-type": "image/png"})


def settings(download_dir: Path) -> Settings:
    return Settings(
        token=SecretStr("made-up-token-abcdef"),
        guild_id=None,
        channel_id="100000000000000002",
        download_dir=download_dir,
    )


async def test_saved_copies_are_listed_and_not_downloaded_twice(tmp_path: Path) -> None:
    cdn = CDNStub()
    job = finished_grid()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(cdn)) as http:
        renderer = Renderer(settings(tmp_path), http)
        first = await renderer.render(job, warnings=[], budget=None, preview=False)
        fetched = len(cdn.requests)
        again = await renderer.render(job, warnings=[], budget=None, preview=False)

    names = [f"{UUID}_grid.png", *(f"{UUID}_{i}.png" for i in range(1, 5))]
    assert first.structured_content is not None and again.structured_content is not None
    assert first.structured_content["files"] == [str(tmp_path / n) for n in names]
    assert all((tmp_path / n).read_bytes() == cdn.body for n in names)
    assert fetched == 5 and len(cdn.requests) == 5  # the second render only read the renderer's memory
    assert again.structured_content["files"] == first.structured_content["files"]
    assert renderer.saved_files(job) == first.structured_content["files"]
    assert "saved: " + str(tmp_path / names[0]) in first.content[0].text  # type: ignore[union-attr]


async def test_a_job_none_of_whose_images_could_be_saved_is_tried_again(tmp_path: Path) -> None:
    cdn = CDNStub()
    cdn.broken = True
    job = finished_grid()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(cdn)) as http:
        renderer = Renderer(settings(tmp_path), http)
        failed = await renderer.render(job, warnings=[], budget=None, preview=False)
        cdn.broken = False
        saved = await renderer.render(job, warnings=[], budget=None, preview=False)

    assert failed.structured_content is not None and saved.structured_content is not None
    assert "files" not in failed.structured_content  # empty fields are left out
    assert any("could not save" in w for w in failed.structured_content["warnings"])
    assert len(saved.structured_content["files"]) == 5
    assert len(cdn.requests) == 10


async def test_a_preview_rides_along_and_nothing_is_saved_without_a_download_dir() -> None:
    cdn = CDNStub()
    job = finished_grid()
    plain = Settings(token=SecretStr("made-up-token-abcdef"), guild_id=None, channel_id="100000000000000002")
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(cdn)) as http:
        result = await Renderer(plain, http).render(job, warnings=["note"], budget="Budget: jobs left 3/5")

    assert cdn.requests == [f"{CDN}/grid.png"]
    assert [block.type for block in result.content] == ["text", "image"]
    assert result.structured_content is not None
    assert "files" not in result.structured_content
    assert result.structured_content["warnings"] == ["note"]
    assert result.structured_content["budget"] == "Budget: jobs left 3/5"
