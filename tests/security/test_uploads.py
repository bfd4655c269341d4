"""Finding 1, 4 and 6: what leaves the machine when an agent names a local file. Only pixels: no other file
type, no metadata, nothing appended; no more images than the cap, none before the prompt is checked; a clear
error for every failure."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import data, spawn, text

from .conftest import SECRET, decoded, env_for, huge_png, png, uploads

pytestmark = pytest.mark.anyio

S = SECRET.encode()
# Headers Pillow recognises (and `verify()` passes) for formats that are not images Midjourney reads.
NOT_IMAGES = {
    "hdf5": b"\x89HDF\r\n\x1a\n" + S * 10,
    "postscript": b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 10 10\n" + S,
    "bufr": b"BUFR" + S * 10,
    "mpeg": b"\x00\x00\x01\xb3\x01\x40\xf0\x13" + S * 10,
    "ascii-ppm": b"P3\n2 1\n255\n255 0 0 0 255 0\n#" + S,
    "pillow-im": b"Image type: RGB image\r\nName: " + S + b"\r\nImage size (x*y): 2*2\r\n\x1a" + b"\x00" * 600,
}


async def test_files_that_are_not_images_are_refused_and_never_uploaded(sim, server_log: Path, home: Path) -> None:
    pictures = home / "Pictures"
    for name, payload in NOT_IMAGES.items():
        (pictures / f"{name}.png").write_bytes(payload)
    async with spawn(sim, server_log, env=env_for(home, MJ_ALLOWED_DIRS=str(pictures))) as client:
        for name in NOT_IMAGES:
            result = await client.call_tool("describe", {"image": str(pictures / f"{name}.png"), "wait_seconds": 5})
            assert result.is_error, name
            assert "PNG, JPEG, WEBP or GIF" in text(result), (name, text(result))
        assert data(await client.call_tool("check_prompt", {"prompt": "still serving"}))["ok"]
    assert not any(S in blob for blob in uploads(sim))


async def test_only_the_pixels_leave_no_appended_bytes_no_exif(sim, server_log: Path, home: Path) -> None:
    pictures = home / "Pictures"
    keyed = png(pictures / "keyed.png")
    keyed.write_bytes(keyed.read_bytes() + (home / ".ssh" / "id_ed25519").read_bytes())
    photo = pictures / "photo.jpg"
    exif = Image.Exif()
    exif[0x010F] = "DecoyCam"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS: where the photo was taken
    Image.new("RGB", (64, 48), (20, 120, 220)).save(photo, format="JPEG", exif=exif, comment=S)
    assert b"DecoyCam" in photo.read_bytes()
    env = env_for(home, MJ_ALLOWED_DIRS=str(pictures))
    async with spawn(sim, server_log, env=env) as client:
        for path in (keyed, photo):
            described = data(await client.call_tool("describe", {"image": str(path), "wait_seconds": 20}))
            assert described["status"] == "completed"
    sent = uploads(sim)
    assert len(sent) == 2
    assert not any(S in blob or b"DecoyCam" in blob for blob in sent)
    as_png, as_jpeg = decoded(sent[0]), decoded(sent[1])
    assert as_png.format == "PNG" and as_png.tobytes() == decoded(keyed.read_bytes()).tobytes()  # lossless stays so
    assert as_jpeg.format == "JPEG" and as_jpeg.size == (64, 48) and not as_jpeg.getexif()


async def test_a_cap_on_images_per_call_and_the_prompt_checked_before_any_upload(
    sim, server_log: Path, home: Path
) -> None:
    pictures = home / "Pictures"
    cat = png(pictures / "cat.png")
    env = env_for(home, MJ_ALLOWED_DIRS=str(pictures), MJ_MAX_IMAGES_PER_CALL="3")
    async with spawn(sim, server_log, env=env) as client:
        many = await client.call_tool("imagine", {"prompt": "a cat", "images": [str(cat)] * 30})
        assert many.is_error and "MJ_MAX_IMAGES_PER_CALL" in text(many), text(many)
        refused = await client.call_tool("imagine", {"prompt": f"a cat --sref {cat} --chaos 999", "images": [str(cat)]})
        assert refused.is_error and "--chaos" in text(refused), text(refused)
        assert uploads(sim) == []
        made = data(await client.call_tool("imagine", {"prompt": f"a cat --sref {cat}", "images": [str(cat)]}))
        assert made["prompt"].startswith("http") and "--sref http" in made["prompt"]
    assert len(uploads(sim)) == 1  # the same file named twice in one call goes up once


async def test_every_upload_failure_is_a_clear_error(sim, server_log: Path, home: Path) -> None:
    pictures = home / "Pictures"
    bomb = huge_png(pictures / "bomb.png", 20_000, 10_000)  # beyond Pillow's DecompressionBombError threshold
    cat = png(pictures / "cat.png")
    async with spawn(sim, server_log, env=env_for(home, MJ_ALLOWED_DIRS=str(pictures))) as client:
        for tool, args in (("describe", {"image": str(bomb)}), ("imagine", {"prompt": "x", "images": [str(bomb)]})):
            result = await client.call_tool(tool, args)
            assert result.is_error and "pixels" in text(result) and "MJ_MAX_IMAGE_PIXELS" in text(result), text(result)
        sim.fail_requests(403, count=20, route="/attachments")
        failed = await client.call_tool("imagine", {"prompt": "a cat", "images": [str(cat)]})
        assert failed.is_error and "upload" in text(failed).lower(), text(failed)
        assert data(await client.call_tool("check_prompt", {"prompt": "still serving"}))["ok"]


def test_the_cleaned_image_keeps_its_pixels_and_sheds_the_rest() -> None:
    from mcp_midjourney.media.clean import clean_image, webp_is_lossless

    frames = [Image.new("P", (16, 16), i) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], comment=S)
    extension, cleaned = clean_image(out.getvalue(), 1_000_000)
    assert extension == "png" and S not in cleaned and decoded(cleaned).size == (16, 16)
    for lossless in (True, False):
        webp = io.BytesIO()
        Image.new("RGBA", (32, 32), (1, 2, 3, 128)).save(webp, format="WEBP", lossless=lossless)
        assert webp_is_lossless(webp.getvalue()) is lossless
        assert clean_image(webp.getvalue(), 1_000_000)[0] == ("png" if lossless else "webp")
