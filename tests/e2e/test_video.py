"""Video end to end over stdio against the simulator (protocol.md §7): Animate, pick, Extend, an image-to-video
imagine, the AnimateModal with Remix on, a second pick answered by the first result, the mp4s saved, a v8 result,
and a moderation hold whose buttons are listed but never pressed unasked."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import data, spawn, text

pytestmark = pytest.mark.anyio

MP4 = "/video/"


async def press(client, message_id: str, button: str, **more) -> dict:
    return data(
        await client.call_tool("press_button", {"message_id": message_id, "button": button, "wait_seconds": 20, **more})
    )


async def picked_image(client, prompt: str) -> dict:
    grid = data(await client.call_tool("imagine", {"prompt": prompt, "wait_seconds": 20}))
    single = await press(client, grid["message_id"], "U1")
    assert single["status"] == "completed"
    return single


def image_block(result) -> Image.Image:
    blocks = [b for b in result.content if getattr(b, "type", "") == "image"]
    assert blocks, text(result)
    return Image.open(io.BytesIO(base64.b64decode(blocks[0].data)))


async def test_animate_gives_four_mp4_links_and_an_image_block(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        single = await picked_image(client, "a paper boat on a pond")
        result = await client.call_tool(
            "press_button",
            {"message_id": single["message_id"], "button": "Animate (High motion)", "wait_seconds": 20},
        )
        video = data(result)
        assert video["status"] == "completed" and video["kind"] == "animate", video
        assert len(video["video_urls"]) == 4
        assert all(MP4 in url and url.endswith(f"/{i}.mp4") for i, url in enumerate(video["video_urls"]))
        assert all(video["job_uuid"] in url for url in video["video_urls"])
        still = image_block(result)
        assert max(still.size) <= 1024  # the first frame of the animated WebP: a 2x2 sheet, within the bound
        assert "video_urls" in video["next"] and "U1" in video["next"]
        assert {f"video_upscale_{i}" for i in range(1, 5)} <= {b["name"] for b in video["buttons"]}
        assert "video 1:" in text(result)


async def test_pick_then_extend_gives_a_longer_video(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        single = await picked_image(client, "a kite over dunes")
        video = await press(client, single["message_id"], "animate_low")
        clip = await press(client, video["message_id"], "U3")
        assert clip["status"] == "completed", clip
        assert len(clip["video_urls"]) == 1 and clip["video_urls"][0].endswith("/0.mp4")
        assert {"animate_high_extend", "animate_low_extend"} <= {b["name"] for b in clip["buttons"]}
        assert "extend" in clip["next"]

        longer = await press(client, clip["message_id"], "extend_high")
        assert longer["status"] == "completed" and longer["kind"] == "extend", longer
        assert longer["parent_message_id"] == clip["message_id"]
        assert longer["video_urls"] and all(u.endswith(".mp4") for u in longer["video_urls"])
        assert longer["job_uuid"] not in (clip["job_uuid"], video["job_uuid"])


async def test_pressing_the_same_pick_twice_returns_the_first_result(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        single = await picked_image(client, "a lantern in the rain")
        video = await press(client, single["message_id"], "animate_high")
        first = await press(client, video["message_id"], "U2")
        sent = sim.stats().get("POST /interactions", 0)
        again = await press(client, video["message_id"], "video_upscale_2")
        assert first["status"] == again["status"] == "completed"
        assert again["message_id"] == first["message_id"] and again["video_urls"] == first["video_urls"]
        assert sim.stats().get("POST /interactions", 0) == sent  # not pressed again: Midjourney would not answer


async def test_image_to_video_imagine_with_a_local_file(sim, server_log: Path, tmp_path: Path) -> None:
    start = tmp_path / "start.png"
    Image.new("RGB", (64, 64), (200, 80, 40)).save(start)
    end = tmp_path / "end.png"
    Image.new("RGB", (64, 64), (40, 80, 200)).save(end)
    env = {"MJ_ALLOWED_DIRS": str(tmp_path)}
    async with spawn(sim, server_log, env=env) as client:
        result = await client.call_tool(
            "imagine",
            {
                "prompt": f"the sun sets slowly --no birds --video --motion low --bs 2 --end {end}",
                "images": [str(start)],
                "wait_seconds": 20,
            },
        )
        video = data(result)
        assert video["status"] == "completed", video
        assert len(video["video_urls"]) == 2  # --bs 2: two videos
        assert str(start) not in video["prompt"] and str(end) not in video["prompt"]  # both were uploaded
        image_block(result)


async def test_remix_opens_the_animate_modal(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        single = await picked_image(client, "a windmill at noon")
        sim.set_remix(True)
        asked = await press(client, single["message_id"], "animate_high", wait_seconds=10)
        assert asked["status"] == "needs_input" and "a windmill at noon" in asked["input_prompt"], asked
        done = await press(client, asked["message_id"], "submit", prompt="a windmill in a storm")
        assert done["status"] == "completed" and len(done["video_urls"]) == 4, done


async def test_download_dir_saves_the_mp4s(sim, server_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "saved"
    async with spawn(sim, server_log, env={"MJ_DOWNLOAD_DIR": str(out)}) as client:
        single = await picked_image(client, "a comet over hills")
        video = await press(client, single["message_id"], "animate_low")
        mp4s = sorted(f for f in video["files"] if f.endswith(".mp4"))
        assert [Path(f).name for f in mp4s] == [f"{video['job_uuid']}_video_{i}.mp4" for i in range(1, 5)]
        assert all(Path(f).read_bytes()[4:8] == b"ftyp" for f in mp4s)


async def test_oref_with_a_local_file_and_a_profile_code_midjourney_rewrites(
    sim, server_log: Path, tmp_path: Path
) -> None:
    knight = tmp_path / "knight.png"
    Image.new("RGB", (64, 64), (90, 90, 90)).save(knight)
    async with spawn(sim, server_log, env={"MJ_ALLOWED_DIRS": str(tmp_path)}) as client:
        prompt = f"a knight in a meadow --oref {knight} --ow 200 --p abc1234 --exp 20 --v 7"
        grid = data(await client.call_tool("imagine", {"prompt": prompt, "wait_seconds": 20}))
        assert grid["status"] == "completed" and len(grid["image_urls"]) == 4, grid
        assert str(knight) not in grid["prompt"] and "--oref http" in grid["prompt"]
        echoed = [m["content"] for m in sim.channel_messages() if "a knight in a meadow" in str(m.get("content"))]
        assert echoed and all("--p abc1234" not in c for c in echoed)  # Midjourney echoed another code


async def test_a_v8_result_is_complete_with_the_buttons_it_has(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        single = await picked_image(client, "a glass city --v 8 --draft")
        names = {b["name"] for b in single["buttons"]}
        assert names and not any(n.startswith(("upscale", "zoom", "pan")) for n in names), names
        assert "vary_strong" in names and "animate_high" in names
        assert "press_button" in single["next"] and "animate_high" in single["next"]


async def test_a_moderation_hold_lists_its_buttons_and_presses_nothing(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        sim.answer_with_embed(
            "Pending mod message",
            "You have a pending moderation message. Please acknowledge it before using the bot.",
            16711680,
        )
        result = await client.call_tool("imagine", {"prompt": "a harmless meadow", "wait_seconds": 20})
        held = data(result)
        assert held["status"] == "failed" and "Pending mod message" in held["error"], held
        labels = {b["label"] for b in held["buttons"]}
        assert {"Acknowledge", "Resubmit"} <= labels
        assert "only if" in held["next"]
        assert sim.stats().get("POST /interactions", 0) == 1  # the imagine alone: nothing pressed unasked
        accounts = data(await client.call_tool("account", {"action": "status"}))
        assert "Pending mod message" in (accounts["problems"] or "")

        # The user asks: Resubmit runs the held prompt again, and the account is in use again.
        again = await press(client, held["message_id"], "Resubmit")
        assert again["status"] == "completed" and len(again["image_urls"]) == 4, again["error"]


async def test_a_video_costs_eight_jobs_of_the_budget(sim, server_log: Path, tmp_path: Path) -> None:
    env = {"MJ_MAX_JOBS_PER_HOUR": "10", "MJ_STATE_DIR": str(tmp_path / "state")}
    async with spawn(sim, server_log, env=env) as client:
        single = await picked_image(client, "a red balloon")  # two jobs: the imagine and U1
        video = await press(client, single["message_id"], "animate_high")
        assert video["status"] == "completed"
        checked = data(await client.call_tool("check_prompt", {"prompt": "budget?"}))
        assert "jobs left 0/10" in (checked["budget"] or ""), checked["budget"]
        refused = await client.call_tool(
            "press_button", {"message_id": video["message_id"], "button": "reroll", "wait_seconds": 0}
        )
        assert refused.is_error and "MJ_MAX_JOBS_PER_HOUR" in text(refused)
