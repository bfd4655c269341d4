"""Settings from the environment (``MJ_*``).

A missing or malformed setting never stops the server from starting: `load_settings` returns the problems,
and the first tool call reports them by variable name (a server that crashes at start shows only "server
disconnected" in Claude Desktop).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from .models import MIDJOURNEY_BOT_ID

_SNOWFLAKE = re.compile(r"^\d{15,21}$")

DEFAULT_API_BASE = "https://discord.com/api/v9"
DEFAULT_CDN_BASE = "https://cdn.midjourney.com"
DEFAULT_INPAINT_BASE = f"https://{MIDJOURNEY_BOT_ID}.discordsays.com"
# Claude Desktop cancels a tool call at about 60 s; a wait must end well before that.
MAX_WAIT_CEILING = 55.0


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


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to talk to Discord, already validated.

    `token`/`guild_id`/`channel_id` are the first account; `accounts` lists them all (a pool when several).
    """

    token: SecretStr
    guild_id: str | None
    channel_id: str
    api_base: str = DEFAULT_API_BASE
    cdn_base: str = DEFAULT_CDN_BASE
    inpaint_base: str = DEFAULT_INPAINT_BASE  # Midjourney's web activity, where Vary (Region) jobs are sent
    application_id: str = MIDJOURNEY_BOT_ID
    wait_ceiling: float = 40.0
    default_wait: float = 30.0
    job_timeout: float = 600.0  # seconds without any progress before a job counts as timed out
    concurrency: int = 3  # default per account: jobs running at once
    queue_size: int = 10  # default per account: jobs Midjourney may queue beyond those
    interaction_interval: float = 0.35  # seconds between two interactions of one account
    gateway_ready_timeout: float = 20.0
    log_level: str = "INFO"
    store_limit: int = 5000  # finished jobs kept in memory
    accounts: tuple[AccountSettings, ...] = ()
    allowed_dirs: tuple[Path, ...] = ()  # local folders whose images the agent may upload
    download_dir: Path | None = None  # where finished images are saved, when set
    extra: Mapping[str, str] = field(default_factory=dict)

    def account_list(self) -> tuple[AccountSettings, ...]:
        """Every account; the single-account variables make a pool of one."""
        if self.accounts:
            return self.accounts
        single = AccountSettings("main", self.token, self.guild_id, self.channel_id, self.concurrency, self.queue_size)
        return (single,)

    def secrets(self) -> list[str]:
        return [a.token.get_secret_value() for a in self.account_list()]


class ConfigError(Exception):
    """The configuration cannot be used; the message names each variable and how to fix it."""


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float, problems: list[str]) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number of seconds, got {raw!r}")
        return default
    if not low <= value <= high:
        problems.append(f"{name} must be between {low:g} and {high:g}, got {value:g}")
        return default
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int, problems: list[str]) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be a whole number, got {raw!r}")
        return default
    if not low <= value <= high:
        problems.append(f"{name} must be between {low} and {high}, got {value}")
        return default
    return value


