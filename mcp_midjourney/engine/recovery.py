"""What the gateway did not tell us, read back from Discord: jobs behind ids this server no longer holds (after a
restart or eviction), results of presses made before it knew the message, expired image URLs, and the messages
missed while a session was down."""

from __future__ import annotations

import logging
from typing import Any

from .. import midjourney as mj
from ..config import Settings
from ..discord.cdn import url_expired
from ..discord.rest import DiscordHTTPError, NotFound
from .accounts import Account, describe_rest_error
from .budget import Budget
from .correlate import Correlation, as_list, as_text, from_bot, minted_ms
from .scheduler import EngineError
from .store import Job

log = logging.getLogger(__name__)


class Recovery(Correlation):
    """Jobs rebuilt from Discord's messages."""

    def __init__(self, settings: Settings, accounts: list[Account], budget: Budget | None) -> None:
        super().__init__(settings, accounts, budget)
        self._claimed: dict[str, str] = {}  # result message id -> the earlier id it was found for after a restart

    async def get(self, message_id: str, *, refresh: bool = False) -> Job:
        """The job behind any id a tool returned; rebuilt from Discord when the store no longer has it.

        With `refresh`, a finished job whose signed image URL has expired is read again from Discord.
        """
        job = self.store.get(message_id)
        if job is not None:
            if refresh and job.result_message_id and url_expired(job.image_url):
                await self._refresh(job)
            return job
        await self.ready()
        last_error: DiscordHTTPError | None = None
        for account in self.accounts:
            if account.down:
                continue
            try:
                message = await account.rest.message(account.channel_id, message_id)
            except NotFound:
                continue
            except DiscordHTTPError as exc:
                last_error = exc
                continue
            if not from_bot(message):
                raise EngineError(f"Message {message_id} is not a Midjourney message.")
            return self.store.get(message_id) or self._rebuild(account, message)
        if last_error is not None:
            raise EngineError(describe_rest_error(last_error))
        successor = await self._successor(message_id)
        if successor is not None:
            return successor
        raise EngineError(f"No message {message_id} in the Midjourney channel. Use the message_id a tool returned.")

    async def _successor(self, earlier_id: str) -> Job | None:
        """After a restart (or eviction), the finished job behind an id Discord no longer knows.

        A tool that returned before the result existed gave the job's first message id (deleted when the result
        arrives) or our nonce (which no Discord message carries). The result itself names neither, so look at our
        results made after that id that no other job has claimed: one is the answer; several are listed, so the
        agent can pick by prompt; none means the job failed (Midjourney's errors are visible only to the account,
        and not over REST) or is older than the channel's last 100 messages.
        """
        if minted_ms(earlier_id) is None:
            return None
        found: list[tuple[Account, dict[str, Any]]] = []
        for account in self.accounts:
            if account.down:
                continue
            try:
                page = await account.rest.messages(account.channel_id, limit=100, after=earlier_id)
            except DiscordHTTPError as exc:
                log.info("could not look for the result of %s: %s", earlier_id, exc)
                continue
            me = account.gateway.user_id
            for msg in reversed(page):  # oldest first
                content = mj.parse_content(as_text(msg.get("content")))
                files = [a for a in as_list(msg.get("attachments")) if isinstance(a, dict)]
                if not from_bot(msg) or content.state != "done":
                    continue
                if (me and content.user_id != me) or not files or str(msg.get("id")) in self._claimed:
                    continue
                known = self.store.get(str(msg.get("id")))
                if known is not None and known.nonce != known.result_message_id:
                    continue  # the result of a job this server ran itself: not an orphan
                found.append((account, msg))
        if len(found) > 1:
            prompts = [(m.get("id"), mj.parse_content(as_text(m.get("content"))).prompt or "") for _, m in found[:8]]
            listing = "; ".join(f"{i} ({p[:60]!r})" for i, p in prompts)
            raise EngineError(
                f"Message {earlier_id} was a job still running when this server last answered; it restarted since, "
                f"and Discord does not say which result it became. Our results made after it: {listing}. Call "
                "get_message with the one whose prompt is yours."
            )
        if not found:
            return None
        account, msg = found[0]
        result_id = str(msg.get("id"))
        job = self.store.get(result_id) or self._rebuild(account, msg)
        self._claimed[result_id] = earlier_id
        while len(self._claimed) > 10_000:
            del self._claimed[next(iter(self._claimed))]
        self.store.index(job, earlier_id)
        return job

    async def _refresh(self, job: Job) -> None:
        """Discord CDN URLs expire after about a day: read the result message again for fresh ones."""
        account = self.account(job.account)
        try:
            message = await account.rest.message(account.channel_id, str(job.result_message_id))
        except DiscordHTTPError as exc:
            log.info("could not refresh the image URL of %s: %s", job.handle, exc)
            return
        attachments = [a for a in as_list(message.get("attachments")) if isinstance(a, dict)]
        if attachments and isinstance(attachments[0].get("url"), str):
            old = job.image_url
            job.image_url = attachments[0]["url"]
            job.image_urls = [job.image_url if u == old else u for u in job.image_urls]

    async def _earlier_reply(self, parent: Job, target: str, button_name: str, index: int | None) -> Job | None:
        """The reply Midjourney made to an earlier press of a U button of `target`, read back from Discord."""
        account = self.account(parent.account)
        try:
            page = await account.rest.messages(account.channel_id, limit=100, after=target)
        except DiscordHTTPError as exc:
            log.info("could not look for an earlier %s result of %s: %s", button_name, target, exc)
            return None
        for msg in reversed(page):  # oldest first: the first answer
            reference = msg.get("message_reference")
            if not isinstance(reference, dict) or reference.get("message_id") != target or not from_bot(msg):
                continue
            if mj.parse_content(as_text(msg.get("content"))).image_index != index:
                continue
            job = self.store.get(str(msg.get("id"))) or self._rebuild(account, msg)
            job.parent_button = job.parent_button or button_name
            self.store.index(job, f"press:{target}:{button_name}")
            return job
        return None

    def _earlier_press(self, message_id: str, button_name: str) -> Job | None:
        for job in self.store.running():
            if job.parent_message_id == message_id and job.parent_button == button_name:
                return job
        key = f"press:{message_id}:{button_name}"
        return self.store.get(key)

    def _rebuild(self, account: Account, msg: dict[str, Any]) -> Job:
        """A job from a Discord message alone (after a restart or eviction)."""
        content = mj.parse_content(as_text(msg.get("content")))
        job = Job(
            nonce=str(msg.get("id")),
            kind=content.kind if content.kind != "unknown" else "imagine",
            prompt=content.prompt or "",
            normalised_prompt=mj.normalise_prompt(content.prompt or ""),
        )
        job.account = account.name
        reference = msg.get("message_reference")
        if isinstance(reference, dict):
            job.parent_message_id = reference.get("message_id")
        self.store.add(job)
        msg.setdefault("channel_id", account.channel_id)
        self._on_message(account, msg)
        if job.in_flight and not job.progress_message_id:
            job.progress_message_id = job.nonce
        me = account.gateway.user_id
        if not me or me not in as_text(msg.get("content")):
            # Another user's message: the gateway would skip its later events (edits, its result) unread.
            account.keep(job.nonce, job.job_uuid)
        return job

    def _on_ready(self, account: Account, reconnected: bool) -> None:
        if self._tg is None:
            return
        if reconnected and any(j.submitted and j.account == account.name for j in self.store.running()):
            self._tg.start_soon(self.reconcile, account)
        self._pump()

    async def reconcile(self, account: Account) -> None:
        """After a lost session: read the channel's recent messages and apply what we missed."""
        try:
            messages = await account.rest.messages(account.channel_id, limit=100)
        except DiscordHTTPError as exc:
            log.warning("could not reconcile jobs of account %s after a new session: %s", account.name, exc)
            return
        # Our jobs' messages missing from the page were deleted: their results may be on it, with nothing but the
        # prompt to say whose they are (the uuid came only in the progress updates we missed).
        shown = {str(m.get("id")) for m in messages}
        # A full page reaches back only so far: below its oldest message, absent does not mean deleted.
        oldest = min((int(i) for i in shown if i.isdigit()), default=0) if len(messages) >= 100 else 0
        for job in self.store.running():
            first = job.progress_message_id or ""
            if job.account == account.name and first.isdigit() and first not in shown and int(first) > oldest:
                self._mark_gone(first)
        for msg in reversed(messages):  # Discord returns newest first
            msg.setdefault("channel_id", account.channel_id)
            self.dispatch_from(account, "MESSAGE_CREATE", msg)  # the same checks as a live event; never raises
