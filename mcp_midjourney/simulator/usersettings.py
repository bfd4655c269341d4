"""A user account's settings as READY carries them: a `PreloadedUserSettings` protobuf, or the legacy JSON.

Discord sends `user_settings_proto` (base64 of the protobuf) to every user client, and the older
`user_settings` JSON object as well to a client whose IDENTIFY `capabilities` lack bit 9
(USER_SETTINGS_PROTO). The protobuf is written here by hand, field by field (varints and length-delimited
fields), from the message's public schema: the simulator depends on no protobuf library.
"""

from __future__ import annotations

import base64
from typing import Any

from .state import Account

JSON = dict[str, Any]

USER_SETTINGS_PROTO = 1 << 9  # the IDENTIFY capability bit: "no legacy user_settings, the protobuf only"

# Field numbers of PreloadedUserSettings and of the messages inside it.
_VERSIONS, _STATUS, _LOCALIZATION, _APPEARANCE = 1, 11, 12, 13
_VARINT, _LENGTH_DELIMITED = 0, 2
_CLIENT_VERSION = 17  # the settings schema version the web client last wrote (migrations key on it)
_DATA_VERSION = 1  # bumped by Discord on every change; Discord leaves server_version at 0 (unset)
_DARK_THEME = 1


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer, least significant group first."""
    out = bytearray()
    while True:
        group, value = value & 0x7F, value >> 7
        if value:
            out.append(group | 0x80)
        else:
            out.append(group)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def uint_field(field: int, value: int) -> bytes:
    """A varint field (uint32, enum, bool); proto3 leaves zero out."""
    return _key(field, _VARINT) + _varint(value) if value else b""


def bytes_field(field: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes, or an embedded message."""
    return _key(field, _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _string_value(text: str) -> bytes:
    """google.protobuf.StringValue { string value = 1; }"""
    return bytes_field(1, text.encode())


def settings_proto_bytes(account: Account) -> bytes:
    """PreloadedUserSettings: versions, status online, locale en-US, dark theme."""
    versions = uint_field(1, _CLIENT_VERSION) + uint_field(3, _DATA_VERSION)
    status = bytes_field(1, _string_value("online"))
    localization = bytes_field(1, _string_value("en-US"))
    appearance = uint_field(1, _DARK_THEME)
    return (
        bytes_field(_VERSIONS, versions)
        + bytes_field(_STATUS, status)
        + bytes_field(_LOCALIZATION, localization)
        + bytes_field(_APPEARANCE, appearance)
    )


def settings_proto(account: Account) -> str:
    """READY's `user_settings_proto`: the protobuf, base64 encoded."""
    return base64.b64encode(settings_proto_bytes(account)).decode()


def legacy_settings(account: Account, guild_ids: list[str]) -> JSON:
    """READY's legacy `user_settings` object, for clients that did not claim the protobuf capability."""
    return {
        "locale": "en-US",
        "theme": "dark",
        "status": "online",
        "custom_status": None,
        "show_current_game": True,
        "developer_mode": False,
        "message_display_compact": False,
        "inline_attachment_media": True,
        "inline_embed_media": True,
        "gif_auto_play": True,
        "render_embeds": True,
        "render_reactions": True,
        "animate_emoji": True,
        "animate_stickers": 0,
        "enable_tts_command": True,
        "convert_emoticons": True,
        "explicit_content_filter": 1,
        "disable_games_tab": False,
        "detect_platform_accounts": True,
        "stream_notifications_enabled": True,
        "friend_source_flags": {"all": True},
        "friend_discovery_flags": 0,
        "guild_positions": guild_ids,
        "guild_folders": [{"guild_ids": [gid], "id": None, "name": None, "color": None} for gid in guild_ids],
        "restricted_guilds": [],
        "default_guilds_restricted": False,
        "view_nsfw_guilds": True,
        "afk_timeout": 600,
        "timezone_offset": 0,
        "contact_sync_upsell_shown": False,
        "native_phone_integration_enabled": True,
        "passwordless": False,
    }