def _url(env: Mapping[str, str], name: str, default: str, problems: list[str]) -> str:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not re.match(r"^https?://[^\s/]+", raw):
        problems.append(f"{name} must be an http(s) URL such as {default}, got {raw!r}")
        return default
    return raw.rstrip("/")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise `ConfigError` naming every bad variable at once."""
    env = os.environ if env is None else env
    problems: list[str] = []

    concurrency = _int(env, "MJ_CONCURRENCY", 3, 1, 50, problems)
    queue_size = _int(env, "MJ_QUEUE_SIZE", 10, 0, 100, problems)
    accounts = _accounts(env, concurrency, queue_size, problems)
    if accounts:
        token, guild, channel = accounts[0].token.get_secret_value(), accounts[0].guild_id, accounts[0].channel_id
    else:
        token, guild, channel = _single_account(env, problems)

    application = (env.get("MJ_APPLICATION_ID") or "").strip() or MIDJOURNEY_BOT_ID
    if not _SNOWFLAKE.match(application):
        problems.append(f"MJ_APPLICATION_ID must be a Discord id, got {application!r}")

    ceiling = _float(env, "MJ_WAIT_CEILING", 40.0, 0.0, MAX_WAIT_CEILING, problems)
    settings = Settings(
        token=SecretStr(token),
        guild_id=guild,
        channel_id=channel,
        api_base=_url(env, "MJ_DISCORD_API_BASE", DEFAULT_API_BASE, problems),
        cdn_base=_url(env, "MJ_CDN_BASE", DEFAULT_CDN_BASE, problems),
        inpaint_base=_url(env, "MJ_INPAINT_BASE", DEFAULT_INPAINT_BASE, problems),
        application_id=application,
        wait_ceiling=ceiling,
        default_wait=min(ceiling, _float(env, "MJ_DEFAULT_WAIT", 30.0, 0.0, MAX_WAIT_CEILING, problems)),
        job_timeout=_float(env, "MJ_JOB_TIMEOUT", 600.0, 1.0, 86400.0, problems),
        concurrency=concurrency,
        queue_size=queue_size,
        accounts=tuple(accounts),
        allowed_dirs=_folders(env.get("MJ_ALLOWED_DIRS"), problems),
        download_dir=Path(os.path.expanduser(env["MJ_DOWNLOAD_DIR"])) if env.get("MJ_DOWNLOAD_DIR") else None,
        interaction_interval=_float(env, "MJ_INTERACTION_INTERVAL", 0.35, 0.0, 10.0, problems),
        gateway_ready_timeout=_float(env, "MJ_GATEWAY_READY_TIMEOUT", 20.0, 1.0, 120.0, problems),
        log_level=(env.get("MJ_LOG_LEVEL") or "INFO").upper(),
        store_limit=_int(env, "MJ_STORE_LIMIT", 5000, 10, 1_000_000, problems),
    )
    if settings.log_level not in logging.getLevelNamesMapping():
        problems.append(f"MJ_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {settings.log_level!r}")
    if problems:
        raise ConfigError("Configuration problem: " + "; ".join(problems) + ".")
    return settings


def _folders(raw: str | None, problems: list[str]) -> tuple[Path, ...]:
    """MJ_ALLOWED_DIRS: folders separated by the OS path separator; the home folder when unset."""
    if raw is None or not raw.strip():
        return (Path.home().resolve(),)
    folders = []
    for part in raw.split(os.pathsep):
        if not part.strip():
            continue
        folder = Path(os.path.expanduser(part.strip()))
        if not folder.is_dir():
            problems.append(f"MJ_ALLOWED_DIRS names {part.strip()!r}, which is not a folder")
            continue
        folders.append(folder.resolve())
    return tuple(folders)


def _check_token(token: str, name: str, problems: list[str]) -> None:
    if not token:
        problems.append(f"{name} is not set: set it to the Discord user token of the account that uses Midjourney")
    elif any(c.isspace() for c in token) or token.lower().startswith("bearer"):
        # Never echo the value: it is a secret even when malformed.
        problems.append(f"{name} is malformed: give the bare user token (no 'Bearer ' prefix, no spaces)")


def _check_ids(guild: str | None, channel: str, where: str, problems: list[str]) -> None:
    if not channel:
        problems.append(f"{where}channel id is not set: the Discord channel (or DM) where Midjourney runs")
    elif not _SNOWFLAKE.match(channel):
        problems.append(f"{where}channel id must be a Discord id (15-21 digits), got {channel!r}")
    if guild is not None and not _SNOWFLAKE.match(guild):
        problems.append(f"{where}guild id must be a Discord id (15-21 digits), or unset for a DM, got {guild!r}")


def _single_account(env: Mapping[str, str], problems: list[str]) -> tuple[str, str | None, str]:
    token = (env.get("MJ_DISCORD_TOKEN") or "").strip()
    _check_token(token, "MJ_DISCORD_TOKEN", problems)
    channel = (env.get("MJ_CHANNEL_ID") or "").strip()
    guild = (env.get("MJ_GUILD_ID") or "").strip() or None
    before = len(problems)
    _check_ids(guild, channel, "MJ_CHANNEL_ID / MJ_GUILD_ID: ", problems)
    if len(problems) > before and not channel:
        problems[-1] = "MJ_CHANNEL_ID is not set: the id of the Discord channel (or DM) where Midjourney runs"
    return token, guild, channel


ACCOUNT_LIMIT_KEYS = ("max_jobs_per_hour", "max_jobs_per_day", "max_upscales_per_hour", "max_upscales_per_day")


def _account_limit(item: Mapping[str, object], key: str, where: str, problems: list[str]) -> int | None:
    """One budget limit of an MJ_ACCOUNTS entry: a whole number >= 0, or absent/null for none of its own."""
    raw = item.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).strip().isdigit():
        problems.append(f"{where}{key} must be a whole number of 0 or more (or left out for no limit), got {raw!r}")
        return None
    return int(str(raw).strip())


def _accounts(env: Mapping[str, str], concurrency: int, queue_size: int, problems: list[str]) -> list[AccountSettings]:
    """A pool from MJ_ACCOUNTS (JSON) or MJ_ACCOUNTS_FILE (a JSON file): a list of
    {"name", "token", "guild_id", "channel_id", "concurrency", "queue_size", "max_jobs_per_hour",
    "max_jobs_per_day", "max_upscales_per_hour", "max_upscales_per_day"} objects (all but token and channel_id
    optional)."""
    raw = (env.get("MJ_ACCOUNTS") or "").strip()
    source = "MJ_ACCOUNTS"
    path = (env.get("MJ_ACCOUNTS_FILE") or "").strip()
    if not raw and path:
        source = "MJ_ACCOUNTS_FILE"
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as handle:
                raw = handle.read()
        except OSError as exc:
            problems.append(f"MJ_ACCOUNTS_FILE {path!r} cannot be read: {exc.strerror or exc}")
            return []
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        problems.append(f"{source} is not valid JSON: give a list of {{token, guild_id, channel_id}} objects")
        return []
    if not isinstance(data, list) or not data or not all(isinstance(a, dict) for a in data):
        problems.append(f"{source} must be a non-empty JSON list of {{token, guild_id, channel_id}} objects")
        return []
    accounts: list[AccountSettings] = []
    for i, item in enumerate(data, start=1):
        name = str(item.get("name") or f"account{i}")
        where = f"{source} account {name!r}: "
        token = str(item.get("token") or "").strip()
        _check_token(token, f"{where}token", problems)
        channel = str(item.get("channel_id") or "").strip()
        guild = str(item.get("guild_id") or "").strip() or None
        _check_ids(guild, channel, where, problems)
        try:
            account_concurrency = int(item.get("concurrency", concurrency))
            account_queue = int(item.get("queue_size", queue_size))
        except (TypeError, ValueError):
            problems.append(f"{where}concurrency and queue_size must be whole numbers")
            continue
        limit = {key: _account_limit(item, key, where, problems) for key in ACCOUNT_LIMIT_KEYS}
        accounts.append(
            AccountSettings(
                name,
                SecretStr(token),
                guild,
                channel,
                account_concurrency,
                account_queue,
                max_jobs_per_hour=limit["max_jobs_per_hour"],
                max_jobs_per_day=limit["max_jobs_per_day"],
                max_upscales_per_hour=limit["max_upscales_per_hour"],
                max_upscales_per_day=limit["max_upscales_per_day"],
            )
        )
    if len({a.name for a in accounts}) != len(accounts):
        problems.append(f"{source}: account names must be unique")
    return accounts


def raw_secrets(env: Mapping[str, str]) -> list[str]:
    """Every token-looking value in the environment, even when the configuration is invalid, for redaction."""
    found = [(env.get("MJ_DISCORD_TOKEN") or "").strip()]
    found += re.findall(r'"token"\s*:\s*"([^"]+)"', env.get("MJ_ACCOUNTS") or "")
    return [s for s in found if s]


class RedactingFilter(logging.Filter):
    """Replaces every secret value in a log record with a mask: the logging boundary keeps tokens out of logs."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[REDACTED]")
        if redacted != message or record.exc_info:
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                for secret in self._secrets:
                    record.exc_text = record.exc_text.replace(secret, "[REDACTED]")
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str = "INFO", secrets: list[str] | None = None) -> None:
    """Log to stderr only (stdout carries the MCP protocol), with secrets redacted."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets or []))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    # httpx2 logs every request URL at INFO; keep it quieter.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpcore2").setLevel(logging.WARNING)
