"""Midjourney's slash commands as Discord's application-command index lists them.

The shapes are those of a real index (2024 capture); ids and versions start at the captured values and
can be changed at run time, because Midjourney re-registers its commands without notice and a client
must cope with a stale `data.version` (400, code 50035, INTERACTION_APPLICATION_COMMAND_INVALID_VERSION).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mcp_midjourney.models import MIDJOURNEY_BOT_ID

from .ids import Snowflakes

JSON = dict[str, Any]

_BOT_AVATAR = "f6ce562a6b4979c4b1cbc5b436d3be76"


def _opt(kind: int, name: str, description: str, required: bool, **extra: Any) -> JSON:
    return {"type": kind, "name": name, "description": description, "required": required, **extra}


_PROMPT = _opt(3, "prompt", "The prompt to imagine", True)
_BLEND_CHOICES = [
    {"name": "Portrait", "value": "--ar 2:3"},
    {"name": "Square", "value": "--ar 1:1"},
    {"name": "Landscape", "value": "--ar 3:2"},
]

# name -> (id, version, description, options, global_popularity_rank); ids and versions as captured.
_COMMANDS: list[tuple[str, str, str, str, list[JSON] | None, int]] = [
    ("imagine", "938956540159881230", "1237876415471554623", "Create images with Midjourney", [_PROMPT], 1),
    (
        "describe",
        "1092492867185950852",
        "1237876415471554625",
        "Writes a prompt based on your image.",
        [
            _opt(11, "image", "The image to describe", False),
            _opt(3, "link", "…", False),
        ],
        2,
    ),
    ("info", "972289487818334209", "1237876415735660565", "View information about your profile.", None, 3),
    (
        "blend",
        "1062880104792997970",
        "1237876415471554624",
        "Blend images together seamlessly!",
        [
            _opt(11, "image1", "First image to add to the blend", True),
            _opt(11, "image2", "Second image to add to the blend", True),
            _opt(
                3,
                "dimensions",
                "The dimensions of the image. If not specified, the image will be square.",
                False,
                choices=_BLEND_CHOICES,
            ),
            _opt(11, "image3", "Third image to add to the blend (optional)", False),
            _opt(11, "image4", "Fourth image to add to the blend (optional)", False),
            _opt(11, "image5", "Fifth image to add to the blend (optional)", False),
        ],
        4,
    ),
    (
        "settings",
        "1000850743479255081",
        "1237876415790055475",
        "View and adjust your personal settings.",
        None,
        5,
    ),
    (
        "prefer",
        "984273800587776053",
        "1237876415790055476",
        "…",
        [{"type": 1, "name": "remix", "description": "Toggle remix mode."}],
        7,
    ),
    ("relax", "972289487818334213", "1237876415735660573", "Switch to relax mode", None, 9),
    ("fast", "972289487818334212", "1237876415735660572", "Switch to fast mode", None, 10),
    (
        "shorten",
        "1121575372539039774",
        "1247736572414001223",
        "Analyzes and shortens a prompt.",
        [_opt(3, "prompt", "The prompt to shorten", True)],
        12,
    ),
    ("turbo", "1124132684143271996", "1237876415790055474", "Switch to turbo mode", None, 17),
]


@dataclass
class Command:
    """One registered slash command: what a type-2 interaction must name exactly."""

    name: str
    id: str
    version: str
    description: str
    options: list[JSON] | None
    rank: int

    def payload(self) -> JSON:
        """The command as the index lists it."""
        body: JSON = {
            "id": self.id,
            "type": 1,
            "application_id": MIDJOURNEY_BOT_ID,
            "version": self.version,
            "name": self.name,
            "description": self.description,
        }
        if self.options is not None:
            body["options"] = copy.deepcopy(self.options)
        body.update(dm_permission=True, contexts=[0, 1, 2], integration_types=[0, 1])
        body["global_popularity_rank"] = self.rank
        return body


@dataclass
class CommandIndex:
    """The current command registry of the Midjourney application."""

    snowflakes: Snowflakes
    commands: dict[str, Command] = field(default_factory=dict)
    index_version: str = "1267632560465248388"

    def __post_init__(self) -> None:
        if not self.commands:
            for name, cid, version, description, options, rank in _COMMANDS:
                self.commands[name] = Command(name, cid, version, description, options, rank)

    def find(self, command_id: str) -> Command | None:
        """The command with this id, if it is registered now."""
        return next((c for c in self.commands.values() if c.id == command_id), None)

    def by_name(self, name: str) -> Command | None:
        """The command with this name, if it is registered."""
        return self.commands.get(name)

    def bump(self, names: list[str] | None = None, *, new_ids: bool = False) -> dict[str, tuple[str, str]]:
        """Re-register commands: new versions (and new ids when asked). Returns name -> (id, version)."""
        for name in names or list(self.commands):
            command = self.commands[name]
            command.version = self.snowflakes.next()
            if new_ids:
                command.id = self.snowflakes.next()
        self.index_version = self.snowflakes.next()
        return {c.name: (c.id, c.version) for c in self.commands.values()}

    def payload(self) -> JSON:
        """The body of `GET …/application-command-index`."""
        return {
            "applications": [
                {
                    "id": MIDJOURNEY_BOT_ID,
                    "name": "Midjourney Bot",
                    "description": "Generate an image based on a text prompt in under 60 seconds using the "
                    f"</imagine:{self.commands['imagine'].id}> command!\n\n"
                    "https://docs.midjourney.com/docs/terms-of-service",
                    "icon": _BOT_AVATAR,
                    "bot": {
                        "id": MIDJOURNEY_BOT_ID,
                        "username": "Midjourney Bot",
                        "discriminator": "9282",
                        "bot": True,
                        "public_flags": 589824,
                        "flags": 589824,
                        "global_name": None,
                        "avatar": _BOT_AVATAR,
                        "accent_color": None,
                        "avatar_decoration_data": None,
                        "banner": None,
                        "banner_color": None,
                    },
                    "bot_id": MIDJOURNEY_BOT_ID,
                    "flags": "94371840",
                }
            ],
            "application_commands": [c.payload() for c in sorted(self.commands.values(), key=lambda c: int(c.id))],
            "version": self.index_version,
        }
