"""The accounts of the pool: each its own REST client, gateway session, channel, slots and health."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..config import AccountSettings, Settings
from ..discord.gateway import Gateway
from ..discord.rest import DiscordHTTPError, DiscordRest
from ..midjourney import CommandNotFound, attachment_ref, find_command
from .prefilter import FramePrefilter

# How long an account Midjourney held (captcha, moderation, billing) rests before it is tried again.
PROBLEM_RETRY_SECONDS = 300.0

Dispatch = Callable[["Account", str, dict[str, Any]], None]
ReadyHook = Callable[["Account", bool], None]


class AccountError(Exception):
    """An account cannot do what was asked; the message says why and what to do."""


class Account:
    """One Discord account driving Midjourney in one channel."""

    def __init__(
        self,
        index: int,
        spec: AccountSettings,
        settings: Settings,
        *,
        dispatch: Dispatch,
        on_ready: ReadyHook,
        wanted_events: frozenset[str],
        authors: frozenset[str] = frozenset(),
        transport: Any = None,
    ) -> None:
        self.index = index
        self.spec = spec
        self.name = spec.name
        self.rest = DiscordRest(
            settings.api_base,
            spec.token,
            interaction_interval=settings.interaction_interval,
            transport=transport,
        )
        # The engine's rule for frames it would drop anyway, handed to the gateway (which knows no Midjourney).
        self.prefilter = FramePrefilter(
            spec.channel_id, authors=authors, wanted_events=wanted_events, user_id=lambda: self.gateway.user_id
        )
        self.gateway = Gateway(
            self.rest,
            spec.token,
            on_dispatch=lambda event, data: dispatch(self, event, data),
            on_ready=lambda reconnected: on_ready(self, reconnected),
            wanted_events=wanted_events,
            prefilter=self.prefilter.skips,
        )
        self.application_id = settings.application_id
        self.active = 0  # jobs of ours in flight on Discord for this account
        self.problem: str | None = None  # account-level trouble Midjourney reported (captcha, credits, ban...)
        self.problem_at: float | None = None  # when; the account is tried again PROBLEM_RETRY_SECONDS later
        self._commands: dict[str, Any] | None = None
        self.jobs_sent = 0
        self.info: dict[str, Any] | None = None  # the last /info, for low-fast-time warnings

    @property
    def low_fast_time(self) -> str | None:
        """A warning when the last /info showed fast time running out, else None."""
        if not self.info or self.info.get("mode") not in (None, "fast", "turbo"):
            return None
        hours, percent = self.info.get("fast_hours_left"), self.info.get("fast_percent_left")
        if (isinstance(hours, float) and hours < 1.0) or (isinstance(percent, float) and percent < 10.0):
            return (
                f"account {self.name!r} has {hours if hours is not None else '?'} fast hours left: switch to relax "
                "with account(action='relax') or slow down."
            )
        return None

    @property
    def channel_id(self) -> str:
        return self.spec.channel_id

    @property
    def guild_id(self) -> str | None:
        return self.spec.guild_id

    @property
    def capacity(self) -> int:
        """How many jobs may be in flight on Discord at once: Midjourney's running slots plus its queue."""
        return self.spec.concurrency + self.spec.queue_size

    @property
    def down(self) -> str | None:
        """Why the account takes no work at all, or None."""
        if self.gateway.fatal:
            return self.gateway.fatal
        if self.problem and self.problem_at is not None and time.monotonic() - self.problem_at > PROBLEM_RETRY_SECONDS:
            return None  # held long enough: maybe a person fixed it; the next job will tell
        return self.problem

    @property
    def trouble(self) -> str | None:
        """Account trouble the agent must hear about (until a job succeeds on the account again), or None."""
        return self.gateway.fatal or self.problem

    def hold(self, reason: str) -> None:
        """Midjourney said the account needs a person: take no new work on it for a while."""
        self.problem, self.problem_at = reason, time.monotonic()

    def cleared(self) -> None:
        """A job succeeded on the account: whatever held it is over."""
        self.problem = self.problem_at = None

    def keep(self, *ids: str | None) -> None:
        """Follow messages that do not name our user (another user's job looked up by id, its job uuid): the
        gateway's pre-filter must never skip their frames."""
        self.prefilter.keep(*ids)

    @property
    def usable(self) -> bool:
        return self.down is None and self.gateway.ready

    @property
    def has_slot(self) -> bool:
        return self.active < self.capacity

    async def command(self, name: str, *, refresh: bool = False) -> dict[str, Any]:
        """A slash command as the command index gives it now (read once, refreshed when Discord says stale)."""
        if self._commands is None or refresh:
            try:
                self._commands = await self.rest.command_index(guild_id=self.guild_id, channel_id=self.channel_id)
            except DiscordHTTPError as exc:
                raise AccountError(describe_rest_error(exc, self)) from None
        try:
            return find_command(self._commands, name, self.application_id)
        except CommandNotFound:
            raise AccountError(
                f"Midjourney's /{name} command is not available in the channel of account {self.name!r}. Is the "
                "Midjourney bot in that server, and can the account use it in that channel?"
            ) from None

    async def upload(self, files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        """Upload files in this account's channel; the attachment references a command's options point at."""
        return [
            attachment_ref(i, filename, await self.rest.upload(self.channel_id, filename, data))
            for i, (filename, data) in enumerate(files)
        ]

    async def post_image(self, filename: str, data: bytes) -> str | None:
        """Post an image in this account's channel: its CDN URL, which Midjourney can read (None if none came)."""
        uploaded = await self.rest.upload(self.channel_id, filename, data)
        message = await self.rest.post_message(
            self.channel_id, "", [{"id": "0", "filename": filename, "uploaded_filename": uploaded}]
        )
        attachments = message.get("attachments") or []
        url = attachments[0].get("url") if attachments and isinstance(attachments[0], dict) else None
        return url if isinstance(url, str) else None

    def status(self) -> dict[str, Any]:
        """What the agent may see of this account (never its token)."""
        return {
            "name": self.name,
            "channel_id": self.channel_id,
            "connected": self.gateway.ready,
            "healthy": self.trouble is None,
            "problem": self.trouble,
            "jobs_in_flight": self.active,
            "capacity": self.capacity,
            "jobs_sent": self.jobs_sent,
        }


def describe_rest_error(exc: DiscordHTTPError, account: Account | None = None) -> str:
    """Words for the model about a Discord REST error."""
    from ..discord.rest import Forbidden, NotFound, Unauthorized

    who = f" (account {account.name!r})" if account is not None else ""
    channel = account.channel_id if account is not None else "the configured channel"
    if isinstance(exc, Unauthorized):
        return f"Discord rejected the token{who} (401). Set MJ_DISCORD_TOKEN to a valid user token and restart."
    if isinstance(exc, Forbidden):
        return (
            f"The account has no access to channel {channel}{who} (403). Check MJ_CHANNEL_ID and MJ_GUILD_ID, "
            "and that the account can post there."
        )
    if isinstance(exc, NotFound):
        return f"Discord says the channel or guild does not exist{who} (404). Check MJ_CHANNEL_ID and MJ_GUILD_ID."
    return f"Discord error{who}: {exc}. Try again in a moment."
