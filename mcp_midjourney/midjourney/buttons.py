"""Midjourney's buttons: components to `Button`s, and the custom_id grammar (protocol.md §5).

    MJ::<namespace>::<action>::<index>::<uuid>[::SOLO]

Names are derived from that grammar, not looked up in a table of every id Midjourney ever used, so a
button Midjourney adds tomorrow still gets a stable, readable name ("MJ::JOB::make_square::1::…" ->
"make_square"). Uuids, indices (other than U1..U4 / V1..V4 style names) and SOLO never appear in a name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from mcp_midjourney.midjourney._common import is_int, iter_components, last_uuid
from mcp_midjourney.models import Button

__all__ = ["ButtonAction", "button_action", "button_name", "button_used", "find_button", "parse_buttons", "press_cost"]


@dataclass(frozen=True, slots=True)
class ButtonAction:
    """What pressing a button makes, read from its custom_id alone."""

    kind: str  # upscale | variation | reroll | zoom | custom_zoom | pan | animate | extend | bookmark | cancel |
    #            appeal | describe_pick | describe_retry | unknown
    detail: str | None = None  # Subtle, Strong, Region, Creative, 2x, 4x, 1.5x, Square, Left, High, ...
    index: int | None = None  # 1-based image index (U/V), the Outpaint factor code (50/75/100), ...
    job_uuid: str | None = None  # the job the button belongs to
    opens_modal: bool = False  # always opens a modal (Custom Zoom, Vary Region); Remix is a runtime matter


_PRESSABLE_TYPES = (2, 3)  # button, string select
_STYLE_USED = 1  # Midjourney turns a U button "primary" (blue) once it was pressed
# Presses that start no Midjourney job: an acknowledgement, a moderation appeal, a second /describe.
_FREE_KINDS = frozenset({"bookmark", "cancel", "appeal", "describe_retry"})
_VIDEO_KINDS = frozenset({"animate", "extend"})
_UPSCALE_VERSION_RE = re.compile(r"^v\d+(?:r\d+)?_")  # upsample_v6_…, upsample_v6r1_…, upsample_v7_…
_UPSCALES = {
    "2x_subtle": ("upscale_subtle", "Subtle"),
    "2x_creative": ("upscale_creative", "Creative"),
    "2x": ("upscale_2x", "2x"),
    "4x": ("upscale_4x", "4x"),
}
_OUTPAINTS = {50: ("zoom_out_2x", "2x"), 75: ("zoom_out_1_5x", "1.5x"), 100: ("make_square", "Square")}
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD_RE = re.compile(r"[\W_]+")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z_]*")
_VARIATION_SELECTOR = "\ufe0f"

# What people (and models) type for a button, keyed by slug, to the short name.
_ALIASES = {
    "re_roll": "reroll",
    "redo": "reroll",
    "rerun": "reroll",
    "cancel_job": "cancel",
    "stop": "cancel",
    "heart": "bookmark",
    "favorite": "bookmark",
    "favourite": "bookmark",
    "like": "bookmark",
    "subtle_upscale": "upscale_subtle",
    "creative_upscale": "upscale_creative",
    "vary_low": "vary_subtle",
    "vary_high": "vary_strong",
    "subtle_variation": "vary_subtle",
    "strong_variation": "vary_strong",
    "low_variation": "vary_subtle",
    "high_variation": "vary_strong",
    "region": "vary_region",
    "inpaint": "vary_region",
    "zoom_out": "zoom_out_2x",
    "zoom_2x": "zoom_out_2x",
    "zoom_1_5x": "zoom_out_1_5x",
    "square": "make_square",
    "left": "pan_left",
    "right": "pan_right",
    "up": "pan_up",
    "down": "pan_down",
    "describe_all": "imagine_all",
    "animate": "animate_high",
    "extend": "animate_high_extend",
    "extend_high": "animate_high_extend",
    "extend_low": "animate_low_extend",
    "acknowledge": "appeal",
}
# Words that mean different buttons on different messages (a grid's reroll, a /describe's retry).
_MULTI_ALIASES = {"retry": ("reroll", "describe_retry")}
_U_ALIAS_RE = re.compile(r"(?:u|upscale|upsample)_?([1-9])")
_V_ALIAS_RE = re.compile(r"(?:v|var|variation|vary)_?([1-9])")


def parse_buttons(components: list[Any]) -> list[Button]:
    """Every pressable component of a message, in display order, with unique short names.

    Buttons (type 2) and select menus (type 3) that carry a custom_id are kept; link buttons (style 5,
    no custom_id) and anything malformed are skipped. The label is Discord's label, else the emoji.
    """
    buttons: list[Button] = []
    taken: set[str] = set()
    for component in iter_components(components):
        component_type = component.get("type")
        custom_id = component.get("custom_id")
        if component_type not in _PRESSABLE_TYPES or not is_int(component_type):
            continue
        if not isinstance(custom_id, str) or not custom_id:
            continue
        label = _text(component.get("label")) or _text(component.get("placeholder"))
        emoji_field = component.get("emoji")
        emoji = _text(emoji_field.get("name")) if isinstance(emoji_field, dict) else None
        name = _unique(button_name(custom_id, label, emoji), taken)
        style = component.get("style")
        buttons.append(
            Button(
                custom_id=custom_id,
                label=label or emoji or name,
                name=name,
                emoji=emoji,
                style=style if is_int(style) else None,
                disabled=component.get("disabled") is True,
                component_type=int(component_type),
            )
        )
    return buttons


def button_name(custom_id: str, label: str | None = None, emoji: str | None = None) -> str:
    """The stable short name of a button: "U2", "reroll", "vary_strong", "zoom_out_2x", "make_square"…

    Derived from the custom_id grammar; a custom_id outside it falls back to a slug of the label (then
    of the emoji), and finally to "button".
    """
    name = _derive(custom_id)[0] if isinstance(custom_id, str) else None
    if name:
        return name
    for fallback in (label, emoji):
        slug = _slug(fallback) if isinstance(fallback, str) else ""
        if slug:
            return slug
    return "button"


def button_action(custom_id: str) -> ButtonAction:
    """What pressing the button with this custom_id makes (kind "unknown" when the id is not Midjourney's)."""
    if not isinstance(custom_id, str):
        return ButtonAction(kind="unknown")
    return _derive(custom_id)[1]


def press_cost(action: ButtonAction, *, on_video: bool = False) -> Literal["job", "upscale", "video"] | None:
    """What a press costs in Midjourney's terms: an upscale (any U button, Upscale (Subtle), 2x, a video's pick),
    a video job (Animate, Extend, and a reroll under a video: about eight image jobs of GPU time, protocol.md §7),
    another job (variations, rerolls, zooms, pans, a describe pick's imagine), or nothing (bookmark, cancel, appeal).
    `on_video`: the pressed message is a video result."""
    if action.kind in _FREE_KINDS:
        return None
    if action.kind == "upscale":
        return "upscale"
    if action.kind in _VIDEO_KINDS or (on_video and action.kind == "reroll"):
        return "video"
    return "job"


def button_used(button: Button) -> bool:
    """Whether Discord shows the button as already pressed (Midjourney answers a second press with nothing)."""
    return button.style == _STYLE_USED


def find_button(buttons: list[Button], wanted: str) -> Button | None:
    """The button the user means by `wanted`, or None.

    Tried in order, each over all buttons in display order (so ambiguity picks the first shown): the
    exact custom_id, the short name, the label, the emoji, then the slug of `wanted` against names,
    aliases ("re-roll", "upscale 2", "heart", "left"…) and label slugs. Case and U+FE0F do not matter.
    """
    if not isinstance(wanted, str) or not isinstance(buttons, list):
        return None
    raw = wanted.strip()
    if not raw:
        return None
    candidates = [b for b in buttons if isinstance(b, Button)]
    for button in candidates:
        if button.custom_id == raw:
            return button

    key = _fold(raw)
    found = (
        _first(candidates, lambda b: b.name.casefold() == key)
        or _first(candidates, lambda b: _fold(b.label) == key)
        or _first(candidates, lambda b: b.emoji is not None and _fold(b.emoji) == key)
    )
    if found is not None:
        return found

    slug = _slug(raw)
    if not slug:
        return None
    names = (slug, *_aliases(slug))
    return _first(candidates, lambda b: b.name.casefold() in names) or _first(
        candidates, lambda b: _slug(b.label) == slug
    )


@lru_cache(maxsize=4096)
def _derive(custom_id: str) -> tuple[str | None, ButtonAction]:
    """(short name or None, action) of a custom_id. Cached: the same ids come back on every update."""
    parts = custom_id.split("::")
    uuid = last_uuid(custom_id)
    if len(parts) < 2 or parts[0] != "MJ":
        return None, ButtonAction(kind="unknown", job_uuid=uuid)
    namespace = parts[1].casefold()
    arg = parts[2] if len(parts) > 2 else ""

    if namespace == "job":
        if arg.casefold() == "picreader":  # MJ::Job::PicReader::1..4 | ::all under a /describe result
            pick = parts[3] if len(parts) > 3 else ""
            if pick.casefold() == "all":
                return "imagine_all", ButtonAction(kind="describe_pick", detail="all")
            number = _int(pick)
            if number is not None:
                return f"describe_{number}", ButtonAction(kind="describe_pick", index=number)
            return "describe_pick", ButtonAction(kind="describe_pick")
        return _job_action(arg, _int(parts[3]) if len(parts) > 3 else None, uuid)
    if namespace == "inpaint":
        return "vary_region", ButtonAction("variation", "Region", _int(arg), uuid, opens_modal=True)
    if namespace == "outpaint":
        code = _int(arg)
        if code in _OUTPAINTS:
            name, detail = _OUTPAINTS[code]
            return name, ButtonAction("zoom", detail, code, uuid)
        name = f"zoom_out_{code}" if code is not None else "zoom_out"
        return name, ButtonAction("zoom", None, code, uuid)
    if namespace == "customzoom":
        return "custom_zoom", ButtonAction("custom_zoom", None, None, uuid, opens_modal=True)
    if namespace == "bookmark":
        return "bookmark", ButtonAction("bookmark", job_uuid=uuid)
    if namespace == "canceljob":
        return "cancel", ButtonAction("cancel", job_uuid=uuid)
    if namespace == "prompts" and arg.casefold() == "appeal":
        return "appeal", ButtonAction("appeal")
    if namespace == "picread" and arg.casefold() == "retry":
        return "describe_retry", ButtonAction("describe_retry")

    # A namespace never seen: name it after its leading words. Only the namespace and the part after it
    # are considered, because later parts are ids and tokens (MJ::Prompts::Appeal::<token>).
    words: list[str] = []
    for part in parts[1:3]:
        if not _WORD_RE.fullmatch(part) or part == "SOLO":
            break
        words.append(_snake(part))
    if len(words) > 1 and words[0] == "prompts":
        words = words[1:]
    generic = "_".join(w for w in words if w) or None
    return generic, ButtonAction(kind="unknown", detail=generic, job_uuid=uuid)


def _job_action(action: str, index: int | None, uuid: str | None) -> tuple[str | None, ButtonAction]:
    """Name and action of an MJ::JOB::<action>::<index>::<uuid>[::SOLO] button."""
    lowered = action.casefold()
    if lowered == "upsample":
        return (f"U{index}" if index else "upscale"), ButtonAction("upscale", None, index, uuid)
    if lowered == "variation":
        return (f"V{index}" if index else "variation"), ButtonAction("variation", None, index, uuid)
    if lowered == "reroll":
        return "reroll", ButtonAction("reroll", None, None, uuid)
    if lowered.startswith("upsample_"):
        rest = _UPSCALE_VERSION_RE.sub("", lowered[len("upsample_") :])
        if rest in _UPSCALES:
            name, detail = _UPSCALES[rest]
            return name, ButtonAction("upscale", detail, index, uuid)
        slug = _snake(rest)  # upsample_light, upsample_beta (v4/v5 era), and whatever comes next
        return (f"upscale_{slug}" if slug else "upscale"), ButtonAction("upscale", slug or None, index, uuid)
    if lowered == "low_variation":
        return "vary_subtle", ButtonAction("variation", "Subtle", index, uuid)
    if lowered == "high_variation":
        return "vary_strong", ButtonAction("variation", "Strong", index, uuid)
    if lowered.startswith("pan_"):
        return _snake(lowered), ButtonAction("pan", lowered[4:].capitalize() or None, index, uuid)
    if lowered.startswith("animate"):
        # animate_high / animate_low on an image; animate_high_extend / animate_low_extend on a picked video.
        motion = "High" if "high" in lowered else "Low" if "low" in lowered else None
        kind = "extend" if lowered.endswith("_extend") else "animate"
        return _snake(lowered), ButtonAction(kind, motion, index, uuid)
    if lowered == "video_virtual_upscale":
        # Up to four on one video grid, told apart only by the index: the index is its identity here.
        name = f"video_upscale_{index}" if index else "video_upscale"
        return name, ButtonAction("upscale", "video", index, uuid)
    if lowered in ("make_square", "makesquare"):
        return "make_square", ButtonAction("zoom", "Square", index, uuid)
    generic = _snake(action) or None
    return generic, ButtonAction("unknown", generic, index, uuid)


def _int(text: str) -> int | None:
    # isascii: str.isdigit() is also true for "²", which int() rejects.
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def _snake(text: str) -> str:
    return _NON_WORD_RE.sub("_", _CAMEL_RE.sub("_", text)).strip("_").casefold()


def _slug(text: str) -> str:
    return _NON_WORD_RE.sub("_", text.replace(_VARIATION_SELECTOR, "").casefold()).strip("_")


def _fold(text: str) -> str:
    return " ".join(text.replace(_VARIATION_SELECTOR, "").casefold().split())


def _aliases(slug: str) -> tuple[str, ...]:
    """The short names (casefolded) that `slug` may stand for."""
    if slug in _ALIASES:
        return (_ALIASES[slug],)
    if slug in _MULTI_ALIASES:
        return _MULTI_ALIASES[slug]
    match = _U_ALIAS_RE.fullmatch(slug)
    if match:  # U2 on a video grid is its second pick (video_virtual_upscale), whatever its label says
        return (f"u{match.group(1)}", f"video_upscale_{match.group(1)}")
    match = _V_ALIAS_RE.fullmatch(slug)
    if match:
        return (f"v{match.group(1)}",)
    return ()


def _first(buttons: Iterable[Button], test: Callable[[Button], bool]) -> Button | None:
    for button in buttons:
        if test(button):
            return button
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`… when an earlier button of the message already has it."""
    key = name.casefold()
    candidate, number = name, 1
    while key in taken:
        number += 1
        candidate = f"{name}_{number}"
        key = candidate.casefold()
    taken.add(key)
    return candidate
