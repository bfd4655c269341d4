"""Findings 2 and 5: where local images may come from. By default only this server's own folder (the platform's
data folder's `images`), never a hidden (dot) folder even inside an allowed one, and one answer for every path
that may not be used, whether or not it exists, that shows neither the user's name nor the allowed folder's full
path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mcp_midjourney.config import default_state_dir
from tests.e2e.conftest import data, spawn, text

from .conftest import env_for, png, uploads

pytestmark = pytest.mark.anyio


async def test_by_default_only_the_servers_own_images_folder(sim, server_log: Path, home: Path) -> None:
    document = png(home / "Documents" / "scan-of-passport.png")
    own = default_state_dir() / "images"
    assert own.is_relative_to(home)  # the platform data folder follows the decoy HOME
    async with spawn(sim, server_log, env=env_for(home)) as client:
        before = await client.call_tool("describe", {"image": str(own / "cat.png")})
        assert before.is_error and "no such file" in text(before)
        refused = await client.call_tool("describe", {"image": str(document)})
        assert refused.is_error and "MJ_ALLOWED_DIRS" in text(refused), text(refused)
        assert f"~/{own.relative_to(home)} (not created yet)" in text(refused), text(refused)
        cat = png(own / "cat.png")
        described = data(await client.call_tool("describe", {"image": str(cat), "wait_seconds": 20}))
        assert described["status"] == "completed"
    assert len(uploads(sim)) == 1


async def test_never_a_dot_folder_even_inside_an_allowed_one(sim, server_log: Path, home: Path) -> None:
    # freedesktop thumbnails: predictable names (the md5 of the file's URI) showing documents kept elsewhere
    name = hashlib.md5(f"file://{home}/Documents/contract.pdf".encode()).hexdigest()
    thumbnail = png(home / ".cache" / "thumbnails" / "normal" / f"{name}.png")
    (home / "Pictures" / "innocent.png").symlink_to(thumbnail)
    hidden = png(home / "Pictures" / ".private" / "me.png")
    async with spawn(sim, server_log, env=env_for(home, MJ_ALLOWED_DIRS=str(home))) as client:
        for path in (thumbnail, home / "Pictures" / "innocent.png", hidden):
            result = await client.call_tool("describe", {"image": str(path)})
            assert result.is_error and "hidden" in text(result), (path, text(result))
        sref = await client.call_tool("imagine", {"prompt": f"a cat --sref {thumbnail}"})
        assert sref.is_error and "hidden" in text(sref)
    assert uploads(sim) == []


async def test_one_answer_for_a_path_that_may_not_be_used(sim, server_log: Path, home: Path) -> None:
    existing = home / "Documents" / "notes.png"
    png(existing)
    missing = home / "Documents" / "nothing-here.png"
    pictures = home / "Pictures"
    env = env_for(home, MJ_ALLOWED_DIRS=str(pictures))
    async with spawn(sim, server_log, env=env) as client:
        answers = []
        for path in (existing, missing, home / ".ssh" / "id_ed25519", pictures / ".." / "Documents" / "notes.png"):
            for tool, args in (
                ("describe", {"image": str(path)}),
                ("imagine", {"prompt": f"a cat --sref {path}"}),
                ("blend", {"images": [str(path), str(path)]}),
            ):
                result = await client.call_tool(tool, args)
                assert result.is_error
                answer = text(result).split(": ", 1)[1].replace(str(path), "<path>")
                assert str(home) not in answer and "decoy-user" not in answer, answer
                answers.append(answer)
        assert len(set(answers)) == 1, set(answers)
        assert "MJ_ALLOWED_DIRS" in answers[0] and "~/Pictures" in answers[0]
        # A path alone in a prompt is a word unless its name ends like an image's: looked up never.
        for word in (home / ".ssh" / "id_ed25519", home / "Documents" / "no-such-word"):
            made = data(await client.call_tool("imagine", {"prompt": f"a poster saying {word}", "wait_seconds": 20}))
            assert made["status"] == "completed"
    assert uploads(sim) == []
