"""The content grammar and job uuids, on every real content string and message of tests/fixtures."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_midjourney.midjourney import (
    Content,
    is_progress_attachment,
    message_job_uuid,
    normalise_prompt,
    parse_buttons,
    parse_content,
    plain_failure,
)
from tests.conftest import load_fixture

GRID_NAMES = ["U1", "U2", "U3", "U4", "reroll", "V1", "V2", "V3", "V4"]


def _params(path: str, key: str | None = None) -> list[Any]:
    """Parametrize over a fixture file's items."""
    data = load_fixture(*path.split("/"))
    return list(data[key] if key else data)


SAMPLES = _params("captured/bot-message-content-samples.json", "samples")

# The sample's own `kind` says what the message is: the action before the underscore, the phase after.
_KIND_OF_SAMPLE = {
    "imagine": "imagine",
    "blend": "imagine",  # a blend grid has the plain imagine grammar
    "variation": "variation",
    "remix": "remix",
    "upscale": "upscale",
    "zoom": "zoom",
    "pan": "pan",
    "video": "video",
    "stopped": "imagine",
    "paused": "imagine",
}


def _sample_id(sample: Any) -> str:
    return "absent" if sample is None else str(sample["kind"])


@pytest.mark.parametrize("sample", SAMPLES, ids=_sample_id)
def test_every_captured_content_sample_parses_as_expected(sample: dict[str, Any]) -> None:
    content = sample["content"]
    parsed = parse_content(content)
    expected = sample.get("expected") or {}
    kind = sample["kind"]

    if "prompt" in expected:
        assert parsed.prompt == expected["prompt"]
    user = expected.get("user_id") or expected.get("id")
    if user:
        assert parsed.user_id == user
    if "mode" in expected:
        assert parsed.mode == expected["mode"].split(",")[0].strip()  # "fast, stealth" -> fast
    if expected.get("status") == "Waiting to start":
        assert parsed.state == "waiting"
    if expected.get("status") == "done":
        assert parsed.state == "done"
    if "variation_type" in expected:
        assert parsed.detail == expected["variation_type"]
    action = expected.get("action")
    if action:
        assert parsed.kind == action.lower()

    # UrielCh's convention: -1 = waiting/stopped, 0..1 = a progress fraction, 1 = done.
    completion = expected.get("completion")
    if completion == -1:
        assert parsed.state in ("waiting", "stopped")
    elif completion == 1:
        assert (parsed.state, parsed.progress) == ("done", 100)
    elif completion is not None:
        assert parsed.state == "progress"
        assert parsed.progress == round(completion * 100)

    # What the sample's kind implies, so that the samples without an `expected` are checked too.
    action_word, _, phase = kind.partition("_")
    if action_word in _KIND_OF_SAMPLE:
        assert parsed.kind == _KIND_OF_SAMPLE[action_word]
        assert parsed.user_id is not None
        assert parsed.prompt == content.split("**")[1]
    if phase.endswith("final") or phase == "final_legacy":
        assert (parsed.state, parsed.progress) == ("done", 100)
    elif "progress" in phase:
        assert parsed.state == "progress"
        assert parsed.progress is not None and 0 <= parsed.progress < 100
    elif phase.startswith("start"):
        assert parsed.state == "waiting"
    if kind in ("stopped", "paused"):
        assert parsed.state == kind
    if kind == "fragment":
        # Logged with the opening ** cut off: no prompt by the grammar, but the tail still reads.
        assert parsed.prompt is None
        assert parsed.user_id is not None and parsed.state in ("progress", "waiting")
    if kind in ("plain_error", "mode_switch_reply", "seed_dm"):
        assert parsed.user_id is None and parsed.state == "unknown"
    if kind == "plain_error":
        assert plain_failure(content) == content
    else:
        assert plain_failure(content) is None


