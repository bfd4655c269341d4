"""The READY and READY_SUPPLEMENTAL payloads a user account receives after IDENTIFY.

A real user READY carries every guild with its channels and roles, settings, experiments...: hundreds of
kilobytes is common. Ours is padded (with a big, believable guild) to `ready_min_bytes`, so that a client
which keeps a websocket library's default frame limit (often 64 KiB) fails here as it would on Discord.
Its shapes are those user clients unpack: `experiments` rows of 11 fields, `merged_members` (the account's
own member, per guild), a settings protobuf in `user_settings_proto` and, for a client whose IDENTIFY
`capabilities` lack the settings-protobuf bit, the legacy `user_settings` JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from .members import BIG_GUILD_ID, BIG_GUILD_MEMBERS, merged_members
from .messages import BOT_USER
from .state import Account, World
from .usersettings import USER_SETTINGS_PROTO, legacy_settings, settings_proto

JSON = dict[str, Any]

_HOLDOUT = "2024-01_web_holdout"
_TRACE = ['["gateway-prd-us-east1-b-sim",{"micros":1234,"calls":["id_created",{"micros":800}]}]']


def _channel(channel_id: str, name: str, position: int, parent_id: str | None, kind: int = 0) -> JSON:
    return {
        "id": channel_id,
        "type": kind,
        "name": name,
        "position": position,
        "parent_id": parent_id,
        "permission_overwrites": [],
        "topic": None if kind else f"Use /imagine in #{name}. Read the rules before posting.",
        "last_message_id": None,
        "rate_limit_per_user": 0 if kind else 60,
        "nsfw": False,
        "flags": 0,
        "version": 1690000000000 + position,
    }


def _experiment(n: int) -> list[Any]:
    """One user experiment assignment, as READY lists them: hash, revision, bucket, override, population,
    hash_result, aa_mode, trigger_debugging, holdout_name, holdout_revision, holdout_bucket."""
    digest = hashlib.md5(str(n).encode()).digest()
    held_out = n % 7 == 0
    return [
        int.from_bytes(digest[:4], "little"),
        digest[4] % 5,
        n % 3,
        -1,
        digest[5] % 2,
        int.from_bytes(digest[6:8], "little") % 10_000,
        0,
        0,
        _HOLDOUT if held_out else None,
        0 if held_out else None,
        1 if held_out else None,
    ]


def _guild(guild_id: str, name: str, channels: list[JSON], roles: int, member_count: int) -> JSON:
    return {
        "id": guild_id,
        "properties": {
            "id": guild_id,
            "name": name,
            "icon": None,
            "description": None,
            "owner_id": "1000000000000000001",
            "features": ["COMMUNITY", "NEWS"],
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "preferred_locale": "en-US",
            "premium_tier": 3,
            "nsfw_level": 0,
        },
        "channels": channels,
        "roles": [
            {
                "id": str(int(guild_id) + index),
                "name": "@everyone" if index == 0 else f"role-{index}",
                "permissions": "2222085186637376",
                "position": index,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
            for index in range(roles)
        ],
        "emojis": [],
        "stickers": [],
        "threads": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "member_count": member_count,
        "large": guild_id == BIG_GUILD_ID,
        "lazy": True,
        "data_mode": "full",
        "joined_at": "2023-01-01T00:00:00.000000+00:00",
        "premium_subscription_count": 0,
        "application_command_counts": {"1": 10, "2": 0, "3": 2},
        "version": 1690000000000,
    }


def ready_payload(world: World, account: Account, session_id: str, resume_url: str, capabilities: int = 0) -> JSON:
    """READY.d for `account`, at least `world.config.ready_min_bytes` long once serialised.

    `capabilities` are IDENTIFY's: without the settings-protobuf bit, the legacy `user_settings` comes too.
    """
    own_channels = [
        _channel(channel.id, channel.name, position, None)
        for position, channel in enumerate(world.channels.values())
        if channel.guild_id == world.config.guild_id
    ]
    own_members = len(world.accounts) + 1  # the accounts and the bot
    guilds = [_guild(world.config.guild_id, world.guild_name, own_channels, roles=2, member_count=own_members)]
    body: JSON = {
        "v": 9,
        "user": {
            **account.user,
            "mfa_enabled": False,
            "verified": True,
            "email": f"{account.username}@example.invalid",
            "phone": None,
            "premium_type": 0,
            "nsfw_allowed": True,
            "bio": "",
            "purchased_flags": 0,
            "premium_usage_flags": 0,
            "desktop": False,
            "mobile": False,
        },
        "users": [BOT_USER],
        "guilds": guilds,
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_url,
        "sessions": [
            {
                "session_id": session_id,
                "client_info": {"version": 0, "os": "linux", "client": "web"},
                "status": "online",
                "activities": [],
            }
        ],
        "relationships": [],
        "private_channels": [
            {
                "id": account.dm_channel_id,
                "type": 1,
                "recipient_ids": [BOT_USER["id"]],
                "last_message_id": None,
                "flags": 0,
                "is_spam": False,
            }
        ],
        "read_state": {"version": 1, "partial": False, "entries": []},
        "user_guild_settings": {"version": 0, "partial": False, "entries": []},
        "user_settings_proto": settings_proto(account),
        "connected_accounts": [],
        "consents": {"personalization": {"consented": False}},
        "country_code": "US",
        "geo_ordered_rtc_regions": ["us-east", "us-central", "atlanta", "newark", "us-south"],
        "analytics_token": hashlib.sha1(session_id.encode()).hexdigest(),
        "auth_session_id_hash": base64.b64encode(hashlib.sha256(session_id.encode()).digest()).decode(),
        "api_code_version": 1,
        "friend_suggestion_count": 0,
        "tutorial": None,
        "auth": {"authenticator_types": []},
        "experiments": [_experiment(n) for n in range(20)],
        "guild_experiments": [],
        "_trace": _TRACE,
    }
    # Grow a big community guild until the payload is as heavy as a real one.
    size = len(json.dumps(body, separators=(",", ":")))
    missing = world.config.ready_min_bytes - size
    if missing > 0:
        sample = len(json.dumps(_channel("1" * 19, "newbies-000", 0, "1" * 19), separators=(",", ":")))
        count = missing // sample + 2
        big_channels = [
            _channel(str(int(BIG_GUILD_ID) + 1000 + n), f"newbies-{n:03d}", n, str(int(BIG_GUILD_ID) + 999))
            for n in range(count)
        ]
        guilds.append(_guild(BIG_GUILD_ID, "Midjourney", big_channels, roles=40, member_count=BIG_GUILD_MEMBERS))
        body["experiments"] = [_experiment(n) for n in range(200)]
    guild_ids = [str(g["id"]) for g in guilds]
    body["merged_members"] = merged_members(account, guild_ids)
    if not capabilities & USER_SETTINGS_PROTO:
        body["user_settings"] = legacy_settings(account, guild_ids)
    return body


def ready_supplemental(guild_ids: list[str]) -> JSON:
    """READY_SUPPLEMENTAL.d for READY's guilds (same order): presences and other members, none here."""
    return {
        "merged_presences": {"guilds": [[] for _ in guild_ids], "friends": []},
        "merged_members": [[] for _ in guild_ids],
        "lazy_private_channels": [],
        "guilds": [
            {"voice_states": [], "id": gid, "embedded_activities": [], "activity_instances": []} for gid in guild_ids
        ],
        "game_invites": [],
        "disclose": [],
    }
