"""Every Midjourney action end to end: single-image buttons, modals (Remix, Custom Zoom, Vary Region), cancel,
bookmark, describe, blend, /shorten, /info and modes, a button Midjourney ships at run time."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import pytest
from PIL import Image

from tests.e2e.conftest import data, spawn, text

pytestmark = pytest.mark.anyio


async def grid_and_single(client, prompt: str) -> tuple[dict, dict]:
    grid = data(await client.call_tool("imagine", {"prompt": prompt, "wait_seconds": 20}))
    single = data(
        await client.call_tool("press_button", {"message_id": grid["message_id"], "button": "U2", "wait_seconds": 20})
    )
    assert single["status"] == "completed"
    return grid, single


def png_file(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (64, 48), colour).save(path)
    return path


@pytest.mark.parametrize(
    ("button", "kind", "grid_result"),
    [
        ("vary_strong", "variation", True),
        ("Vary (Subtle)", "variation", True),
        ("zoom_out_2x", "zoom", True),
        ("⬅️", "pan", True),
        ("upscale_subtle", "upscale", False),
    ],
)
async def test_single_image_buttons(sim, server_log: Path, button: str, kind: str, grid_result: bool) -> None:
    async with spawn(sim, server_log) as client:
        _grid, single = await grid_and_single(client, f"a lighthouse for {kind}")
        result = data(
            await client.call_tool(
                "press_button", {"message_id": single["message_id"], "button": button, "wait_seconds": 20}
            )
        )
        assert result["status"] == "completed", result
        assert result["kind"] == kind
        assert result["parent_message_id"] == single["message_id"]
        assert result["image_url"] and result["job_uuid"] not in (None, single["job_uuid"])
        assert (len(result.get("image_urls", [])) == 4) is grid_result


async def test_remix_modal_in_two_calls_and_in_one(sim, server_log: Path) -> None:
    sim.set_remix(True)
    async with spawn(sim, server_log) as client:
        grid = data(await client.call_tool("imagine", {"prompt": "a quiet harbour", "wait_seconds": 20}))
        asked = data(
            await client.call_tool(
                "press_button", {"message_id": grid["message_id"], "button": "V1", "wait_seconds": 10}
            )
        )
        assert asked["status"] == "needs_input"
        assert "a quiet harbour" in asked["input_prompt"]
        assert "prompt=" in asked["next"]
        done = data(
            await client.call_tool(
                "press_button",
                {
                    "message_id": asked["message_id"],
                    "button": "submit",
                    "prompt": "a busy harbour at dawn",
                    "wait_seconds": 20,
                },
            )
        )
        assert done["status"] == "completed" and done["kind"] == "variation"
        assert done["prompt"] == "a busy harbour at dawn" and len(done["image_urls"]) == 4

        at_once = data(
            await client.call_tool(
                "press_button",
                {"message_id": grid["message_id"], "button": "V2", "prompt": "a harbour in fog", "wait_seconds": 20},
            )
        )
        assert at_once["status"] == "completed" and at_once["prompt"] == "a harbour in fog"
        assert at_once["parent_message_id"] == grid["message_id"]


async def test_prompt_on_a_press_without_a_form_is_reported(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        grid = data(await client.call_tool("imagine", {"prompt": "a lonely tree", "wait_seconds": 20}))
        result = data(
            await client.call_tool(
                "press_button", {"message_id": grid["message_id"], "button": "V1", "prompt": "x", "wait_seconds": 20}
            )
        )
        assert result["status"] == "completed"
        assert any("prompt not used" in w for w in result["warnings"])


async def test_custom_zoom_and_vary_region_on_a_v6_image(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        _grid, single = await grid_and_single(client, "a castle on a hill --v 6.1")
        names = {b["name"] for b in single["buttons"]}
        assert {"custom_zoom", "vary_region"} <= names

        zoom = data(
            await client.call_tool(
                "press_button",
                {
                    "message_id": single["message_id"],
                    "button": "Custom Zoom",
                    "prompt": "a castle on a hill --zoom 1.8",
                    "wait_seconds": 20,
                },
            )
        )
        assert zoom["status"] == "completed" and zoom["parent_button"] == "custom_zoom"

        region = data(
            await client.call_tool(
                "press_button",
                {
                    "message_id": single["message_id"],
                    "button": "vary_region",
                    "prompt": "a dragon on the tower",
                    "region": [0.5, 0.0, 1.0, 0.5],
                    "wait_seconds": 20,
                },
            )
        )
        assert region["status"] == "completed", region
        assert region["kind"] == "variation" and region["parent_button"] == "vary_region"
        assert region["prompt"] == "a dragon on the tower"

        missing = await client.call_tool(
            "press_button", {"message_id": single["message_id"], "button": "vary_region", "prompt": "no mask"}
        )
        assert missing.is_error and "region" in text(missing)


async def test_cancel_a_running_job_and_bookmark(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        _grid, single = await grid_and_single(client, "a bookmarked moon")
        heart = data(await client.call_tool("press_button", {"message_id": single["message_id"], "button": "❤️"}))
        assert heart["status"] == "completed" and heart["kind"] == "bookmark"

        sim.set_job_duration(6.0)
        running = data(await client.call_tool("imagine", {"prompt": "a job to cancel", "wait_seconds": 0}))
        for _ in range(40):
            running = data(await client.call_tool("get_message", {"message_id": running["message_id"]}))
            if "cancel" in {b["name"] for b in running.get("buttons", [])}:
                break
            await anyio.sleep(0.2)
        assert "cancel" in {b["name"] for b in running["buttons"]}
        data(await client.call_tool("press_button", {"message_id": running["message_id"], "button": "cancel"}))
        after = data(await client.call_tool("get_message", {"message_id": running["message_id"], "wait_seconds": 10}))
        assert after["status"] == "failed" and "stopped" in after["error"].lower()


async def test_describe_a_url_and_a_local_file_then_imagine_from_it(sim, server_log: Path, tmp_path: Path) -> None:
    picture = png_file(tmp_path / "red.png", (220, 30, 30))
    async with spawn(sim, server_log, env={"MJ_ALLOWED_DIRS": str(tmp_path)}) as client:
        local = data(await client.call_tool("describe", {"image": str(picture), "wait_seconds": 20}))
        assert local["status"] == "completed" and local["kind"] == "describe"
        assert len(local["prompts"]) == 4 and all(local["prompts"])
        assert {"describe_1", "imagine_all"} <= {b["name"] for b in local["buttons"]}

        grid = data(await client.call_tool("imagine", {"prompt": "a cat", "wait_seconds": 20}))
        remote = data(await client.call_tool("describe", {"image": grid["image_urls"][0], "wait_seconds": 20}))
        assert len(remote["prompts"]) == 4

        made = data(
            await client.call_tool(
                "press_button", {"message_id": local["message_id"], "button": "describe_1", "wait_seconds": 20}
            )
        )
        assert made["status"] == "completed" and len(made["image_urls"]) == 4

        outside = await client.call_tool("describe", {"image": "/etc/hostname"})
        assert outside.is_error and "MJ_ALLOWED_DIRS" in text(outside)
        scheme = await client.call_tool("describe", {"image": "file:///etc/passwd"})
        assert scheme.is_error and "file://" in text(scheme)


async def test_blend_local_files_and_image_prompts(sim, server_log: Path, tmp_path: Path) -> None:
    a = png_file(tmp_path / "a.png", (10, 200, 10))
    b = png_file(tmp_path / "b.png", (10, 10, 200))
    async with spawn(sim, server_log, env={"MJ_ALLOWED_DIRS": str(tmp_path)}) as client:
        blended = data(
            await client.call_tool("blend", {"images": [str(a), str(b)], "aspect": "3:2", "wait_seconds": 20})
        )
        assert blended["status"] == "completed" and blended["kind"] == "blend" and len(blended["image_urls"]) == 4

        too_few = await client.call_tool("blend", {"images": [str(a)]})
        assert too_few.is_error and "2 to 5" in text(too_few)

        referenced = data(
            await client.call_tool(
                "imagine",
                {"prompt": f"a green field --sref {a}", "images": [str(b)], "wait_seconds": 20},
            )
        )
        assert referenced["status"] == "completed"
        assert str(a) not in referenced["prompt"] and "--sref http" in referenced["prompt"]
        assert referenced["prompt"].startswith("http")


async def test_account_info_and_modes(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        status = (await client.call_tool("account", {})).structured_content
        assert status["accounts"][0]["connected"] and status["accounts"][0]["healthy"]
        info = (await client.call_tool("account", {"action": "info"})).structured_content
        facts = info["accounts"][0]["info"]
        assert facts["fast_hours_left"] == pytest.approx(12.34) and facts["mode"] == "fast"
        relaxed = (await client.call_tool("account", {"action": "relax"})).structured_content
        assert "relax" in relaxed["accounts"][0]["reply"].lower() or "fast-hours" in relaxed["accounts"][0]["reply"]
        info = (await client.call_tool("account", {"action": "info"})).structured_content
        assert info["accounts"][0]["info"]["mode"] == "relax"


async def test_shorten_through_check_prompt(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        result = (
            await client.call_tool(
                "check_prompt",
                {"prompt": "a very detailed painting of a majestic old lighthouse --ar 3:2", "shorten": True},
            )
        ).structured_content
        assert result["ok"] and result["parameters"]["aspect"] == "3:2"
        assert len(result["shortened"]) >= 2


async def test_a_button_midjourney_ships_at_run_time_can_be_pressed(sim, server_log: Path) -> None:
    sim.configure(extra_buttons=(("brand_new_thing", "Brand New"),))
    async with spawn(sim, server_log) as client:
        _grid, single = await grid_and_single(client, "a new button")
        assert {"label": "Brand New", "name": "brand_new_thing"} in single["buttons"]
        by_label = data(
            await client.call_tool(
                "press_button", {"message_id": single["message_id"], "button": "Brand New", "wait_seconds": 20}
            )
        )
        by_name = data(
            await client.call_tool(
                "press_button", {"message_id": single["message_id"], "button": "brand_new_thing", "wait_seconds": 20}
            )
        )
        for result in (by_label, by_name):
            assert result["status"] == "completed" and result["parent_button"] == "brand_new_thing"
            assert result["image_url"]


async def test_preview_is_an_image_within_bounds(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        result = await client.call_tool("imagine", {"prompt": "a preview please", "wait_seconds": 20})
        images = [block for block in result.content if getattr(block, "type", "") == "image"]
        assert len(images) == 1
        import base64

        raw = base64.b64decode(images[0].data)
        picture = Image.open(io.BytesIO(raw))
        picture.load()
        assert max(picture.size) <= 1024 and len(raw) < 1_000_000
        assert images[0].mime_type in ("image/jpeg", "image/webp")
        total = sum(len(getattr(b, "text", "") or getattr(b, "data", "")) for b in result.content)
        assert total < 1_048_576
        quiet = await client.call_tool("imagine", {"prompt": "no preview", "wait_seconds": 20, "preview": False})
        assert not [b for b in quiet.content if getattr(b, "type", "") == "image"]


async def test_slash_words_in_a_prompt_are_not_taken_for_files(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        result = data(await client.call_tool("imagine", {"prompt": "a poster for /r/earthporn", "wait_seconds": 20}))
        assert result["status"] == "completed" and "/r/earthporn" in result["prompt"]