def test_the_grammar_details() -> None:
    legacy = parse_content("Upscaling image #2 with **a cat** - <@1> (Waiting to start)")
    assert (legacy.kind, legacy.image_index, legacy.prompt, legacy.state) == (
        "upscale",
        2,
        "a cat",
        "waiting",
    )
    legacy = parse_content("Making variations for image #3 with prompt **a cat** - <@1> (12%) (fast)")
    assert (legacy.kind, legacy.image_index, legacy.progress, legacy.mode) == ("variation", 3, 12, "fast")

    upscaled = parse_content("**p --v 6.0** - Upscaled (Subtle) by <@42> (fast)")
    assert (upscaled.kind, upscaled.detail, upscaled.user_id) == ("upscale", "Subtle", "42")
    assert parse_content("**p** - Upscaled (2x) by <@42> (fast)").detail == "2x"
    assert parse_content("**p** - Image #3 <@42>").image_index == 3
    assert parse_content("**p** - image #3 <@42>").image_index == 3
    assert parse_content("**p** - Variations (Region) by <@42> (relaxed)").detail == "Region"
    remix = parse_content("**p** - Remix (Strong) by <@42> (fast)")
    assert (remix.kind, remix.detail) == ("remix", "Strong")
    assert parse_content("**p** - Pan Up by <@42> (turbo)").detail == "Up"
    assert parse_content("**p** - Zoom Out by <@42> (fast)").kind == "zoom"
    assert parse_content("**p** - <@42> (relaxed, stealth)").mode == "relaxed"
    assert parse_content("**p** - <@!42> (fast)").user_id == "42"

    # A prompt that itself contains " - " and "**" still ends at the right place.
    tricky = parse_content("**a - b ** c** - <@7> (50%) (fast)")
    assert (tricky.prompt, tricky.progress) == ("a - b ** c", 50)
    # A "-# subtext" line after the grammar is ignored.
    assert parse_content("**p** - <@7> (fast)\n-# Create, explore ** - x").state == "done"


def test_the_markdown_link_form_carries_the_job_uuid() -> None:
    uuid = "9a5aa072-26f3-4902-a2e2-f76f2db12270"
    parsed = parse_content(
        f"**a bird --raw** - Variations (Strong) by <@1502242966100639815> "
        f"[(Open on website)](<https://midjourney.com/jobs/{uuid}>) (fast)"
    )
    assert parsed == Content(
        prompt="a bird --raw",
        user_id="1502242966100639815",
        kind="variation",
        detail="Strong",
        state="done",
        progress=100,
        mode="fast",
        job_uuid=uuid,
    )
    seed = parse_content("**girl**\n**Job ID**: 6243686B-7ab1-4174-a9fe-527cca66a829\n**seed** 1")
    assert seed.job_uuid == "6243686b-7ab1-4174-a9fe-527cca66a829"
    assert seed.prompt is None


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "**",
        "** - ",
        "**p** - ",
        "**p** - <@>",
        "no markup at all",
        "<@1> (fast)",
        None,
        42,
        b"**x** - <@1>",
    ],
)
def test_content_outside_the_grammar_is_unknown(junk: Any) -> None:
    parsed = parse_content(junk)
    assert parsed.user_id is None and parsed.state == "unknown" and parsed.prompt is None
    assert plain_failure(junk) is None


def test_plain_failures() -> None:
    text = "Failed to process your command :thinking:"
    assert plain_failure("  " + text + "\n") == text
    assert plain_failure("There was an error processing your request. Trace `x`") is not None
    assert plain_failure("**p** - <@1> (fast)") is None


@pytest.mark.parametrize(
    ("sent", "echo"),
    [
        ("a cat", "a cat --v 6.1"),
        ("A  Cat\twith a hat ", "a cat with a hat --v 7"),
        ("https://example.com/x.png a cat", "<https://s.mj.run/Xg2Gq1TXMgc> a cat --v 6.0"),
        ("a cat —ar 2:3", "a cat --ar 2:3 --v 6.0"),
        ("a cat --ar 2:3 --niji 6", "a cat --ar 2:3 --niji 6"),
        ("a cat --version 5.2 --ar 1:1", "a cat --v 5.2 --ar 1:1"),
        ("Coca-Cola. --s 750", "Coca-Cola. --s 750 --niji 5"),
    ],
)
def test_normalise_prompt_equates_what_midjourney_echoes(sent: str, echo: str) -> None:
    assert normalise_prompt(sent) == normalise_prompt(echo)


def test_normalise_prompt_keeps_what_tells_prompts_apart() -> None:
    assert normalise_prompt("a cat --ar 2:3") != normalise_prompt("a cat --ar 3:2")
    assert normalise_prompt("a cat") != normalise_prompt("a dog")
    assert normalise_prompt("a vivid cat") == "a vivid cat"  # "--v" only as a parameter
    assert normalise_prompt(None) == ""  # type: ignore[arg-type]


def test_progress_attachments() -> None:
    assert is_progress_attachment("9a5aa072-26f3-4902-a2e2-f76f2db12270_grid_0.webp")
    assert is_progress_attachment("9a5aa072_grid_0.webp")
    assert not is_progress_attachment("april39_Coca-Cola._715f250c-6ccb-4419-8e16-1b98b4e5e12b.webp")
    assert not is_progress_attachment("user_a_grid_715f250c-6ccb-4419-8e16-1b98b4e5e12b.png")
    assert not is_progress_attachment(None)  # type: ignore[arg-type]


