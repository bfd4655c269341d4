"""``mcp-midjourney doctor``: check the setup end to end and say what to fix.

In order: the configuration, the token (``GET /users/@me``), the guild and channel (``GET /channels/{id}``
and a read of its history), a gateway session (READY), and the command index (``/imagine`` and its version),
for every configured account; the shared state (``MJ_STATE_URL``); then the download folder when ``MJ_DOWNLOAD_DIR``
is set. The report goes to
stdout (this is not the MCP server); the exit code is 0 when every check passes, 1 otherwise. No token is
ever printed: every line passes through a redactor as well, in case Discord echoes one back.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio

from .. import midjourney as mj
from ..config import AccountSettings, ConfigError, Settings, load_settings, read_startup, setup_logging
from ..discord.gateway import Gateway, GatewayFatal
from ..discord.rest import DiscordHTTPError, DiscordRest, DiscordUnavailable, Forbidden, NotFound, Unauthorized

Status = Literal["pass", "fail", "skip"]
_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
_CHANNEL_KINDS = {0: "text channel", 1: "DM", 3: "group DM", 5: "announcement channel", 11: "thread", 12: "thread"}
_DM_KINDS = {1, 3}

TOKEN_FIX = (
    "MJ_DISCORD_TOKEN must be the current user token of the account that uses Midjourney (a bot token does not "
    "work; the token changes when you log out or change the password). Log in to Discord in a browser, open the "
    "developer tools → Network, and copy the Authorization header of any request to discord.com/api."
)


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


class Report:
    """Prints checks as they finish (so a slow one is visibly the slow one), with secrets redacted."""

    def __init__(self, out: TextIO, secrets: list[str]) -> None:
        self._out = out
        self._secrets = [s for s in secrets if s]
        self.checks: list[Check] = []

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return text

    def say(self, text: str) -> None:
        print(self.redact(text), file=self._out, flush=True)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        self.say(f"  {_MARK[check.status]}  {check.name:<20} {check.detail}")
        if check.fix:
            self.say(f"        fix: {check.fix}")
        return check

    @property
    def failed(self) -> int:
        return sum(1 for c in self.checks if c.status == "fail")


def _http_failure(exc: DiscordHTTPError, api_base: str) -> tuple[str, str]:
    """(detail, fix) for a REST error that is not specific to one check."""
    if isinstance(exc, Unauthorized):
        return "Discord refused the token (HTTP 401 Unauthorized)", TOKEN_FIX
    if isinstance(exc, DiscordUnavailable) and exc.status == 429:
        return f"Discord is rate-limiting this account ({exc})", "Wait a minute, then run doctor again."
    if isinstance(exc, DiscordUnavailable):
        return (
            str(exc) if exc.status == 0 else f"Discord at {api_base} keeps failing ({exc})",
            "Check the network (a proxy or firewall in the way?) and MJ_DISCORD_API_BASE, which should be "
            "https://discord.com/api/v9 unless you run the simulator.",
        )
    return f"Discord answered HTTP {exc.status}: {exc}", "Run doctor again; if it persists, check Discord's status."


async def _bounded(seconds: float, name: str, step: Callable[[], Awaitable[Check]]) -> Check:
    try:
        with anyio.fail_after(seconds):
            return await step()
    except TimeoutError:
        return Check(name, "fail", f"no answer within {seconds:g} s", "Check the network and MJ_DISCORD_API_BASE.")


class AccountDoctor:
    """The checks of one account, sharing one REST client."""

    def __init__(self, settings: Settings, account: AccountSettings, label: str, timeout: float) -> None:
        self.settings = settings
        self.account = account
        self.label = label
        self.timeout = timeout
        self.rest = DiscordRest(
            settings.api_base,
            account.token,
            interaction_interval=settings.interaction_interval,
            max_retries=1,
            max_rate_limit_wait=10.0,
            timeout=min(timeout, 10.0),
        )

    def _name(self, what: str) -> str:
        return f"{self.label}{what}"

    async def token(self) -> Check:
        name = self._name("token")
        try:
            me = await self.rest.me()
        except DiscordHTTPError as exc:
            return Check(name, "fail", *_http_failure(exc, self.settings.api_base))
        user = str(me.get("username") or "?")
        shown = me.get("global_name")
        if me.get("bot"):
            return Check(name, "fail", f"{user} is a bot account", TOKEN_FIX)
        return Check(name, "pass", f"signed in as {user}" + (f" ({shown})" if shown else "") + f", id {me.get('id')}")

    async def channel(self) -> Check:
        name = self._name("guild and channel")
        channel_id, guild_id = self.account.channel_id, self.account.guild_id
        info: dict[str, Any] | None = None
        try:
            data = await self.rest.request("GET", f"/channels/{channel_id}")
            info = data if isinstance(data, dict) else {}
        except NotFound as exc:
            # Discord answers an unknown route with code 0 (and the simulator may not serve this one):
            # only 10003 means the channel itself is unknown. Without the route, the history read below decides.
            if exc.code not in (None, 0):
                return self._unknown_channel(exc)
        except Forbidden:
            return Check(
                name,
                "fail",
                f"the account has no access to channel {channel_id} (HTTP 403)",
                "Join the server with this account, or ask for the View Channel and Read Message History "
                "permissions there.",
            )
        except DiscordHTTPError as exc:
            return Check(name, "fail", *_http_failure(exc, self.settings.api_base))
        if info is not None:
            problem = self._placement(info)
            if problem is not None:
                return problem
        try:
            await self.rest.messages(channel_id, limit=1)
        except NotFound as exc:
            return self._unknown_channel(exc)
        except Forbidden:
            return Check(
                name,
                "fail",
                f"channel {channel_id} is visible but its messages cannot be read (HTTP 403)",
                "Give the account the Read Message History permission in that channel: the server reads "
                "Midjourney's replies from it.",
            )
        except DiscordHTTPError as exc:
            return Check(name, "fail", *_http_failure(exc, self.settings.api_base))
        if info is None:
            where = f"channel {channel_id}" + (f" in guild {guild_id}" if guild_id else "")
            return Check(
                name, "pass", f"{where}: messages readable (name unknown: the API has no GET /channels/{{id}})"
            )
        kind = _CHANNEL_KINDS.get(int(info.get("type") or 0), "channel")
        title = f"#{info['name']}" if info.get("name") else f"channel {channel_id}"
        where = f" in guild {info.get('guild_id')}" if info.get("guild_id") else ""
        return Check(name, "pass", f"{title} ({kind}){where}: messages readable")

    def _unknown_channel(self, exc: NotFound) -> Check:
        return Check(
            self._name("guild and channel"),
            "fail",
            f"no channel {self.account.channel_id} that this account can see (Discord: {exc})",
            "Copy the id again: Discord → Settings → Advanced → Developer Mode on, then right-click the channel → "
            "Copy Channel ID, and set MJ_CHANNEL_ID.",
        )

    def _placement(self, info: dict[str, Any]) -> Check | None:
        """A channel in another guild than MJ_GUILD_ID says (or a DM with a guild set) fails here, not later."""
        name = self._name("guild and channel")
        guild_id = self.account.guild_id
        actual = str(info["guild_id"]) if info.get("guild_id") else None
        if info.get("type") in _DM_KINDS and guild_id:
            return Check(name, "fail", f"channel {self.account.channel_id} is a DM", "Unset MJ_GUILD_ID for a DM.")
        if actual and guild_id and actual != guild_id:
            return Check(
                name,
                "fail",
                f"channel {self.account.channel_id} is in guild {actual}, not in MJ_GUILD_ID={guild_id}",
                f"Set MJ_GUILD_ID={actual} (or MJ_CHANNEL_ID to a channel of guild {guild_id}).",
            )
        if actual and not guild_id:
            return Check(
                name,
                "fail",
                f"channel {self.account.channel_id} is in guild {actual} but MJ_GUILD_ID is not set",
                f"Set MJ_GUILD_ID={actual}.",
            )
        return None

    async def gateway(self) -> Check:
        name = self._name("gateway session")
        wait = max(1.0, min(self.settings.gateway_ready_timeout, self.timeout))
        gateway = Gateway(self.rest, self.account.token, on_dispatch=lambda _event, _data: None)
        started = time.monotonic()
        check: Check
        async with anyio.create_task_group() as group:
            group.start_soon(gateway.run)
            try:
                await gateway.wait_ready(wait)
                check = Check(name, "pass", f"READY in {time.monotonic() - started:.2f} s")
            except GatewayFatal as exc:
                check = Check(name, "fail", f"Discord closed the session: {exc}", TOKEN_FIX)
            except TimeoutError:
                check = Check(
                    name,
                    "fail",
                    f"no READY within {wait:g} s",
                    "Check that websockets to Discord's gateway are not blocked (proxy, firewall, VPN); raise "
                    "MJ_GATEWAY_READY_TIMEOUT on a slow network.",
                )
            group.cancel_scope.cancel()
        return check

    async def commands(self) -> Check:
        name = self._name("command index")
        try:
            index = await self.rest.command_index(guild_id=self.account.guild_id, channel_id=self.account.channel_id)
            command = mj.find_command(index, "imagine", self.settings.application_id)
        except mj.CommandNotFound as exc:
            return Check(
                name,
                "fail",
                str(exc),
                "Use a server where the Midjourney bot is a member (or your DM with it), and check that /imagine "
                "works there in the Discord app.",
            )
        except Forbidden:
            return Check(
                name,
                "fail",
                "the account may not read the command index there (HTTP 403)",
                "Ask for the Use Application Commands permission in that channel.",
            )
        except NotFound as exc:
            return Check(
                name,
                "fail",
                f"no command index for that guild or channel ({exc})",
                "Check MJ_GUILD_ID (the server's id, or unset for a DM).",
            )
        except DiscordHTTPError as exc:
            return Check(name, "fail", *_http_failure(exc, self.settings.api_base))
        return Check(name, "pass", f"/imagine found (id {command.get('id')}, version {command.get('version')})")

    async def run(self, report: Report) -> None:
        try:
            token = report.add(await _bounded(self.timeout, self._name("token"), self.token))
            if token.status == "fail":
                for what in ("guild and channel", "gateway session", "command index"):
                    report.add(Check(self._name(what), "skip", "needs a working token"))
                return
            report.add(await _bounded(self.timeout, self._name("guild and channel"), self.channel))
            report.add(await _bounded(self.timeout + 5, self._name("gateway session"), self.gateway))
            report.add(await _bounded(self.timeout, self._name("command index"), self.commands))
        finally:
            with anyio.CancelScope(shield=True):
                await self.rest.aclose()


def check_download_dir(raw: str) -> Check:
    """The folder for ``MJ_DOWNLOAD_DIR`` exists (or can be made) and takes a file."""
    folder = Path(raw).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-", delete=True):
            pass
    except OSError as exc:
        return Check(
            "download folder",
            "fail",
            f"cannot write into {folder}: {exc.strerror or type(exc).__name__}",
            "Point MJ_DOWNLOAD_DIR at a folder this user can write, or unset it.",
        )
    return Check("download folder", "pass", f"{folder.resolve()} is writable")


async def check_shared_state(settings: Settings, timeout: float) -> Check:
    """The backend MJ_STATE_URL names answers (the state every server of the accounts shares)."""
    from ..engine.state import StateError, open_backend, safe_url

    shown = safe_url(settings.state_url)
    try:
        backend = open_backend(settings.state_url, settings.state_dir)
        try:
            with anyio.fail_after(timeout):
                await backend.ping()
        finally:
            await backend.aclose()
    except (StateError, TimeoutError) as exc:
        return Check(
            "shared state",
            "fail",
            str(exc) or f"{shown}: no answer within {timeout:g} s",
            "Start the Redis server (or fix the SQLite file's folder) MJ_STATE_URL names, or unset MJ_STATE_URL "
            "for the SQLite file in the state folder.",
        )
    return Check("shared state", "pass", f"{shown} answers")


async def diagnose(settings: Settings, report: Report, *, timeout: float = 15.0) -> None:
    """Run every check of every account in order, adding each to `report` as it finishes; then the shared state."""
    accounts = settings.account_list()
    for account in accounts:
        label = f"[{account.name}] " if len(accounts) > 1 else ""
        await AccountDoctor(settings, account, label, timeout).run(report)
    report.add(await check_shared_state(settings, timeout))


def run_doctor(env: Mapping[str, str] | None = None, out: TextIO | None = None, *, timeout: float = 15.0) -> int:
    """Check the setup; print the report to `out` (stdout); return the exit code (0 all pass, 1 otherwise)."""
    startup = read_startup(env)  # read even when the configuration is broken
    report = Report(out or sys.stdout, [*startup.tokens, startup.http_token or ""])
    # The report says what failed; library warnings on stderr would only repeat it (DEBUG shows everything).
    setup_logging("DEBUG" if startup.log_level == "DEBUG" else "CRITICAL", list(startup.tokens))
    report.say("mcp-midjourney doctor")
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        report.add(
            Check(
                "configuration",
                "fail",
                str(exc),
                "Set the variables named above in the env block of your MCP client's config (see README → "
                "Configuration), then run doctor again with the same variables.",
            )
        )
        for what in ("token", "guild and channel", "gateway session", "command index", "shared state"):
            report.add(Check(what, "skip", "needs a valid configuration"))
    else:
        count = len(settings.account_list())
        accounts = f"{count} accounts" if count > 1 else f"channel {settings.channel_id}"
        report.add(Check("configuration", "pass", f"{accounts}, Discord API {settings.api_base}"))
        anyio.run(lambda: diagnose(settings, report, timeout=timeout))
    if startup.download_dir:
        report.add(check_download_dir(startup.download_dir))
    total = len(report.checks)
    if report.failed:
        report.say(
            f"{report.failed} of {total} checks failed. Fix them from the top: a later check often fails only "
            "because an earlier one did."
        )
        return 1
    skipped = sum(1 for c in report.checks if c.status == "skip")
    report.say(f"All {total - skipped} checks passed." if not skipped else f"{total - skipped} checks passed.")
    return 0
