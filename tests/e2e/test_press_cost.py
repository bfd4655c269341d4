"""What a press costs is read from the button itself: every upscale (U1, Upscale (Subtle) by its label or by its
name) charges the upscale bucket, so an upscale never eats the job budget. Driven over stdio, against the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import data, spawn, text

pytestmark = pytest.mark.anyio


async def test_upscales_of_every_spelling_charge_the_upscale_bucket_not_the_jobs(
    sim, server_log: Path, tmp_path: Path
) -> None:
    env = {"MJ_MAX_JOBS_PER_HOUR": "2", "MJ_MAX_UPSCALES_PER_HOUR": "5", "MJ_STATE_DIR": str(tmp_path / "state")}
    async with spawn(sim, server_log, env=env) as client:
        grid = data(await client.call_tool("imagine", {"prompt": "a lighthouse at dusk", "wait_seconds": 30}))
        assert grid["status"] == "completed"
        single = data(await client.call_tool("press_button", {"message_id": grid["message_id"], "button": "U1"}))
        assert single["status"] == "completed"
        for spelling in ("Upscale (Subtle)", "upscale_subtle"):
            upscaled = await client.call_tool(
                "press_button", {"message_id": single["message_id"], "button": spelling, "wait_seconds": 30}
            )
            assert data(upscaled)["kind"] == "upscale", text(upscaled)
        checked = data(await client.call_tool("check_prompt", {"prompt": "budget?"}))
        assert "upscales left 2/5" in (checked["budget"] or ""), checked["budget"]
        assert "jobs left 1/2" in (checked["budget"] or ""), checked["budget"]
        # The job budget still has room for a second imagine, and only then refuses.
        second = await client.call_tool("imagine", {"prompt": "a second lighthouse", "wait_seconds": 0})
        assert not second.is_error, text(second)
        third = await client.call_tool("imagine", {"prompt": "a third lighthouse", "wait_seconds": 0})
        assert third.is_error and "MJ_MAX_JOBS_PER_HOUR" in text(third)
    assert sim.stats().get("POST /interactions", 0) == 5  # imagine, U1, two upscales, the second imagine
