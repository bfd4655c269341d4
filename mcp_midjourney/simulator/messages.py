"""Discord message objects and the parts they are made of, shaped like the captures.

A `Message` is the simulator's record of one channel message; `payload()` renders it the way Discord
sends it: over REST (no `guild_id`/`member`) or in a gateway dispatch (with them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mcp_midjourney.models import MIDJOURNEY_BOT_ID

from .ids import iso_timestamp, snowflake_ms

JSON = dict[str, Any]

EPHEMERAL = 64
DEFAULT = 0
REPLY = 19

BOT_USER: JSON = {
    "id": MIDJOURNEY_BOT_ID,
    "username": "Midjourney Bot",
    "avatar": "f6ce562a6b4979c4b1cbc5b436d3be76",
    "discriminator": "9282",
    "public_flags": 589824,
    "flags": 589824,
    "bot": True,
    "banner": None,
    "accent_color": None,
    "global_name": None,
    "avatar_decoration_data": None,
    "banner_color": None,
    "clan": None,
    "primary_guild": None,
}


def user_object(user_id: str, username: str) -> JSON:
    """A human user as Discord embeds it in messages (`mentions`, `interaction.user`, `author`)."""
    return {
        "id": user_id,
        "username": username,
        "avatar": None,
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "global_name": username.title(),
        "avatar_decoration_data": None,
        "banner_color": None,
        "clan": None,
        "primary_guild": None,
    }


def member_object(joined_ms: int) -> JSON:
    """The partial guild member Discord attaches to a guild MESSAGE_CREATE/UPDATE."""
    return {
        "roles": [],
        "premium_since": None,
        "pending": False,
        "nick": None,
        "mute": False,
        "joined_at": iso_timestamp(joined_ms),
        "flags": 0,
        "deaf": False,
        "communication_disabled_until": None,
        "banner": None,
        "avatar": None,
    }


def button(custom_id: str, *, label: str | None = None, emoji: JSON | str | None = None, style: int = 2) -> JSON:
    """A button component; `emoji` as a unicode string or a custom emoji object."""
    body: JSON = {"type": 2, "style": style}
    if label is not None:
        body["label"] = label
    if emoji is not None:
        body["emoji"] = {"name": emoji} if isinstance(emoji, str) else emoji
    body["custom_id"] = custom_id
    return body


def row(*components: JSON) -> JSON:
    """An action row."""
    return {"type": 1, "components": list(components)}


def custom_ids(components: list[JSON]) -> list[str]:
    """Every custom_id in a message's component rows."""
    found: list[str] = []
    for action_row in components:
        for component in action_row.get("components", []):
            if "custom_id" in component:
                found.append(component["custom_id"])
    return found


def embed(title: str, description: str, *, color: int, footer: str | None = None, **extra: Any) -> JSON:
    """A rich embed like Midjourney's error and notice embeds."""
    body: JSON = {"type": "rich", "title": title, "description": description}
    if footer is not None:
        body["footer"] = {"text": footer}
    body.update(extra)
    body["content_scan_version"] = 0
    body["color"] = color
    return body


@dataclass
class Message:
    """One message in a channel, kept the way the simulator can edit and render it."""

    id: str
    channel_id: str
    guild_id: str | None
    author: JSON
    content: str = ""
    type: int = DEFAULT
    attachments: list[JSON] = field(default_factory=list)
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    mentions: list[JSON] = field(default_factory=list)
    flags: int = 0
    nonce: str | None = None
    # Legacy `interaction` (slash commands) and `interaction_metadata` (every interaction response).
    interaction: JSON | None = None
    interaction_metadata: JSON | None = None
    reference_id: str | None = None
    # Interaction responses and follow-ups are webhook messages of the application.
    from_interaction: bool = False
    edited_ms: int | None = None
    deleted: bool = False
    # Ephemeral messages exist only for this user: not listed over REST, dispatched only to them.
    visible_to: str | None = None

    @property
    def ephemeral(self) -> bool:
        """True when only `visible_to` can see it."""
        return bool(self.flags & EPHEMERAL)

    def payload(
        self,
        *,
        referenced: JSON | None = None,
        gateway: bool = False,
        member: JSON | None = None,
        created: bool = False,
    ) -> JSON:
        """The message as Discord renders it; `referenced` is the referenced message's own payload.

        The nonce appears only in MESSAGE_CREATE (`created`): Discord does not store it, so neither
        MESSAGE_UPDATE nor REST reads carry it.
        """
        body: JSON = {"type": self.type, "content": self.content, "mentions": copy.deepcopy(self.mentions)}
        body.update(
            mention_roles=[],
            attachments=copy.deepcopy(self.attachments),
            embeds=copy.deepcopy(self.embeds),
            timestamp=iso_timestamp(snowflake_ms(self.id)),
            edited_timestamp=None if self.edited_ms is None else iso_timestamp(self.edited_ms),
            flags=self.flags,
            components=copy.deepcopy(self.components),
            id=self.id,
            channel_id=self.channel_id,
            author=copy.deepcopy(self.author),
            pinned=False,
            mention_everyone=False,
            tts=False,
        )
        if self.from_interaction:
            body["webhook_id"] = MIDJOURNEY_BOT_ID
            body["application_id"] = MIDJOURNEY_BOT_ID
        if created and self.nonce is not None:
            body["nonce"] = self.nonce
        if self.interaction is not None:
            body["interaction"] = copy.deepcopy(self.interaction)
        if self.interaction_metadata is not None:
            body["interaction_metadata"] = copy.deepcopy(self.interaction_metadata)
        if self.reference_id is not None:
            body["message_reference"] = {
                "type": 0,
                "channel_id": self.channel_id,
                "message_id": self.reference_id,
                **({"guild_id": self.guild_id} if self.guild_id else {}),
            }
            body["referenced_message"] = referenced
        elif not self.from_interaction:
            # As captured: a bot's own (non-interaction) message says `referenced_message: null`.
            body["referenced_message"] = None
        if gateway and self.guild_id is not None and not self.ephemeral:
            body["guild_id"] = self.guild_id
            if member is not None:
                body["member"] = member
        return body
