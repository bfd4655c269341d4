"""What the gateway did not tell us, read back from Discord over REST: the message behind an id this server no
longer holds (after a restart or eviction), the result of a job whose call outlived the server, the reply to a press
made before the server knew the message, a fresh signed image URL, and the messages missed while a session was down.

Recovery only reads and chooses messages; the engine turns them into jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from .. import midjourney as mj
from ..discord.rest import DiscordHTTPError, NotFound
from .accounts import Account, describe_rest_error
from .correlate import as_list, as_text, from_bot, minted_ms
from .errors import EngineError
from .store import JobStore

log = logging.getLogger(__name__)

Message = dict[str, Any]
PAGE = 100  # the most messages one REST read returns


class Recovery:
    """REST read-backs over a pool's accounts."""

    def __init__(self, accounts: Sequence[Account], store: JobStore) -> None:
        self.accounts = accounts
        self.store = store
        self._claimed: dict[str, str] = {}  # result message id -> the earlier id it was found for after a restart

    async def message(self, message_id: str) -> tuple[Account, Message] | None:
        """The Midjourney message with that id in any account's channel; None when no channel has it."""
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
            message.setdefault("channel_id", account.channel_id)
            return account, message
        if last_error is not None:
            raise EngineError(describe_rest_error(last_error))
        return None

    async def orphan_result(self, earlier_id: str) -> tuple[Account, Message] | None:
        """After a restart (or eviction), the result of a job known only by an id Discord no longer has.

        A tool that returned before the result existed gave the job's first message id (deleted when the result
        arrives) or our nonce (which no Discord message carries). The result itself names neither, so look at our
        results made after that id that no other job has claimed: one is the answer; several are listed, so the
        agent can pick by prompt; none means the job failed (Midjourney's errors are visible only to the account,
        and not over REST) or is older than the channel's last 100 messages.
        """
        if minted_ms(earlier_id) is None:
            return None
        found: list[tuple[Account, Message]] = []
        for account in self.accounts:
            if account.down:
                continue
            try:
                page = await account.rest.messages(account.channel_id, limit=PAGE, after=earlier_id)
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
                msg.setdefault("channel_id", account.channel_id)
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
        self._claimed[str(found[0][1].get("id"))] = earlier_id
        while len(self._claimed) > 10_000:
            del self._claimed[next(iter(self._claimed))]
        return found[0]

    async def image_url(self, account: Account, message_id: str) -> str | None:
        """A fresh signed URL of the message's image (Discord's expire after about a day); None if unreadable."""
        try:
            message = await account.rest.message(account.channel_id, message_id)
        except DiscordHTTPError as exc:
            log.info("could not refresh the image URL of %s: %s", message_id, exc)
            return None
        attachments = [a for a in as_list(message.get("attachments")) if isinstance(a, dict)]
        url = attachments[0].get("url") if attachments else None
        return url if isinstance(url, str) else None

    async def earlier_reply(self, account: Account, target: str, index: int | None) -> Message | None:
        """The reply Midjourney made to an earlier press of a U button (image `index`) of message `target`."""
        try:
            page = await account.rest.messages(account.channel_id, limit=PAGE, after=target)
        except DiscordHTTPError as exc:
            log.info("could not look for an earlier result of %s: %s", target, exc)
            return None
        for msg in reversed(page):  # oldest first: the first answer
            reference = msg.get("message_reference")
            if not isinstance(reference, dict) or reference.get("message_id") != target or not from_bot(msg):
                continue
            if mj.parse_content(as_text(msg.get("content"))).image_index != index:
                continue
            msg.setdefault("channel_id", account.channel_id)
            return dict(msg)
        return None

    async def missed(self, account: Account) -> tuple[list[Message], list[str]]:
        """After a lost session: the channel's recent messages (oldest first), and which of our running jobs'
        first messages Discord deleted meanwhile (their results may be on the page with only a prompt to match)."""
        try:
            messages = await account.rest.messages(account.channel_id, limit=PAGE)
        except DiscordHTTPError as exc:
            log.warning("could not reconcile jobs of account %s after a new session: %s", account.name, exc)
            return [], []
        shown = {str(m.get("id")) for m in messages}
        # A full page reaches back only so far: below its oldest message, absent does not mean deleted.
        oldest = min((int(i) for i in shown if i.isdigit()), default=0) if len(messages) >= PAGE else 0
        gone = [
            first
            for job in self.store.running()
            if job.account == account.name
            and (first := job.progress_message_id or "").isdigit()
            and first not in shown
            and int(first) > oldest
        ]
        for msg in messages:
            msg.setdefault("channel_id", account.channel_id)
        return list(reversed(messages)), gone  # Discord returns newest first
