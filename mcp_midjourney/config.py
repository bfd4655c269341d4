"""Settings from the environment (``MJ_*``): the one place the package reads them, through pydantic-settings.

A missing or malformed setting never stops the server: `load_settings` raises `ConfigError` naming every bad
variable and its fix, the server keeps it, and the first tool call reports it (a server that crashes at start shows
only "server disconnected" in Claude Desktop). `read_startup` reads, leniently, what the command line and doctor
need even then: the log level, the HTTP options, the tokens to mask in logs.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import BeforeValidator, Field, SecretStr, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from .logs import RedactingFilter as RedactingFilter  # re-exported: callers import logging set-up from here
from .logs import setup_logging as setup_logging
from .models import MIDJOURNEY_BOT_ID

_SNOWFLAKE = re.compile(r"^\d{15,21}$")
APP_NAME = "mcp-midjourney"

DEFAULT_API_BASE = "https://discord.com/api/v9"
DEFAULT_CDN_BASE = "https://cdn.midjourney.com"
DEFAULT_INPAINT_BASE = f"https://{MIDJOURNEY_BOT_ID}.discordsays.com"
# Claude Desktop cancels a tool call at about 60 s; a wait must end well before that.
MAX_WAIT_CEILING = 55.0
# The limits of an MJ_ACCOUNTS entry, in the order of AccountSettings' fields.
LIMIT_KEYS = ("max_jobs_per_hour", "max_jobs_per_day", "max_upscales_per_hour", "max_upscales_per_day")


def default_state_dir() -> Path:
    """The user's data folder for this application on this platform (where the budget's record lives)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


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


class ConfigError(Exception):
    """The configuration cannot be used; the message names each variable and how to fix it."""


# -- validators: each says what is wrong and how to fix it, by the variable's name -------------------------------

_NAMES = {"token": "MJ_DISCORD_TOKEN", "api_base": "MJ_DISCORD_API_BASE"}  # the fields not named MJ_<FIELD>


def _problem(message: str) -> PydanticCustomError:
    """A validation error whose text is exactly `message`."""
    return PydanticCustomError("mj_setting", "{problem}", {"problem": message})


def _text(raw: object) -> str:  # the variable's value, or a keyword argument's when `Settings` is built in code
    if isinstance(raw, SecretStr):
        raw = raw.get_secret_value()
    return "" if raw is None else str(raw).strip()


def _var(info: ValidationInfo) -> str:
    name = info.field_name or ""
    return _NAMES.get(name, f"MJ_{name.upper()}")


def _default(info: ValidationInfo) -> Any:
    return Settings.model_fields[info.field_name or ""].get_default(call_default_factory=True)


def _number(raw: object, info: ValidationInfo) -> float:
    """A number within its bounds; blank is the default."""
    default, text = _default(info), _text(raw)
    if not text:
        return float(default)
    bounds = Settings.model_fields[info.field_name or ""].metadata  # the field's Field(ge=..., le=...)
    low, high = (next(getattr(m, side) for m in bounds if hasattr(m, side)) for side in ("ge", "le"))
    whole = isinstance(default, int)
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number of seconds"
        raise _problem(f"{_var(info)} must be {kind}, got {raw!r}") from None
    if not low <= value <= high:
        show = str if whole else (lambda number: f"{number:g}")
        raise _problem(f"{_var(info)} must be between {show(low)} and {show(high)}, got {show(value)}")
    return value


def _url(raw: object, info: ValidationInfo) -> str:
    default, url = _default(info), _text(raw)
    if url and not re.match(r"^https?://[^\s/]+", url):
        raise _problem(f"{_var(info)} must be an http(s) URL such as {default}, got {url!r}")
    return url.rstrip("/") or str(default)


def _limit(raw: object, info: ValidationInfo) -> int | None:
    """A budget limit: unset (or "unlimited") is none; 0 forbids that kind entirely."""
    if _text(raw).lower() in ("", "unlimited", "none", "off"):
        return None
    try:
        value = int(_text(raw))
    except ValueError:
        raise _problem(f"{_var(info)} must be a whole number of jobs (or unset for no limit), got {raw!r}") from None
    if value < 0:
        raise _problem(f"{_var(info)} must be 0 or more (0 allows none; unset it for no limit), got {value}")
    return value


