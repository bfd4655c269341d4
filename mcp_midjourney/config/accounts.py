"""Discord accounts in the settings: one (MJ_DISCORD_TOKEN, MJ_GUILD_ID, MJ_CHANNEL_ID) or a pool (MJ_ACCOUNTS as JSON,
or MJ_ACCOUNTS_FILE), each checked with words that say what is wrong and how to fix it (never echoing a token)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import SecretStr
from pydantic_core import PydanticCustomError

SNOWFLAKE = re.compile(r"^[0-9]{15,21}$")  # ASCII digits: \d takes any script's
# The limits of an MJ_ACCOUNTS entry, in the order of AccountSettings' fields.
LIMIT_KEYS = ("max_jobs_per_hour", "max_jobs_per_day", "max_upscales_per_hour", "max_upscales_per_day")


def problem(message: str) -> PydanticCustomError:
    """A validation error whose text is exactly `message`."""
    return PydanticCustomError("mj_setting", "{problem}", {"problem": message})


@dataclass(frozen=True)
class AccountSettings:
    """One Discord account that uses Midjourney, in its own channel."""

    name: str
    token: SecretStr
    guild_id: str | None
    channel_id: str
    concurrency: int = 3  # jobs Midjourney runs at once for the account (fast mode)
    queue_size: int = 10  # jobs Midjourney queues beyond that before "Queue full"
    # This account's own usage budget (None: only MJ_ACCOUNT_MAX_* and the total limits apply).
    max_jobs_per_hour: int | None = None
    max_jobs_per_day: int | None = None
    max_upscales_per_hour: int | None = None
    max_upscales_per_day: int | None = None


def account_problems(token: str, guild: str | None, channel: str, token_name: str, where: str) -> list[str]:
    """What is wrong with one account's token and ids; `where` names the variable (and the account)."""
    problems = []
    if not token:
        problems.append(
            f"{token_name} is not set: set it to the Discord user token of the account that uses Midjourney"
        )
    elif any(c.isspace() for c in token) or token.lower().startswith("bearer"):
        # Never echo the value: it is a secret even when malformed.
        problems.append(f"{token_name} is malformed: give the bare user token (no 'Bearer ' prefix, no spaces)")
    if not channel and where.startswith("MJ_CHANNEL_ID"):
        problems.append("MJ_CHANNEL_ID is not set: the id of the Discord channel (or DM) where Midjourney runs")
    elif not channel:
        problems.append(f"{where}channel id is not set: the Discord channel (or DM) where Midjourney runs")
    elif not SNOWFLAKE.match(channel):
        problems.append(f"{where}channel id must be a Discord id (15-21 digits), got {channel!r}")
    if guild is not None and not SNOWFLAKE.match(guild):
        problems.append(f"{where}guild id must be a Discord id (15-21 digits), or unset for a DM, got {guild!r}")
    return problems


def parse_pool(text: str, source: str, concurrency: int, queue_size: int) -> tuple[AccountSettings, ...]:
    """A pool from MJ_ACCOUNTS (JSON) or MJ_ACCOUNTS_FILE (a JSON file): a list of {"name", "token", "guild_id",
    "channel_id", "concurrency", "queue_size", "max_jobs_per_hour", ... "max_upscales_per_day"} objects."""
    try:
        data = json.loads(text)
    except ValueError:
        raise problem(f"{source} is not valid JSON: give a list of {{token, guild_id, channel_id}} objects") from None
    if not isinstance(data, list) or not data or not all(isinstance(a, dict) for a in data):
        raise problem(f"{source} must be a non-empty JSON list of {{token, guild_id, channel_id}} objects")
    accounts, problems = [], []
    for i, item in enumerate(data, start=1):
        name = str(item.get("name") or f"account{i}")
        where = f"{source} account {name!r}: "
        token, channel = str(item.get("token") or "").strip(), str(item.get("channel_id") or "").strip()
        guild = str(item.get("guild_id") or "").strip() or None
        problems += account_problems(token, guild, channel, f"{where}token", where)
        try:
            own = int(item.get("concurrency", concurrency)), int(item.get("queue_size", queue_size))
        except (TypeError, ValueError):
            problems.append(f"{where}concurrency and queue_size must be whole numbers")
            continue
        numbers = []  # each limit a whole number >= 0, or absent/null for none of its own
        for key, raw in ((key, item.get(key)) for key in LIMIT_KEYS):
            if raw is not None and not _digits(raw):
                problems.append(
                    f"{where}{key} must be a whole number of 0 or more (or left out for no limit), got {raw!r}"
                )
            numbers.append(int(str(raw).strip()) if raw is not None and _digits(raw) else None)
        accounts.append(AccountSettings(name, SecretStr(token), guild, channel, *own, *numbers))
    if len({a.name for a in accounts}) != len(accounts):
        problems.append(f"{source}: account names must be unique")
    if problems:
        raise problem("; ".join(problems))
    return tuple(accounts)


def _digits(raw: object) -> bool:
    return (
        not isinstance(raw, bool) and isinstance(raw, int | str) and str(raw).strip().isdigit() and str(raw).isascii()
    )
