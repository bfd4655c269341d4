"""Interaction bodies, compared field by field with real captured requests; the command index lookup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_midjourney.midjourney import (
    CommandNotFound,
    attachment_ref,
    blend_options,
    button_press,
    describe_options,
    find_command,
    imagine_options,
    modal_submit,
    shorten_options,
    slash_command,
)
from mcp_midjourney.models import MIDJOURNEY_BOT_ID
from tests.conftest import load_fixture


@pytest.fixture
def index() -> dict[str, Any]:
    return load_fixture("captured", "rest-application-command-index.json")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "name",
    [
        "rest-interactions-button-upsample-u4.json",
        "rest-interactions-appeal-button-a.json",
        "rest-interactions-appeal-button-b.json",
    ],
)
def test_button_press_is_the_captured_body(name: str) -> None:
    captured = load_fixture("captured", name)
    body = button_press(
        application_id=captured["application_id"],
        guild_id=captured["guild_id"],
        channel_id=captured["channel_id"],
        message_id=captured["message_id"],
        message_flags=captured["message_flags"],
        session_id=captured["session_id"],
        nonce=captured["nonce"],
        custom_id=captured["data"]["custom_id"],
    )
    assert body == captured
    assert json.loads(json.dumps(body)) == body


def test_select_menu_press() -> None:
    body = button_press(
        application_id=MIDJOURNEY_BOT_ID,
        guild_id="1",
        channel_id="2",
        message_id="3",
        message_flags=64,
        session_id="s",
        nonce="4",
        custom_id="MJ::Settings::Version",
        component_type=3,
        values=["7"],
    )
    assert body["data"] == {"component_type": 3, "custom_id": "MJ::Settings::Version", "values": ["7"]}


@pytest.mark.parametrize(
    ("name", "command_id", "version", "options"),
    [
        ("imagine", "938956540159881230", "1237876415471554623", ["prompt"]),
        ("describe", "1092492867185950852", "1237876415471554625", ["image", "link"]),
        (
            "blend",
            "1062880104792997970",
            "1237876415471554624",
            ["image1", "image2", "dimensions", "image3", "image4", "image5"],
        ),
        ("shorten", "1121575372539039774", "1247736572414001223", ["prompt"]),
        ("info", "972289487818334209", "1237876415735660565", []),
    ],
)
def test_find_command(index: dict[str, Any], name: str, command_id: str, version: str, options: list[str]) -> None:
    command = find_command(index, name)
    assert (command["id"], command["version"], command["name"]) == (command_id, version, name)
    assert [o["name"] for o in command.get("options", [])] == options
    assert find_command(index, "/" + name.upper())["id"] == command_id


def test_find_command_misses(index: dict[str, Any]) -> None:
    with pytest.raises(CommandNotFound, match=r"/nonexistent.*imagine"):
        find_command(index, "nonexistent")
    with pytest.raises(CommandNotFound):
        find_command(index, "imagine", application_id="1022952195194359889")  # niji's, not in this index
    junks: list[Any] = [{}, {"application_commands": "x"}, None, []]
    for junk in junks:
        with pytest.raises(CommandNotFound):
            find_command(junk, "imagine")
    assert issubclass(CommandNotFound, LookupError)


def test_find_command_prefers_the_slash_command() -> None:
    index = {
        "application_commands": [
            {"id": "1", "type": 3, "name": "imagine", "application_id": MIDJOURNEY_BOT_ID, "version": "a"},
            {"id": "2", "type": 1, "name": "imagine", "application_id": MIDJOURNEY_BOT_ID, "version": "b"},
        ]
    }
    assert find_command(index, "imagine")["version"] == "b"


def test_find_a_message_command_by_its_name(index: dict[str, Any]) -> None:
    assert find_command(index, "Cancel Job")["type"] == 3


def test_slash_imagine(index: dict[str, Any]) -> None:
    command = find_command(index, "imagine")
    body = slash_command(
        command,
        imagine_options("a cat --ar 2:3"),
        guild_id="1121633108689698856",
        channel_id="1121633108689698859",
        session_id="6e5e35098c7a55166f73ab21ee06875e",
        nonce="1122489989028904960",
    )
    # The same envelope as a captured button press, with type 2 and the command's data.
    captured = load_fixture("captured", "rest-interactions-appeal-button-a.json")
    assert set(body) == set(captured) - {"message_id", "message_flags"}
    assert body["type"] == 2
    assert body["application_id"] == MIDJOURNEY_BOT_ID
    assert body["data"] == {
        "version": "1237876415471554623",
        "id": "938956540159881230",
        "name": "imagine",
        "type": 1,
        "options": [{"type": 3, "name": "prompt", "value": "a cat --ar 2:3"}],
        "application_command": command,
        "attachments": [],
    }
    assert json.loads(json.dumps(body)) == body

    dm = slash_command(command, [], guild_id=None, channel_id="1", session_id="s", nonce="2")
    assert "guild_id" in dm and dm["guild_id"] is None


def test_slash_describe_and_blend_with_uploads(index: dict[str, Any]) -> None:
    upload = attachment_ref(0, "cat.png", "b1c2/cat.png")
    body = slash_command(
        find_command(index, "describe"),
        describe_options(),
        guild_id="1",
        channel_id="2",
        session_id="s",
        nonce="3",
        attachments=[upload],
    )
    assert body["data"]["options"] == [{"type": 11, "name": "image", "value": 0}]
    assert body["data"]["attachments"] == [{"id": "0", "filename": "cat.png", "uploaded_filename": "b1c2/cat.png"}]
    assert describe_options(link="https://x/y.png") == [{"type": 3, "name": "link", "value": "https://x/y.png"}]
    assert blend_options(2, "2:3") == [
        {"type": 11, "name": "image1", "value": 0},
        {"type": 11, "name": "image2", "value": 1},
        {"type": 3, "name": "dimensions", "value": "--ar 2:3"},
    ]
    assert shorten_options("a long prompt") == [{"type": 3, "name": "prompt", "value": "a long prompt"}]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("imagine", imagine_options("a cat")),
        ("shorten", shorten_options("a long prompt")),
        ("describe", describe_options()),
        ("describe", describe_options(link="https://x/y.png")),
        *[("blend", blend_options(count, aspect)) for count in (2, 5) for aspect in (None, "2:3", "1:1", "3:2")],
    ],
)
def test_every_built_option_is_one_the_captured_command_declares(
    index: dict[str, Any], name: str, options: list[dict[str, Any]]
) -> None:
    declared = {o["name"]: o for o in find_command(index, name).get("options", [])}
    for option in options:
        spec = declared[option["name"]]
        assert option["type"] == spec["type"], option
        if "choices" in spec:
            assert option["value"] in [c["value"] for c in spec["choices"]], option
    required = {n for n, o in declared.items() if o.get("required")}
    assert required <= {o["name"] for o in options}


def test_blend_dimensions_are_the_captured_choices(index: dict[str, Any]) -> None:
    (dimensions,) = [o for o in find_command(index, "blend")["options"] if o["name"] == "dimensions"]
    offered = [blend_options(2, aspect)[-1]["value"] for aspect in ("2:3", "1:1", "3:2")]
    assert offered == [c["value"] for c in dimensions["choices"]]
    assert [o["name"] for o in blend_options(3)] == ["image1", "image2", "image3"]


def test_modal_submit() -> None:
    body = modal_submit(
        application_id=MIDJOURNEY_BOT_ID,
        guild_id=None,
        channel_id="2",
        session_id="s",
        nonce="3",
        modal_interaction_id="444",
        modal_custom_id="MJ::OutpaintCustomZoomModal::uuid",
        inputs={"MJ::OutpaintCustomZoomModal::prompt": "a cat --zoom 1.8"},
    )
    assert body == {
        "type": 5,
        "application_id": MIDJOURNEY_BOT_ID,
        "guild_id": None,
        "channel_id": "2",
        "session_id": "s",
        "nonce": "3",
        "data": {
            "id": "444",
            "custom_id": "MJ::OutpaintCustomZoomModal::uuid",
            "components": [
                {
                    "type": 1,
                    "components": [
                        {
                            "type": 4,
                            "custom_id": "MJ::OutpaintCustomZoomModal::prompt",
                            "value": "a cat --zoom 1.8",
                        }
                    ],
                }
            ],
        },
    }