def _folders(raw: object) -> tuple[Path, ...]:
    """MJ_ALLOWED_DIRS: folders separated by the OS path separator; the home folder when unset."""
    if isinstance(raw, tuple | list) and raw:
        return tuple(Path(folder) for folder in raw)
    parts = [part.strip() for part in ("" if isinstance(raw, tuple | list) else _text(raw)).split(os.pathsep)]
    if not any(parts):
        return (Path.home().resolve(),)
    missing = [f"MJ_ALLOWED_DIRS names {p!r}, which is not a folder" for p in parts if p and not _path(p).is_dir()]
    if missing:
        raise _problem("; ".join(missing))
    return tuple(_path(part).resolve() for part in parts if part)


def _path(raw: str) -> Path:
    return Path(os.path.expanduser(raw))


def _folder(raw: object, info: ValidationInfo) -> Path | None:
    return _path(_text(raw)) if _text(raw) else _default(info)  # MJ_DOWNLOAD_DIR, MJ_STATE_DIR


def _level(raw: object) -> str:
    level = (_text(raw) or "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        raise _problem(f"MJ_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {level!r}")
    return level


def _switch(raw: object) -> bool:
    value = (_text(raw) or "on").lower()
    if value not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise _problem(f"MJ_PREVIEW must be on or off, got {value!r}")
    return value in ("on", "true", "1", "yes")


def _application(raw: object) -> str:
    application = _text(raw) or MIDJOURNEY_BOT_ID
    if not _SNOWFLAKE.match(application):
        raise _problem(f"MJ_APPLICATION_ID must be a Discord id, got {application!r}")
    return application


def _account(raw: object, info: ValidationInfo) -> str | None:
    """MJ_GUILD_ID, validated after MJ_DISCORD_TOKEN and MJ_CHANNEL_ID: checks the single account's three."""
    guild = _text(raw) or None
    if info.data.get("accounts", None) != ():
        return guild  # a pool is given (a broken one has said so)
    token, channel = _text(info.data.get("token")), _text(info.data.get("channel_id"))
    problems = _account_problems(token, guild, channel, "MJ_DISCORD_TOKEN", "MJ_CHANNEL_ID / MJ_GUILD_ID: ")
    if problems:
        raise _problem("; ".join(problems))
    return guild


def _hosts(raw: object) -> tuple[str, ...]:
    names = raw if isinstance(raw, tuple | list) else _text(raw).split(",")
    return tuple(name.strip() for name in names if name.strip())


def _pool(raw: object, info: ValidationInfo) -> tuple[AccountSettings, ...]:
    if isinstance(raw, tuple | list):
        return tuple(raw)  # built in code
    text, source, path = _text(raw), "MJ_ACCOUNTS", _text(info.data.get("accounts_file"))
    if not text and path:
        source = "MJ_ACCOUNTS_FILE"
        try:
            text = _path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise _problem(f"MJ_ACCOUNTS_FILE {path!r} cannot be read: {exc.strerror or exc}") from None
    return _parse_pool(text, source, info.data.get("concurrency", 3), info.data.get("queue_size", 10)) if text else ()


Seconds = Annotated[float, BeforeValidator(_number)]
Whole = Annotated[int, BeforeValidator(_number)]
Url = Annotated[str, BeforeValidator(_url)]
Limit = Annotated[int | None, BeforeValidator(_limit)]
Folder = Annotated[Path | None, BeforeValidator(_folder)]


class Settings(BaseSettings):
    """Everything the server needs to talk to Discord, already validated: every MJ_* variable, as MJ_<FIELD>.

    `token`/`guild_id`/`channel_id` are the first account; `accounts` lists them all (a pool when several). The
    `max_*` limits are the usage budget in total (MJ_MAX_*), the `account_max_*` ones every account's default
    (MJ_ACCOUNT_MAX_*); None is no limit. Built in code, it takes keyword arguments only, never the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix="MJ_", extra="ignore", frozen=True, validate_default=True, validate_by_name=True
    )

    # Fields validate in this order: the pool's come first, since the single account's checks depend on them.
    concurrency: Whole = Field(3, ge=1, le=50)  # default per account: jobs running at once
    queue_size: Whole = Field(10, ge=0, le=100)  # default per account: jobs Midjourney may queue beyond those
    accounts_file: str = ""
    accounts: Annotated[tuple[AccountSettings, ...], NoDecode, BeforeValidator(_pool)] = ()
    token: Annotated[SecretStr, BeforeValidator(_text)] = Field(SecretStr(""), validation_alias="MJ_DISCORD_TOKEN")
    channel_id: Annotated[str, BeforeValidator(_text)] = ""
    guild_id: Annotated[str | None, BeforeValidator(_account)] = None  # checks the token and channel too
    application_id: Annotated[str, BeforeValidator(_application)] = MIDJOURNEY_BOT_ID
    api_base: Url = Field(DEFAULT_API_BASE, validation_alias="MJ_DISCORD_API_BASE")
    cdn_base: Url = DEFAULT_CDN_BASE
    inpaint_base: Url = DEFAULT_INPAINT_BASE  # Midjourney's web activity, where Vary (Region) jobs are sent
    wait_ceiling: Seconds = Field(40.0, ge=0.0, le=MAX_WAIT_CEILING)
    default_wait: Seconds = Field(30.0, ge=0.0, le=MAX_WAIT_CEILING)  # at most wait_ceiling
    job_timeout: Seconds = Field(
        600.0, ge=1.0, le=86400.0
    )  # seconds without any progress before a job counts as timed out
    allowed_dirs: Annotated[tuple[Path, ...], NoDecode, BeforeValidator(_folders)] = ()  # folders agents upload from
    download_dir: Folder = None  # where finished images are saved, when set
    # Preview images in results (off for frameworks that turn a result's image into ~85,000 characters of text).
    preview: Annotated[bool, BeforeValidator(_switch)] = True
    interaction_interval: Seconds = Field(0.35, ge=0.0, le=10.0)  # seconds between two interactions of one account
    gateway_ready_timeout: Seconds = Field(20.0, ge=1.0, le=120.0)
    store_limit: Whole = Field(5000, ge=10, le=1_000_000)  # finished jobs kept in memory
    log_level: Annotated[str, BeforeValidator(_level)] = "INFO"
    state_dir: Annotated[Path, BeforeValidator(_folder)] = Field(default_factory=default_state_dir)
    max_jobs_per_hour: Limit = None
    max_jobs_per_day: Limit = None
    max_upscales_per_hour: Limit = None
    max_upscales_per_day: Limit = None
    account_max_jobs_per_hour: Limit = None
    account_max_jobs_per_day: Limit = None
    account_max_upscales_per_hour: Limit = None
    account_max_upscales_per_day: Limit = None
    http_token: Annotated[SecretStr, BeforeValidator(_text)] = SecretStr("")  # HTTP transport: the bearer token
    http_allowed_hosts: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_hosts)] = ()  # more Host names

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *_: Any, **__: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # keyword arguments only: `load_settings` passes what the environment source read

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        first = self.accounts[0] if self.accounts else None
        derived: dict[str, object] = {"default_wait": min(self.wait_ceiling, self.default_wait)}
        if first is not None:
            derived |= {"token": first.token, "guild_id": first.guild_id, "channel_id": first.channel_id}
        for name, value in derived.items():
            object.__setattr__(self, name, value)  # frozen: set once, while validating
        return self

    def account_list(self) -> tuple[AccountSettings, ...]:
        """Every account; the single-account variables make a pool of one."""
        if self.accounts:
            return self.accounts
        single = AccountSettings("main", self.token, self.guild_id, self.channel_id, self.concurrency, self.queue_size)
        return (single,)

    def secrets(self) -> list[str]:
        """Every account's token, for redaction."""
        return [a.token.get_secret_value() for a in self.account_list()]


def _account_problems(token: str, guild: str | None, channel: str, token_name: str, where: str) -> list[str]:
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
    elif not _SNOWFLAKE.match(channel):
        problems.append(f"{where}channel id must be a Discord id (15-21 digits), got {channel!r}")
    if guild is not None and not _SNOWFLAKE.match(guild):
        problems.append(f"{where}guild id must be a Discord id (15-21 digits), or unset for a DM, got {guild!r}")
    return problems


def _parse_pool(text: str, source: str, concurrency: int, queue_size: int) -> tuple[AccountSettings, ...]:
    """A pool from MJ_ACCOUNTS (JSON) or MJ_ACCOUNTS_FILE (a JSON file): a list of {"name", "token", "guild_id",
    "channel_id", "concurrency", "queue_size", "max_jobs_per_hour", ... "max_upscales_per_day"} objects."""
    try:
        data = json.loads(text)
    except ValueError:
        raise _problem(f"{source} is not valid JSON: give a list of {{token, guild_id, channel_id}} objects") from None
    if not isinstance(data, list) or not data or not all(isinstance(a, dict) for a in data):
        raise _problem(f"{source} must be a non-empty JSON list of {{token, guild_id, channel_id}} objects")
    accounts, problems = [], []
    for i, item in enumerate(data, start=1):
        name = str(item.get("name") or f"account{i}")
        where = f"{source} account {name!r}: "
        token, channel = str(item.get("token") or "").strip(), str(item.get("channel_id") or "").strip()
        guild = str(item.get("guild_id") or "").strip() or None
        problems += _account_problems(token, guild, channel, f"{where}token", where)
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
        raise _problem("; ".join(problems))
    return tuple(accounts)


def _digits(raw: object) -> bool:
    return not isinstance(raw, bool) and isinstance(raw, int | str) and str(raw).strip().isdigit()


# -- reading: pydantic-settings' environment source, over os.environ or a given mapping ------------------------


class _GivenEnvironment(EnvSettingsSource):
    """The environment source over `env`: os.environ, or the mapping tests and doctor pass."""

    def __init__(self, env: Mapping[str, str] | None) -> None:
        self._given = os.environ if env is None else env
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._given.items()}  # names match case-insensitively


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings from `env` (os.environ); raise `ConfigError` naming every bad variable at once."""
    try:
        return Settings.model_validate(_GivenEnvironment(env)())
    except ValidationError as exc:
        problems = [
            error["msg"] if error["type"] == "mj_setting" else f"{error['loc'][0]}: {error['msg']}"
            for error in exc.errors(include_input=False)  # never the input: it may be a token
        ]
        raise ConfigError("Configuration problem: " + "; ".join(problems) + ".") from None


@dataclass(frozen=True)
class Startup:
    """What the command line and doctor need before, and whatever, `load_settings` says: read leniently."""

    log_level: str  # upper-cased; `setup_logging` falls back to INFO on a name it does not know
    http_token: str | None  # HTTP transport: the bearer token clients must send
    http_allowed_hosts: tuple[str, ...]  # HTTP transport: more Host names to accept
    download_dir: str
    tokens: tuple[str, ...]  # every Discord token-looking value, even in a broken configuration, for redaction


def read_startup(env: Mapping[str, str] | None = None) -> Startup:
    """The start-up options from `env` (os.environ); never raises."""
    raw = _GivenEnvironment(env)()
    tokens = [_text(raw.get("MJ_DISCORD_TOKEN")), *re.findall(r'"token"\s*:\s*"([^"]+)"', str(raw.get("accounts")))]
    return Startup(
        log_level=(str(raw.get("log_level") or "") or "INFO").upper(),
        http_token=_text(raw.get("http_token")) or None,
        http_allowed_hosts=_hosts(raw.get("http_allowed_hosts")),
        download_dir=_text(raw.get("download_dir")),
        tokens=tuple(token for token in tokens if token),
    )


def raw_secrets(env: Mapping[str, str]) -> list[str]:
    """Every token-looking value in the environment, even when the configuration is invalid, for redaction."""
    return list(read_startup(env).tokens)
