"""Hypothesis: whatever JSON-like value arrives, the Midjourney parsers answer and never raise."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_midjourney.midjourney import (
    Content,
    button_action,
    button_name,
    classify_embeds,
    find_button,
    is_progress_attachment,
    message_job_uuid,
    normalise_prompt,
    parse_buttons,
    parse_content,
    plain_failure,
)
from mcp_midjourney.midjourney.embeds import EmbedVerdict
from tests.conftest import FIXTURES

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like Midjourney's: its markup, ids and words, so the fuzzer reaches the deep branches.
_PIECES = st.sampled_from(
    [
        "**",
        " - ",
        "<@",
        ">",
        "<@123>",
        "(",
        ")",
        "%",
        "(fast)",
        "(Waiting to start)",
        "Image #",
        "by ",
        "Variations (Strong) ",
        "Upscaled ",
        "Pan Left ",
        "Zoom Out ",
        "[",
        "](",
        "<https://midjourney.com/jobs/",
        "9a5aa072-26f3-4902-a2e2-f76f2db12270",
        "MJ::",
        "JOB::",
        "upsample::",
        "::SOLO",
        "\n",
        "--v 6",
        "—",
        "\ufe0f",
    ]
)
mj_text = st.one_of(st.text(max_size=40), st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=12).map("".join))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), mj_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(mj_text, inner, max_size=5)),
    max_leaves=30,
)
_KEYS = [
    "type",
    "custom_id",
    "label",
    "emoji",
    "name",
    "components",
    "accessory",
    "style",
    "disabled",
    "attachments",
    "filename",
    "url",
    "content",
    "embeds",
    "title",
    "description",
    "color",
    "footer",
    "text",
    "image",
    "thumbnail",
    "placeholder",
]
# Dicts with the keys Discord uses, so the values land where the parsers look.
discord_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.sampled_from(_KEYS), inner, max_size=6),
    ),
    max_leaves=40,
)


@cache
def _real_messages() -> list[Any]:
    grids = json.loads((FIXTURES / "captured/rest-channel-messages-final-grids.json").read_text(encoding="utf-8"))
    upscaled = json.loads((FIXTURES / "reconstructed/components-v6-upscaled-image.json").read_text(encoding="utf-8"))
    embed = json.loads((FIXTURES / "reconstructed/embed-queue-full.json").read_text(encoding="utf-8"))["embed"]
    return [grids[0], grids[4], {"components": upscaled["components"], "embeds": [embed]}]


@cache
def _real_paths() -> list[list[tuple[Any, ...]]]:
    return [_paths(message) for message in _real_messages()]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*prefix, i))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    if isinstance(value, list):
        return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]
    return value  # an earlier mutation already replaced this subtree


@st.composite
def mutated_messages(draw: st.DrawFn) -> Any:
    """A real message with a few of its values (anywhere, at any depth) swapped for arbitrary ones."""
    index = draw(st.integers(0, len(_real_messages()) - 1))
    message, paths = _real_messages()[index], _real_paths()[index]
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        message = _replace(message, path, draw(json_values))
    return message


def _everything(message: Any) -> None:
    # Any, on purpose: the point is to hand the parsers values of the wrong type.
    components: Any = message.get("components") if isinstance(message, dict) else message
    embeds: Any = message.get("embeds") if isinstance(message, dict) else message
    content: Any = message.get("content") if isinstance(message, dict) else message
    buttons = parse_buttons(components)
    assert isinstance(buttons, list)
    for button in buttons:
        assert button.name and button.label
        assert isinstance(button_action(button.custom_id).kind, str)
    assert len({b.name.casefold() for b in buttons}) == len(buttons)
    uuid = message_job_uuid(message)
    assert uuid is None or len(uuid) == 36
    verdict = classify_embeds(embeds)
    assert verdict is None or isinstance(verdict, EmbedVerdict)
    parsed = parse_content(content)
    assert isinstance(parsed, Content)
    assert parsed.progress is None or 0 <= parsed.progress <= 100
    plain_failure(content)
    normalise_prompt(content)
    is_progress_attachment(content)
    find_button(buttons, content)


@FUZZ
@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    _everything(value)
    _everything({"components": value, "attachments": value, "embeds": value, "content": value})


@FUZZ
@given(discord_like)
def test_discord_shaped_json_never_raises(value: Any) -> None:
    _everything(value)
    _everything({"components": [value], "attachments": [value], "embeds": [value], "content": value})


@FUZZ
@given(mutated_messages())
def test_mutated_real_messages_never_raise(message: Any) -> None:
    _everything(message)


@FUZZ
@given(mj_text, st.one_of(st.none(), mj_text), st.one_of(st.none(), mj_text))
def test_strings_never_raise(text: str, label: str | None, emoji: str | None) -> None:
    parsed = parse_content(text)
    assert parsed.state in ("waiting", "progress", "paused", "stopped", "done", "unknown")
    assert button_name(text, label, emoji)
    assert button_action(text).kind
    assert normalise_prompt(text) == normalise_prompt(normalise_prompt(text))
