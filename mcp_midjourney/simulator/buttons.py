"""The buttons Midjourney puts under its messages, and what a pressed custom_id means.

Custom ids follow `MJ::<namespace>::<action>::<index>::<uuid>[::SOLO]` (protocol.md §5). Labels and emoji are
those of a real v6 upscale; the v7 set (2026) swaps the upscale ids and adds Animate, and has no Vary
(Region) or Custom Zoom, which older models keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .messages import button, row

JSON = dict[str, Any]

_UPSCALE_EMOJI: JSON = {"name": "upscale_1", "id": "940147353879478324"}
_PAN = (("left", "⬅️"), ("right", "➡️"), ("up", "⬆️"), ("down", "⬇️"))
PICREADER_EMOJI = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")


def grid_rows(uuid: str, used: frozenset[int] = frozenset()) -> list[JSON]:
    """U1-U4 + 🔄 and V1-V4 under a 2x2 grid; a U already pressed turns blue (style 1)."""
    upscales = [
        button(f"MJ::JOB::upsample::{i}::{uuid}", label=f"U{i}", style=1 if i in used else 2) for i in range(1, 5)
    ]
    reroll = button(f"MJ::JOB::reroll::0::{uuid}::SOLO", emoji="🔄")
    variations = [button(f"MJ::JOB::variation::{i}::{uuid}", label=f"V{i}") for i in range(1, 5)]
    return [row(*upscales, reroll), row(*variations)]


def _upscale_buttons(uuid: str, family: str) -> list[JSON]:
    if family == "v5":
        return [
            button(f"MJ::JOB::upsample_v5_2x::1::{uuid}::SOLO", label="Upscale (2x)", emoji=_UPSCALE_EMOJI),
            button(f"MJ::JOB::upsample_v5_4x::1::{uuid}::SOLO", label="Upscale (4x)", emoji=_UPSCALE_EMOJI),
        ]
    return [
        button(
            f"MJ::JOB::upsample_{family}_2x_subtle::1::{uuid}::SOLO",
            label="Upscale (Subtle)",
            emoji=_UPSCALE_EMOJI,
        ),
        button(
            f"MJ::JOB::upsample_{family}_2x_creative::1::{uuid}::SOLO",
            label="Upscale (Creative)",
            emoji=_UPSCALE_EMOJI,
        ),
    ]


def single_rows(
    uuid: str, family: str, *, upscaled: bool = False, extra: tuple[tuple[str, str], ...] = ()
) -> list[JSON]:
    """The buttons under one image (a U result), for the model family that made it."""
    vary = [
        button(f"MJ::JOB::low_variation::1::{uuid}::SOLO", label="Vary (Subtle)", emoji="🪄"),
        button(f"MJ::JOB::high_variation::1::{uuid}::SOLO", label="Vary (Strong)", emoji="🪄"),
    ]
    if family not in ("v7", "v8"):
        vary.append(button(f"MJ::Inpaint::1::{uuid}::SOLO", label="Vary (Region)", emoji="🖌️"))
    if family == "v8":
        # v8 (2026): no Upscale, Zoom or Pan under a picked image (they moved to the web editor).
        return [row(*vary), row(*_animate_buttons(uuid), button(f"MJ::BOOKMARK::{uuid}", emoji="❤️"))]
    first = vary if upscaled else _upscale_buttons(uuid, family) + vary
    zoom = [
        button(f"MJ::Outpaint::50::1::{uuid}::SOLO", label="Zoom Out 2x", emoji="🔍"),
        button(f"MJ::Outpaint::75::1::{uuid}::SOLO", label="Zoom Out 1.5x", emoji="🔍"),
    ]
    if family != "v7":
        zoom.append(button(f"MJ::CustomZoom::{uuid}", label="Custom Zoom", emoji="🔍"))
    pans = [button(f"MJ::JOB::pan_{direction}::1::{uuid}::SOLO", emoji=emoji) for direction, emoji in _PAN]
    rows = [row(*first), row(*zoom), row(*pans)]
    last = [button(f"MJ::BOOKMARK::{uuid}", emoji="❤️")]
    if family == "v7" and not upscaled:
        last = [*_animate_buttons(uuid), *last]
    rows.append(row(*last))
    if extra:
        rows.append(row(*(button(f"MJ::JOB::{action}::1::{uuid}::SOLO", label=label) for action, label in extra)))
    return rows


def _animate_buttons(uuid: str) -> list[JSON]:
    return [
        button(f"MJ::JOB::animate_high::1::{uuid}::SOLO", label="Animate (High motion)", emoji="🎞️"),
        button(f"MJ::JOB::animate_low::1::{uuid}::SOLO", label="Animate (Low motion)", emoji="🎞️"),
    ]


def video_rows(uuid: str, videos: int = 4, used: frozenset[int] = frozenset()) -> list[JSON]:
    """Under a video grid (Animate, Extend, an --video prompt): one pick per video (a used one turns blue), 🔄."""
    picks = [
        button(f"MJ::JOB::video_virtual_upscale::{i}::{uuid}", label=f"U{i}", style=1 if i in used else 2)
        for i in range(1, videos + 1)
    ]
    return [row(*picks, button(f"MJ::JOB::reroll::0::{uuid}::SOLO", emoji="🔄"))]


def clip_rows(uuid: str) -> list[JSON]:
    """Under one picked video: Extend (High / Low motion) and ❤️ (protocol.md §7)."""
    return [
        row(
            button(f"MJ::JOB::animate_high_extend::1::{uuid}", label="Extend (High motion)", emoji="🎞️"),
            button(f"MJ::JOB::animate_low_extend::1::{uuid}", label="Extend (Low motion)", emoji="🎞️"),
            button(f"MJ::BOOKMARK::{uuid}", emoji="❤️"),
        )
    ]


def moderation_rows(token: str) -> list[JSON]:
    """Under "Pending mod message" (2026): Acknowledge (the appeal id of protocol.md §5) and Resubmit (no capture
    shows its id: ours is a guess in the same namespace)."""
    return [
        row(
            button(f"MJ::Prompts::Appeal::{token}", label="Acknowledge", style=3),
            button(f"MJ::Prompts::Resubmit::{token}", label="Resubmit"),
        )
    ]


def cancel_rows(uuid: str) -> list[JSON]:
    """The only button of a progress message (2026)."""
    return [row(button(f"MJ::CancelJob::ByJobid::{uuid}", label="Cancel Job", style=4))]


def describe_rows() -> list[JSON]:
    """Under a /describe result: imagine one of the four prompts, all of them, or describe again."""
    picks = [button(f"MJ::Job::PicReader::{i}", emoji=emoji) for i, emoji in enumerate(PICREADER_EMOJI, 1)]
    return [
        row(*picks, button("MJ::Picread::Retry", emoji="🔄")),
        row(button("MJ::Job::PicReader::all", label="Imagine all", emoji="🎉")),
    ]


SETTINGS_BUTTONS = (
    ("RemixMode", "Remix mode", "🎛️"),
    ("HighVariabilityMode", "High Variation Mode", "🖌️"),
    ("TurboMode", "Turbo mode", "🚀"),
    ("FastMode", "Fast mode", "🐇"),
    ("RelaxMode", "Relax mode", "🐢"),
)


def settings_rows(mode: str, remix: bool) -> list[JSON]:
    """The /settings panel: active choices are green (style 3)."""
    active = {
        "RemixMode": remix,
        "HighVariabilityMode": True,
        "TurboMode": mode == "turbo",
        "FastMode": mode == "fast",
        "RelaxMode": mode == "relax",
    }
    buttons = [
        button(f"MJ::Settings::{name}", label=label, emoji=emoji, style=3 if active[name] else 2)
        for name, label, emoji in SETTINGS_BUTTONS
    ]
    return [
        row(*buttons[:2]),
        row(*buttons[2:], button("MJ::Settings::ResetSettings", label="Reset Settings")),
    ]


@dataclass(frozen=True)
class Press:
    """A custom_id taken apart: the action, the image index and the job uuid (when it names one)."""

    action: str
    index: int = 0
    uuid: str = ""
    extra: str = ""


_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^MJ::JOB::(?P<action>[a-z0-9_]+)::(?P<index>\d+)::(?P<uuid>[0-9a-f-]{36})(?:::SOLO)?$"),
        "job",
    ),
    (
        re.compile(r"^MJ::Outpaint::(?P<extra>\d+)::(?P<index>\d+)::(?P<uuid>[0-9a-f-]{36})::SOLO$"),
        "outpaint",
    ),
    (re.compile(r"^MJ::CustomZoom::(?P<uuid>[0-9a-f-]{36})$"), "custom_zoom"),
    (re.compile(r"^MJ::Inpaint::(?P<index>\d+)::(?P<uuid>[0-9a-f-]{36})::SOLO$"), "inpaint"),
    (re.compile(r"^MJ::BOOKMARK::(?P<uuid>[0-9a-f-]{36})$"), "bookmark"),
    (re.compile(r"^MJ::CancelJob::ByJobid::(?P<uuid>[0-9a-f-]{36})$"), "cancel"),
    (re.compile(r"^MJ::Job::PicReader::(?P<extra>[1-4]|all)$"), "picreader"),
    (re.compile(r"^MJ::Picread::Retry$"), "picread_retry"),
    (re.compile(r"^MJ::Settings::(?P<extra>[A-Za-z]+)$"), "settings"),
    (re.compile(r"^MJ::Prompts::Appeal::(?P<extra>[0-9A-Za-z_-]+)$"), "acknowledge"),
    (re.compile(r"^MJ::Prompts::Resubmit::(?P<extra>[0-9A-Za-z_-]+)$"), "resubmit"),
]


def parse(custom_id: str) -> Press | None:
    """What a custom_id asks for, or None when the simulated bot does not know it."""
    for pattern, kind in _PATTERNS:
        match = pattern.match(custom_id)
        if match:
            groups = match.groupdict()
            action = groups.get("action") or kind
            return Press(action, int(groups.get("index") or 0), groups.get("uuid") or "", groups.get("extra") or "")
    return None
