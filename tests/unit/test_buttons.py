"""Components to buttons, the custom_id grammar, and finding the button a user means."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_midjourney.midjourney import ButtonAction, button_action, button_name, find_button, parse_buttons, press_cost
from mcp_midjourney.models import Button
from tests.conftest import load_fixture

UUID = "39d7cf9f-c2f0-4adf-a124-0020fb9f867f"


def row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}


def button(custom_id: str | None, label: str | None = None, emoji: str | None = None, **extra: Any) -> dict[str, Any]:
    component: dict[str, Any] = {"type": 2, "style": 2, **extra}
    if custom_id is not None:
        component["custom_id"] = custom_id
    if label is not None:
        component["label"] = label
    if emoji is not None:
        component["emoji"] = {"name": emoji}
    return component


@pytest.mark.parametrize(
    ("custom_id", "name"),
    [
        (f"MJ::JOB::upsample::2::{UUID}", "U2"),
        (f"MJ::JOB::variation::3::{UUID}", "V3"),
        (f"MJ::JOB::reroll::0::{UUID}::SOLO", "reroll"),
        (f"MJ::JOB::upsample_v6_2x_subtle::1::{UUID}::SOLO", "upscale_subtle"),
        (f"MJ::JOB::upsample_v6r1_2x_subtle::1::{UUID}::SOLO", "upscale_subtle"),
        (f"MJ::JOB::upsample_v7_2x_subtle::1::{UUID}::SOLO", "upscale_subtle"),
        (f"MJ::JOB::upsample_v7_2x_creative::1::{UUID}::SOLO", "upscale_creative"),
        (f"MJ::JOB::upsample_v5_2x::1::{UUID}::SOLO", "upscale_2x"),
        (f"MJ::JOB::upsample_v5_4x::1::{UUID}::SOLO", "upscale_4x"),
        (f"MJ::JOB::upsample_light::1::{UUID}::SOLO", "upscale_light"),
        (f"MJ::JOB::low_variation::1::{UUID}::SOLO", "vary_subtle"),
        (f"MJ::JOB::high_variation::1::{UUID}::SOLO", "vary_strong"),
        (f"MJ::Inpaint::1::{UUID}::SOLO", "vary_region"),
        (f"MJ::Outpaint::50::1::{UUID}::SOLO", "zoom_out_2x"),
        (f"MJ::Outpaint::75::1::{UUID}::SOLO", "zoom_out_1_5x"),
        (f"MJ::Outpaint::100::1::{UUID}::SOLO", "make_square"),
        (f"MJ::Outpaint::60::1::{UUID}::SOLO", "zoom_out_60"),
        (f"MJ::CustomZoom::{UUID}", "custom_zoom"),
        (f"MJ::JOB::pan_left::1::{UUID}::SOLO", "pan_left"),
        (f"MJ::JOB::pan_right::1::{UUID}::SOLO", "pan_right"),
        (f"MJ::JOB::pan_up::1::{UUID}::SOLO", "pan_up"),
        (f"MJ::JOB::pan_down::1::{UUID}::SOLO", "pan_down"),
        (f"MJ::JOB::animate_high::1::{UUID}::SOLO", "animate_high"),
        (f"MJ::JOB::animate_low::1::{UUID}::SOLO", "animate_low"),
        (f"MJ::JOB::animate_high_extend::2::{UUID}", "animate_high_extend"),
        (f"MJ::JOB::video_virtual_upscale::3::{UUID}", "video_upscale_3"),
        (f"MJ::BOOKMARK::{UUID}", "bookmark"),
        (f"MJ::CancelJob::ByJobid::{UUID}", "cancel"),
        ("MJ::Prompts::Appeal::OqWLXki2ZMU", "appeal"),
        ("MJ::Prompts::Appeal::7_dEy36TiEY", "appeal"),
        ("MJ::Job::PicReader::1", "describe_1"),
        ("MJ::Job::PicReader::4", "describe_4"),
        ("MJ::Job::PicReader::all", "imagine_all"),
        ("MJ::Picread::Retry", "describe_retry"),
        (f"MJ::JOB::make_square::1::{UUID}::SOLO", "make_square"),
        (f"MJ::JOB::brand_new_thing::1::{UUID}::SOLO", "brand_new_thing"),
        (f"MJ::JOB::BrandNewThing::1::{UUID}::SOLO", "brand_new_thing"),
        ("MJ::Settings::RemixMode", "settings_remix_mode"),
        (f"MJ::Prompts::Acknowledge::{UUID}", "acknowledge"),
    ],
)
def test_button_names_follow_the_custom_id_grammar(custom_id: str, name: str) -> None:
    assert button_name(custom_id) == name
    assert UUID not in name and "SOLO" not in name


def test_names_fall_back_to_the_label_then_the_emoji() -> None:
    assert button_name("some-other-bot:accept", "Accept ToS") == "accept_tos"
    assert button_name("x", None, "🔄") == "button"  # an emoji makes no slug
    assert button_name("x", "  ", None) == "button"
    assert button_name(None, "Web") == "web"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("custom_id", "action"),
    [
        (f"MJ::JOB::upsample::2::{UUID}", ButtonAction("upscale", None, 2, UUID)),
        (f"MJ::JOB::variation::4::{UUID}", ButtonAction("variation", None, 4, UUID)),
        (f"MJ::JOB::reroll::0::{UUID}::SOLO", ButtonAction("reroll", None, None, UUID)),
        (
            f"MJ::JOB::upsample_v6r1_2x_creative::1::{UUID}::SOLO",
            ButtonAction("upscale", "Creative", 1, UUID),
        ),
        (f"MJ::JOB::upsample_v5_4x::1::{UUID}::SOLO", ButtonAction("upscale", "4x", 1, UUID)),
        (f"MJ::JOB::low_variation::1::{UUID}::SOLO", ButtonAction("variation", "Subtle", 1, UUID)),
        (f"MJ::JOB::high_variation::1::{UUID}::SOLO", ButtonAction("variation", "Strong", 1, UUID)),
        (f"MJ::Inpaint::1::{UUID}::SOLO", ButtonAction("variation", "Region", 1, UUID, opens_modal=True)),
        (f"MJ::Outpaint::50::1::{UUID}::SOLO", ButtonAction("zoom", "2x", 50, UUID)),
        (f"MJ::Outpaint::75::1::{UUID}::SOLO", ButtonAction("zoom", "1.5x", 75, UUID)),
        (f"MJ::CustomZoom::{UUID}", ButtonAction("custom_zoom", None, None, UUID, opens_modal=True)),
        (f"MJ::JOB::pan_down::1::{UUID}::SOLO", ButtonAction("pan", "Down", 1, UUID)),
        (f"MJ::JOB::animate_low::1::{UUID}::SOLO", ButtonAction("animate", "Low", 1, UUID)),
        (f"MJ::BOOKMARK::{UUID}", ButtonAction("bookmark", job_uuid=UUID)),
        (f"MJ::CancelJob::ByJobid::{UUID}", ButtonAction("cancel", job_uuid=UUID)),
        ("MJ::Prompts::Appeal::OqWLXki2ZMU", ButtonAction("appeal")),
        ("MJ::Job::PicReader::3", ButtonAction("describe_pick", index=3)),
        ("MJ::Job::PicReader::all", ButtonAction("describe_pick", detail="all")),
        (f"MJ::JOB::brand_new_thing::1::{UUID}::SOLO", ButtonAction("unknown", "brand_new_thing", 1, UUID)),
        ("not-midjourney", ButtonAction("unknown")),
    ],
)
def test_button_actions(custom_id: str, action: ButtonAction) -> None:
    assert button_action(custom_id) == action


def test_captured_grid_buttons() -> None:
    message = load_fixture("captured", "gateway-message-create-imagine-final-grid.json")["d"]
    buttons = parse_buttons(message["components"])
    assert [b.name for b in buttons] == ["U1", "U2", "U3", "U4", "reroll", "V1", "V2", "V3", "V4"]
    assert [b.label for b in buttons] == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
    reroll = buttons[4]
    assert (reroll.emoji, reroll.style, reroll.disabled, reroll.component_type) == ("🔄", 2, False, 2)
    assert all(button_action(b.custom_id).job_uuid == "a7cb1552-f779-4094-9afe-2acf22dae280" for b in buttons)


def test_v6_upscaled_image_buttons() -> None:
    components = load_fixture("reconstructed", "components-v6-upscaled-image.json")["components"]
    buttons = parse_buttons(components)
    assert [b.name for b in buttons] == [
        "upscale_subtle",
        "upscale_creative",
        "vary_subtle",
        "vary_strong",
        "vary_region",
        "zoom_out_2x",
        "zoom_out_1_5x",
        "custom_zoom",
        "pan_left",
        "pan_right",
        "pan_up",
        "pan_down",
    ]
    by_name = {b.name: b for b in buttons}
    # Label and emoji both present: the label stays the label.
    assert (by_name["upscale_subtle"].label, by_name["upscale_subtle"].emoji) == (
        "Upscale (Subtle)",
        "upscale_1",
    )
    assert (by_name["vary_region"].label, by_name["vary_region"].emoji) == ("Vary (Region)", "🖌️")
    # Emoji only: the emoji is the label.
    assert [by_name[f"pan_{d}"].label for d in ("left", "right", "up", "down")] == ["⬅️", "➡️", "⬆️", "⬇️"]


def test_v7_and_video_buttons() -> None:
    data = load_fixture("reconstructed", "components-v7-and-progress-2026.json")
    ids = [c.replace("<uuid>", UUID) for c in data["solo_upscaled_v7_custom_ids"]]
    buttons = parse_buttons([row(*(button(c) for c in ids[i : i + 5])) for i in range(0, len(ids), 5)])
    assert [b.name for b in buttons] == [
        "upscale_subtle",
        "upscale_creative",
        "vary_subtle",
        "vary_strong",
        "zoom_out_2x",
        "zoom_out_1_5x",
        "pan_left",
        "pan_right",
        "pan_up",
        "pan_down",
        "animate_high",
        "animate_low",
        "bookmark",
    ]
    assert all(button_action(b.custom_id).job_uuid == UUID for b in buttons)
    assert buttons[0].label == "upscale_subtle"  # no label, no emoji: the name is all there is to show

    progress = parse_buttons([row(button(c)) for c in data["progress_message"]["button_custom_ids"]])
    assert [b.name for b in progress] == ["cancel"]
    assert button_action(progress[0].custom_id) == ButtonAction(
        "cancel", job_uuid="9a5aa072-26f3-4902-a2e2-f76f2db12270"
    )

    video = [
        c.replace("<uuid>", UUID).replace("<1-4>", str(i)).replace("<n>", "1")
        for i, c in enumerate(data["video_custom_ids"], start=1)
    ]
    assert [button_name(c) for c in video] == ["video_upscale_1", "animate_high_extend", "animate_low_extend"]


def test_select_menus_are_kept_and_link_buttons_skipped() -> None:
    components = [
        row(
            button(None, "Web", style=5, url="https://midjourney.com/app/"),
            button(f"MJ::BOOKMARK::{UUID}", emoji="❤️", disabled=True),
        ),
        row({"type": 3, "custom_id": "MJ::Settings::Version", "placeholder": "Model", "options": []}),
        row({"type": 4, "custom_id": "text-input"}),
    ]
    buttons = parse_buttons(components)
    assert [(b.name, b.label, b.component_type, b.disabled) for b in buttons] == [
        ("bookmark", "❤️", 2, True),
        ("settings_version", "Model", 3, False),
    ]


def test_names_are_unique_within_a_message() -> None:
    same = f"MJ::JOB::brand_new_thing::1::{UUID}::SOLO"
    buttons = parse_buttons([row(button(same), button(same.replace("::1::", "::2::")), button(same))])
    assert [b.name for b in buttons] == ["brand_new_thing", "brand_new_thing_2", "brand_new_thing_3"]


def test_components_v2_nesting_is_walked() -> None:
    container = {
        "type": 17,
        "components": [
            {
                "type": 9,
                "components": [{"type": 10, "content": "x"}],
                "accessory": button(f"MJ::BOOKMARK::{UUID}"),
            },
            row(button(f"MJ::JOB::upsample::1::{UUID}", "U1")),
        ],
    }
    assert [b.name for b in parse_buttons([container])] == ["bookmark", "U1"]  # display order


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "x",
        1,
        {},
        [None, 1, "x", []],
        [{"type": 1, "components": "x"}],
        [row({"type": 2, "custom_id": 5}, {"type": True, "custom_id": "MJ::x"})],
    ],
)
def test_malformed_components_give_no_buttons(junk: Any) -> None:
    assert parse_buttons(junk) == []


@pytest.fixture
def upscaled() -> list[Button]:
    return parse_buttons(load_fixture("reconstructed", "components-v6-upscaled-image.json")["components"])


@pytest.fixture
def grid() -> list[Button]:
    return parse_buttons(load_fixture("captured", "gateway-message-create-imagine-final-grid.json")["d"]["components"])


@pytest.mark.parametrize(
    ("wanted", "name"),
    [
        ("U1", "U1"),
        ("u1", "U1"),
        (" U1 ", "U1"),
        ("upscale 2", "U2"),
        ("V4", "V4"),
        ("variation 3", "V3"),
        ("reroll", "reroll"),
        ("🔄", "reroll"),
        ("Re-roll", "reroll"),
        ("MJ::JOB::upsample::3::a7cb1552-f779-4094-9afe-2acf22dae280", "U3"),
    ],
)
def test_find_button_on_a_grid(grid: list[Button], wanted: str, name: str) -> None:
    found = find_button(grid, wanted)
    assert found is not None and found.name == name


@pytest.mark.parametrize(
    ("wanted", "name"),
    [
        ("Upscale (Subtle)", "upscale_subtle"),
        ("upscale (subtle)", "upscale_subtle"),
        ("upscale_subtle", "upscale_subtle"),
        ("Upscale Subtle", "upscale_subtle"),
        ("Vary (Strong)", "vary_strong"),
        ("vary strong", "vary_strong"),
        ("Vary (Region)", "vary_region"),
        ("Zoom Out 1.5x", "zoom_out_1_5x"),
        ("zoom out 2x", "zoom_out_2x"),
        ("Custom Zoom", "custom_zoom"),
        ("⬅️", "pan_left"),
        ("⬅", "pan_left"),  # without the variation selector
        ("left", "pan_left"),
        ("pan up", "pan_up"),
        ("🖌️", "vary_region"),
    ],
)
def test_find_button_on_an_upscaled_image(upscaled: list[Button], wanted: str, name: str) -> None:
    found = find_button(upscaled, wanted)
    assert found is not None and found.name == name


def test_retry_means_reroll_on_a_grid_and_describe_retry_under_describe(grid: list[Button]) -> None:
    found = find_button(grid, "retry")
    assert found is not None and found.name == "reroll"
    describe = parse_buttons(
        [
            row(*(button(f"MJ::Job::PicReader::{i}", emoji=f"{i}\ufe0f\u20e3") for i in range(1, 5))),
            row(
                button("MJ::Job::PicReader::all", "Imagine all", "🎉"),
                button("MJ::Picread::Retry", emoji="🔄"),
            ),
        ]
    )
    assert [b.name for b in describe] == [
        "describe_1",
        "describe_2",
        "describe_3",
        "describe_4",
        "imagine_all",
        "describe_retry",
    ]
    assert find_button(describe, "retry") is describe[5]
    assert find_button(describe, "🔄") is describe[5]
    assert find_button(describe, "3️⃣") is describe[2]
    assert find_button(describe, "imagine all") is describe[4]


def test_find_button_misses_and_ambiguity(upscaled: list[Button]) -> None:
    assert find_button(upscaled, "U1") is None
    assert find_button(upscaled, "") is None
    assert find_button(upscaled, None) is None  # type: ignore[arg-type]
    assert find_button([], "U1") is None
    # Three buttons share the 🔍 emoji: the first shown wins.
    found = find_button(upscaled, "🔍")
    assert found is not None and found.name == "zoom_out_2x"


def test_a_never_seen_button_gets_a_name_and_is_found() -> None:
    custom_id = f"MJ::JOB::brand_new_thing::1::{UUID}::SOLO"
    buttons = parse_buttons([row(button(f"MJ::JOB::upsample::1::{UUID}", "U1"), button(custom_id, "Brand New"))])
    assert buttons[1].name == "brand_new_thing"
    assert buttons[1].label == "Brand New"
    assert find_button(buttons, "Brand New") is buttons[1]
    assert find_button(buttons, "brand new") is buttons[1]
    assert find_button(buttons, "brand_new_thing") is buttons[1]
    assert find_button(buttons, custom_id) is buttons[1]
    assert button_action(custom_id) == ButtonAction("unknown", "brand_new_thing", 1, UUID)


@pytest.mark.parametrize(
    ("custom_id", "cost"),
    [
        ("MJ::JOB::upsample::1::a7cb1552-f779-4094-9afe-2acf22dae280", "upscale"),
        ("MJ::JOB::upsample_v6_2x_subtle::1::a7cb1552-f779-4094-9afe-2acf22dae280::SOLO", "upscale"),
        ("MJ::JOB::upsample_v7_2x_creative::1::a7cb1552-f779-4094-9afe-2acf22dae280::SOLO", "upscale"),
        ("MJ::JOB::upsample_v5_4x::1::a7cb1552-f779-4094-9afe-2acf22dae280::SOLO", "upscale"),
        ("MJ::JOB::variation::2::a7cb1552-f779-4094-9afe-2acf22dae280", "job"),
        ("MJ::JOB::reroll::0::a7cb1552-f779-4094-9afe-2acf22dae280::SOLO", "job"),
        ("MJ::Outpaint::50::1::a7cb1552-f779-4094-9afe-2acf22dae280::SOLO", "job"),
        ("MJ::Job::PicReader::2", "job"),  # a describe pick runs an imagine
        ("MJ::BOOKMARK::a7cb1552-f779-4094-9afe-2acf22dae280", None),
        ("MJ::CancelJob::ByJobid::a7cb1552-f779-4094-9afe-2acf22dae280", None),
        ("MJ::Prompts::Appeal::made-up-token", None),
        ("MJ::Picread::Retry", None),
    ],
)
def test_a_press_costs_what_its_action_makes(custom_id: str, cost: str | None) -> None:
    assert press_cost(button_action(custom_id)) == cost
