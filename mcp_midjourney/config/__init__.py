"""Settings from the environment (``MJ_*``): the one place the package reads them, through pydantic-settings.

A missing or malformed setting never stops the server: `load_settings` raises `ConfigError` naming every bad
variable and its fix, the server keeps it, and the first tool call reports it (a server that crashes at start shows
only "server disconnected" in Claude Desktop). `read_startup` reads, leniently, what the command line and doctor
need even then: the log level, the HTTP options, the tokens to mask in logs.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import BeforeValidator, Field, SecretStr, ValidationError, ValidationInfo, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from ..logs import RedactingFilter as RedactingFilter  # re-exported: callers import logging set-up from here
from ..logs import setup_logging as setup_logging
from ..models import MIDJOURNEY_BOT_ID
from .accounts import LIMIT_KEYS as LIMIT_KEYS
from .accounts import SNOWFLAKE as _SNOWFLAKE
from .accounts import AccountSettings as AccountSettings
from .accounts import account_problems as _account_problems
from .accounts import parse_pool as _parse_pool
from .accounts import problem as _problem

APP_NAME = "mcp-midjourney"

DEFAULT_API_BASE = "https://discord.com/api/v9"
DEFAULT_CDN_BASE = "https://cdn.midjourney.com"
DEFAULT_INPAINT_BASE = f"https://{MIDJOURNEY_BOT_ID}.discordsays.com"
# Claude Desktop cancels a tool call at about 60 s; a wait must end well before that.
MAX_WAIT_CEILING = 55.0
MAX_IMAGE_PIXELS = 40_000_000  # an image or mask larger than this is refused before it is decoded
MAX_IMAGES_PER_CALL = 8  # images one call may upload or name (imagine's image prompts and --sref/--cref/--oref)


def default_state_dir() -> Path:
    """The user's data folder for this application on this platform (where the budget's record lives)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


class ConfigError(Exception):
    """The configuration cannot be used; the message names each variable and how to fix it."""


# -- validators: each says what is wrong and how to fix it, by the variable's name -------------------------------

_NAMES = {"token": "MJ_DISCORD_TOKEN", "api_base": "MJ_DISCORD_API_BASE"}  # the fields not named MJ_<FIELD>


def _text(raw: object) -> str:  # the variable's value, or a keyword argument's when `Settings` is built in code
    if isinstance(raw, SecretStr):
        raw = raw.get_secret_value()
    return "" if raw is None else str(raw).strip()


def _variable(field: object) -> str:
    return _NAMES.get(str(field), f"MJ_{str(field).upper()}")


def _var(info: ValidationInfo) -> str:
    return _variable(info.field_name or "")


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
    """MJ_ALLOWED_DIRS: folders separated by the OS path separator; unset, the data folder's `images` only."""
    if isinstance(raw, tuple | list) and raw:
        return tuple(Path(folder).resolve() for folder in raw)
    parts = [part.strip() for part in ("" if isinstance(raw, tuple | list) else _text(raw)).split(os.pathsep)]
    if not any(parts):
        return ((default_state_dir() / "images").resolve(),)
    missing = [f"MJ_ALLOWED_DIRS names {p!r}, which is not a folder" for p in parts if p and not _path(p).is_dir()]
    if missing:
        raise _problem("; ".join(missing))
    return tuple(_path(part).resolve() for part in parts if part)


def _path(raw: str) -> Path:
    return Path(os.path.expanduser(raw))


def _folder(raw: object, info: ValidationInfo) -> Path | None:
    return _path(_text(raw)) if _text(raw) else _default(info)  # MJ_DOWNLOAD_DIR, MJ_STATE_DIR


def _state_url(raw: object, info: ValidationInfo) -> str:
    url = _text(raw) or f"sqlite:///{Path(info.data.get('state_dir') or default_state_dir()).resolve()}/state.sqlite3"
    if not re.match(r"^(sqlite:///.*|rediss?://[^\s/]+(/\d*)?|memory://)$", url):  # a password is never shown:
        raise _problem(f"MJ_STATE_URL must be sqlite:///<path>, redis://host/db or memory://: {url.split('@')[-1]!r}")
    return url


def _level(raw: object) -> str:
    level = (_text(raw) or "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        raise _problem(f"MJ_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got {level!r}")
    return level


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
    default_wait: Seconds = Field(25.0, ge=0.0, le=MAX_WAIT_CEILING)  # at most wait_ceiling
    job_timeout: Seconds = Field(600.0, ge=1.0, le=86400.0)  # seconds without any progress before a job times out
    allowed_dirs: Annotated[tuple[Path, ...], NoDecode, BeforeValidator(_folders)] = ()  # folders agents upload from
    download_dir: Folder = None  # where finished images are saved, when set
    # Preview images in results (off for frameworks that turn a result's image into ~85,000 characters of text).
    preview: bool = True  # on/off, true/false, 1/0 or yes/no
    interaction_interval: Seconds = Field(0.35, ge=0.0, le=10.0)  # seconds between two interactions of one account
    gateway_ready_timeout: Seconds = Field(20.0, ge=1.0, le=120.0)
    store_limit: Whole = Field(5000, ge=10, le=1_000_000)  # finished jobs kept in memory
    log_level: Annotated[str, BeforeValidator(_level)] = "INFO"
    state_dir: Annotated[Path, BeforeValidator(_folder)] = Field(default_factory=default_state_dir)
    state_url: Annotated[str, BeforeValidator(_state_url)] = ""  # engine/state.py; unset: MJ_STATE_DIR/state.sqlite3
    lease_seconds: Seconds = Field(30.0, ge=2.0, le=3600.0)  # a dead server's slots come back after this
    max_jobs_per_hour: Limit = None
    max_jobs_per_day: Limit = None
    max_upscales_per_hour: Limit = None
    max_upscales_per_day: Limit = None
    account_max_jobs_per_hour: Limit = None
    account_max_jobs_per_day: Limit = None
    account_max_upscales_per_hour: Limit = None
    account_max_upscales_per_day: Limit = None
    http_token: Annotated[SecretStr, BeforeValidator(_text)] = SecretStr("")  # HTTP transport: the bearer token
    # MJ_HTTP_STATELESS: replicas behind a load balancer keep no MCP session (the jobs live in MJ_STATE_URL).
    http_stateless: bool = False
    http_allowed_hosts: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_hosts)] = ()  # more Host names
    max_image_pixels: Whole = Field(MAX_IMAGE_PIXELS, ge=1_000_000, le=89_000_000)  # Pillow's bomb check above
    max_images_per_call: Whole = Field(MAX_IMAGES_PER_CALL, ge=1, le=50)
    http_header_timeout: Seconds = Field(10.0, ge=0.5, le=300.0)  # to send a request's headers, or be closed
    http_max_connections: Whole = Field(64, ge=1, le=10_000)  # open at once; more are closed at once
    http_max_sessions: Whole = Field(32, ge=1, le=10_000)  # MCP sessions open at once; one more gets 503
    http_session_idle: Seconds = Field(600.0, ge=1.0, le=86400.0)  # seconds without a request: a session ends

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
            error["msg"] if error["type"] == "mj_setting" else f"{_variable(error['loc'][0])}: {error['msg']}"
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
