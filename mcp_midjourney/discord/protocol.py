"""What the Discord gateway's wire says, with no connection: the frames we send (IDENTIFY, RESUME, HEARTBEAT),
the close codes and what each means for the session, and the compact layout Discord writes dispatches in.

Pure data and functions, so the session loop in `gateway.py` holds only the connection's life.
"""

from __future__ import annotations

import re
from typing import Any

from .rest import USER_AGENT

# Close codes after which reconnecting cannot help (authentication failed, bad shard/intents/version): the
# account stops, and its words reach the agent, so each says what a person must do.
FATAL_CLOSE_CODES = {
    4004: "authentication failed: the Discord token is invalid or revoked. Set a fresh user token "
    "(MJ_DISCORD_TOKEN, or the account's token in MJ_ACCOUNTS) and restart the server",
    4010: "Discord closed the gateway with code 4010 (invalid shard): this client sent a bad IDENTIFY; "
    "update mcp-midjourney",
    4011: "Discord closed the gateway with code 4011 (sharding required): a user account should never get this; "
    "check that the token is a user token, not a bot token",
    4012: "Discord closed the gateway with code 4012 (invalid API version): update mcp-midjourney",
    4013: "Discord closed the gateway with code 4013 (invalid intents): check that the token is a user token, "
    "not a bot token, and update mcp-midjourney",
    4014: "Discord closed the gateway with code 4014 (disallowed intents): check that the token is a user token, "
    "not a bot token",
}
# Codes after which the session is gone and we must identify afresh.
SESSION_LOST_CODES = {4007, 4009}
# A user account's READY carries every guild and channel: it can be several MB.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Closing with 1000/1001 would end the session on Discord's side; any other code keeps it resumable.
RESUMABLE_CLOSE = 4000
# The start of a dispatch exactly as Discord serialises it (compact, keys in the order t, s, op, d). Only frames
# that begin so may be skipped unparsed; any other shape is parsed in full.
COMPACT_DISPATCH = re.compile(r'\{"t":"([A-Z0-9_]+)","s":(0|[1-9][0-9]*),"op":0,"d":\{')
# Dispatches the session itself needs (its id, resume URL, user): never handed to a pre-filter.
SESSION_EVENTS = frozenset({"READY", "RESUMED"})


class GatewayFatal(Exception):
    """The gateway refused this account for good; the message says why."""


def identify_payload(token: str) -> dict[str, Any]:
    """A browser-style IDENTIFY of a user account: no intents, client properties like the web client's."""
    return {
        "op": 2,
        "d": {
            "token": token,
            "capabilities": 16381,
            "properties": {
                "os": "Windows",
                "browser": "Chrome",
                "device": "",
                "system_locale": "en-US",
                "browser_user_agent": USER_AGENT,
                "browser_version": "131.0.0.0",
                "os_version": "10",
                "referrer": "",
                "referring_domain": "",
                "referrer_current": "",
                "referring_domain_current": "",
                "release_channel": "stable",
                "client_build_number": 352804,
                "client_event_source": None,
            },
            "presence": {"status": "unknown", "since": 0, "activities": [], "afk": False},
            "compress": False,
            "client_state": {"guild_versions": {}},
        },
    }


def resume_payload(token: str, session_id: str | None, seq: int | None) -> dict[str, Any]:
    """RESUME (op 6): pick the session up where `seq` left it."""
    return {"op": 6, "d": {"token": token, "session_id": session_id, "seq": seq}}


def heartbeat_payload(seq: int | None) -> dict[str, Any]:
    """HEARTBEAT (op 1) with the last sequence number seen."""
    return {"op": 1, "d": seq}