def _custom_id_uuid(message: dict[str, Any]) -> str:
    return str(message["components"][0]["components"][0]["custom_id"]).split("::")[4]


FINAL_GRIDS = _params("captured/rest-channel-messages-final-grids.json")


@pytest.mark.parametrize("message", FINAL_GRIDS, ids=lambda m: "absent" if m is None else m["id"])
def test_every_captured_final_grid(message: dict[str, Any]) -> None:
    uuid = _custom_id_uuid(message)
    assert message_job_uuid(message) == uuid
    assert uuid in message["attachments"][0]["filename"]
    assert [b.name for b in parse_buttons(message["components"])] == GRID_NAMES
    parsed = parse_content(message["content"])
    assert (parsed.state, parsed.kind, parsed.progress, parsed.mode) == ("done", "imagine", 100, "relaxed")
    assert parsed.user_id == message["mentions"][0]["id"]
    assert not is_progress_attachment(message["attachments"][0]["filename"])


def test_gateway_final_grid_and_first_reply() -> None:
    final = load_fixture("captured", "gateway-message-create-imagine-final-grid.json")["d"]
    assert message_job_uuid(final) == "a7cb1552-f779-4094-9afe-2acf22dae280"
    assert [b.name for b in parse_buttons(final["components"])] == GRID_NAMES
    assert parse_content(final["content"]).state == "done"

    first = load_fixture("captured", "gateway-message-create-imagine-waiting-to-start.json")["d"]
    assert message_job_uuid(first) is None  # no attachment, no buttons yet: correlate by nonce
    parsed = parse_content(first["content"])
    assert (parsed.prompt, parsed.state, parsed.progress) == ("glass", "waiting", 0)


def test_2026_progress_and_final_messages() -> None:
    data = load_fixture("reconstructed", "components-v7-and-progress-2026.json")
    frame = data["progress_message"]
    message = {
        "content": frame["content"],
        "attachments": frame["attachments"],
        "components": [
            {
                "type": 1,
                "components": [{"type": 2, "style": 2, "custom_id": c} for c in frame["button_custom_ids"]],
            }
        ],
    }
    # The preview's filename holds only 8 hex digits: the cancel button gives the full uuid.
    assert message_job_uuid(message) == "9a5aa072-26f3-4902-a2e2-f76f2db12270"
    assert is_progress_attachment(frame["attachments"][0]["filename"])
    parsed = parse_content(frame["content"])
    assert (parsed.kind, parsed.detail, parsed.state, parsed.progress) == (
        "variation",
        "Strong",
        "progress",
        35,
    )

    final = data["final_variation_message"]
    parsed = parse_content(final["content"])
    assert parsed.prompt == "a small bird ... cscidnocollide781b1185 --raw"
    assert (parsed.state, parsed.kind, parsed.job_uuid) == (
        "done",
        "variation",
        "9a5aa072-26f3-4902-a2e2-f76f2db12270",
    )
    assert message_job_uuid({"content": final["content"]}) == parsed.job_uuid
    assert message_job_uuid({"attachments": [{"filename": final["attachment_filename"]}]}) == parsed.job_uuid

    animate = parse_content(data["final_animate_message"]["content"])
    assert (animate.kind, animate.state, animate.job_uuid) == (
        "video",
        "done",
        "9bdd338a-3876-4b4b-b175-af661e8a8cab",
    )


def test_message_job_uuid_sources() -> None:
    uuid = "39d7cf9f-c2f0-4adf-a124-0020fb9f867f"
    assert message_job_uuid({"attachments": [{"url": f"https://cdn.discordapp.com/a/1/x_{uuid}.png?ex=1"}]}) == uuid
    assert (
        message_job_uuid({"components": [{"type": 1, "components": [{"custom_id": f"MJ::BOOKMARK::{uuid}"}]}]}) == uuid
    )
    assert message_job_uuid({"embeds": [{"image": {"url": f"https://cdn.midjourney.com/{uuid}/0_0.png"}}]}) == uuid
    assert message_job_uuid({"embeds": [{"description": f"see https://www.midjourney.com/jobs/{uuid}"}]}) == uuid
    # The parent job of a reply is not this message's job.
    assert message_job_uuid({"referenced_message": {"attachments": [{"filename": f"a_{uuid}.png"}]}}) is None
    assert message_job_uuid({"content": "**p** - <@1> (fast)"}) is None
    junks: list[Any] = [None, [], "x", {"attachments": "x", "components": {"a": 1}, "embeds": [None, 1]}]
    for junk in junks:
        assert message_job_uuid(junk) is None
