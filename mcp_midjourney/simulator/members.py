"""Guild members on the gateway: READY's `merged_members`, op 8's GUILD_MEMBERS_CHUNK, op 37's member list.

A user client learns who is in a guild three ways, and stalls until it hears back: its own member in
READY (`merged_members`, one list per guild, in READY's guild order), op 8 REQUEST_GUILD_MEMBERS answered
with GUILD_MEMBERS_CHUNK (`chunk_index`/`chunk_count`, `not_found`, the request's `nonce`), and op 37
(bulk guild subscriptions) or op 14, whose channel ranges are answered with a GUILD_MEMBER_LIST_UPDATE SYNC.
Every known guild holds the bot and every account of the simulator.
"""

from __future__ import annotations

from typing import Any

from .messages import BOT_USER, member_object
from .state import BOT_JOINED_MS, Account, World

JSON = dict[str, Any]

BIG_GUILD_ID = "662267976984297473"  # the real Midjourney server: its size is what makes READY big
BIG_GUILD_MEMBERS = 19_000_000
_MAX_QUERY_RESULTS = 100  # what Discord allows a `query` request
_MAX_NONCE_LENGTH = 32  # a longer nonce is dropped by Discord, not echoed


def member(user: JSON, joined_ms: int, *, with_user: bool = True) -> JSON:
    """A guild member: with its `user` object, or (as in READY's merged_members) only its `user_id`."""
    body = member_object(joined_ms)
    if with_user:
        body["user"] = user
    else:
        body["user_id"] = user["id"]
    return body


def _presence(user_id: str, online: bool) -> JSON:
    status = "online" if online else "offline"
    return {
        "user": {"id": user_id},
        "status": status,
        "client_status": {"web": status} if online else {},
        "activities": [],
    }


def merged_members(account: Account, guild_ids: list[str]) -> list[list[JSON]]:
    """READY's `merged_members`: the account's own member in each guild, in READY's guild order."""
    return [[member(account.user, account.joined_ms, with_user=False)] for _ in guild_ids]


class GuildMembers:
    """Who is in the simulator's guilds, and the payloads that tell a client so."""

    def __init__(self, world: World) -> None:
        self.world = world

    def member_count(self, guild_id: str) -> int | None:
        """How many members a guild of the account has (None for a guild it is not in)."""
        if guild_id == BIG_GUILD_ID:
            return BIG_GUILD_MEMBERS
        if guild_id == self.world.config.guild_id:
            return len(self.world.accounts) + 1  # the accounts and the bot
        return None

    def _everyone(self, online_ids: set[str]) -> list[tuple[JSON, bool]]:
        """(member, online) for the bot and every account: the bot first, then the accounts by name."""
        people = [(member(BOT_USER, BOT_JOINED_MS), True)]
        for account in sorted(self.world.accounts.values(), key=lambda a: a.username):
            people.append((member(account.user, account.joined_ms), account.user_id in online_ids))
        return people

    def chunks(self, request: Any, online_ids: set[str]) -> list[JSON]:
        """GUILD_MEMBERS_CHUNK payloads answering an op 8 REQUEST_GUILD_MEMBERS (none for a malformed one)."""
        if not isinstance(request, dict):
            return []
        raw_guilds = request.get("guild_id")
        guild_ids = [str(g) for g in (raw_guilds if isinstance(raw_guilds, list) else [raw_guilds])]
        raw_users = request.get("user_ids")
        wanted = [str(u) for u in (raw_users if isinstance(raw_users, list) else [raw_users])] if raw_users else None
        query = request.get("query")
        query = query.casefold() if isinstance(query, str) else ""
        limit = request.get("limit")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 0
        if wanted is None and query:
            limit = min(limit or _MAX_QUERY_RESULTS, _MAX_QUERY_RESULTS)
        nonce = request.get("nonce")
        chunks = []
        for guild_id in guild_ids:
            if self.member_count(guild_id) is None:
                continue  # Discord answers nothing for a guild the user is not in
            people = self._everyone(online_ids)
            if wanted is not None:
                found = [(m, on) for m, on in people if m["user"]["id"] in wanted]
            else:
                found = [(m, on) for m, on in people if str(m["user"]["username"]).casefold().startswith(query)]
                found = found[:limit] if limit else found
            chunk: JSON = {
                "guild_id": guild_id,
                "members": [m for m, _ in found],
                "chunk_index": 0,
                "chunk_count": 1,
            }
            if wanted is not None:
                found_ids = {m["user"]["id"] for m, _ in found}
                chunk["not_found"] = [u for u in wanted if u not in found_ids]
            if request.get("presences") is True:
                chunk["presences"] = [_presence(m["user"]["id"], on) for m, on in found]
            if isinstance(nonce, str) and len(nonce) <= _MAX_NONCE_LENGTH:
                chunk["nonce"] = nonce
            chunks.append(chunk)
        return chunks

    def list_updates(self, subscriptions: Any, online_ids: set[str]) -> list[JSON]:
        """GUILD_MEMBER_LIST_UPDATE payloads (one SYNC per range) for op 37 `{guild_id: {channels: …}}`."""
        if not isinstance(subscriptions, dict):
            return []
        updates = []
        for guild_id, wanted in subscriptions.items():
            channels = wanted.get("channels") if isinstance(wanted, dict) else None
            if self.member_count(str(guild_id)) is None or not isinstance(channels, dict) or not channels:
                continue  # typing / activities / threads subscriptions get no answer of their own
            ranges = [r for rs in channels.values() if isinstance(rs, list) for r in rs if _is_range(r)]
            updates.append(self._list_update(str(guild_id), sorted(set(map(tuple, ranges))), online_ids))
        return updates

    def _list_update(self, guild_id: str, ranges: list[tuple[int, ...]], online_ids: set[str]) -> JSON:
        people = self._everyone(online_ids)
        online = [m for m, on in people if on]
        offline = [m for m, on in people if not on]
        groups = [{"id": "online", "count": len(online)}, {"id": "offline", "count": len(offline)}]
        # The list as the sidebar shows it: a group header, then its members with their presence.
        items: list[JSON] = [{"group": groups[0]}]
        items += [{"member": {**m, "presence": _presence(m["user"]["id"], True)}} for m in online]
        items.append({"group": groups[1]})
        items += [{"member": {**m, "presence": _presence(m["user"]["id"], False)}} for m in offline]
        ops = [{"op": "SYNC", "range": [start, end], "items": items[start : end + 1]} for start, end in ranges]
        return {
            "guild_id": guild_id,
            "id": "everyone",
            "member_count": max(self.member_count(guild_id) or 0, len(people)),
            "online_count": len(online),
            "groups": groups,
            "ops": ops,
        }


def _is_range(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        and value[0] <= value[1]
    )
