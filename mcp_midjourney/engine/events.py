"""Gateway events applied to jobs: the dispatcher every account's gateway calls, and jobs rebuilt from messages.

It is handed the job store and two actions of the engine (end a job; hand free slots on) and nothing else:
correlation decides (pure, in correlate.py), this carries the decision out on the account that saw the event.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .. import midjourney as mj
from . import correlate
from .accounts import Account
from .correlate import Effect, as_text
from .recovery import Recovery
from .store import Job, JobStore

log = logging.getLogger(__name__)

EndJob = Callable[[Job, "str | None"], None]
MAX_GONE = 10_000


class Events:
    """Applies each account's gateway dispatches to the jobs they belong to."""

    def __init__(self, store: JobStore, *, cdn_base: str, end: EndJob, pump: Callable[[], None]) -> None:
        self.store = store
        self.cdn_base = cdn_base
        self._end = end
        self._pump = pump
        self.handled = 0
        self._gone: OrderedDict[str, None] = OrderedDict()  # our jobs' first messages Discord deleted (bounded)
        # Interactions of this account that another server (or the Discord app) sent, and the messages and job
        # uuids of their jobs: every session of a user hears of every interaction of it, with its nonce, so an
        # interaction whose nonce is not ours is another sender's, and so are the messages that answer it. Never
        # matched to our jobs by their prompt (two servers on one account run the very same prompts).
        self._foreign: OrderedDict[str, None] = OrderedDict()

    def dispatch_from(self, account: Account, event: str, data: dict[str, Any]) -> None:
        """Handle one gateway dispatch of an account. Cheap for the events of others; never raises."""
        self.handled += 1
        try:
            if event.startswith("INTERACTION"):
                nonce = data.get("nonce")
                job = self.store.get(nonce) if isinstance(nonce, str) else None
                if job is not None:
                    self._apply(account, job, correlate.apply_interaction(self.store, job, event, data))
                elif isinstance(data.get("id"), str):
                    self._remember_foreign(data["id"])
                return
            if data.get("channel_id") != account.channel_id:
                return
            if event == "MESSAGE_DELETE":
                # The first message is deleted just before the result arrives: remember it, so a result that
                # carries nothing but its prompt can still find its job.
                deleted = data.get("id")
                if isinstance(deleted, str) and self.store.get(deleted) is not None:
                    self.mark_gone(deleted)
                return
            if not correlate.relevant(event, data, self.store):
                return
            if self._is_foreign(data):
                return
            user = account.gateway.user_id
            job = correlate.find_job(self.store, data, account=account.name, user_id=user, gone=self._gone)
            if job is None or job.account not in (None, account.name):
                return  # accounts sharing a channel each see every message: only the owner's counts
            self._apply(account, job, self._message(account, job, data))
        except Exception:
            log.exception("could not apply a Discord event to its job")

    def _message(self, account: Account, job: Job, msg: dict[str, Any]) -> Effect:
        return correlate.apply_message(self.store, job, msg, account=account.name, cdn_base=self.cdn_base)

    def _apply(self, account: Account, job: Job, effect: Effect) -> None:
        """Carry out what an event asked beyond the job's own state."""
        if effect.follow:
            account.keep(*effect.follow)
        if effect.info is not None:
            account.info = effect.info
        if effect.succeeded and job.submitted and account.problem_at is not None and job.created > account.problem_at:
            account.cleared()  # a job sent after Midjourney held the account succeeded: the hold is over
        if effect.ended:
            self._end(job, effect.error)
        if effect.hold:
            # Held, not dead: jobs already running carry on; new work waits for another account, or fails.
            account.hold(effect.hold)
            log.warning("account %s held by Midjourney: %s", account.name, effect.hold)
            self._pump()

    def _is_foreign(self, msg: dict[str, Any]) -> bool:
        """Whether a message answers another sender's interaction (and none of our jobs knows it); its id and
        job uuid are remembered as foreign then, for the job's later messages."""
        message_id, uuid = msg.get("id"), mj.message_job_uuid(msg)
        if (isinstance(message_id, str) and self.store.get(message_id)) or (uuid and self.store.by_uuid(uuid)):
            return False
        metas = [msg.get("interaction_metadata"), msg.get("interaction")]
        ids = [m["id"] for m in metas if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if any(self.store.get(i) for i in ids):
            return False
        nonce = msg.get("nonce")
        if isinstance(nonce, str) and nonce and self.store.get(nonce) is None:
            pass  # the bot answers an interaction with its nonce: one we did not send
        elif not any(i in self._foreign for i in [*ids, message_id, uuid] if isinstance(i, str)):
            return False
        self._remember_foreign(message_id if isinstance(message_id, str) else None, uuid)
        return True

    def _remember_foreign(self, *ids: str | None) -> None:
        for key in ids:
            if key:
                self._foreign[key] = None
        while len(self._foreign) > MAX_GONE:
            self._foreign.popitem(last=False)

    def mark_gone(self, message_id: str) -> None:
        """Discord deleted this first message of one of our jobs."""
        self._gone[message_id] = None
        while len(self._gone) > MAX_GONE:
            self._gone.popitem(last=False)

    async def reconcile(self, account: Account, recovery: Recovery) -> None:
        """After a lost session: apply what the channel's recent messages say that the gateway did not."""
        messages, gone = await recovery.missed(account)
        for message_id in gone:
            self.mark_gone(message_id)
        for msg in messages:
            self.dispatch_from(account, "MESSAGE_CREATE", msg)  # the same checks as a live event

    def rebuild(self, account: Account, msg: dict[str, Any]) -> Job:
        """A job from a Discord message alone (after a restart or eviction), or the one the store has for it."""
        known = self.store.get(str(msg.get("id")))
        if known is not None:
            return known
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
        self._apply(account, job, self._message(account, job, msg))
        if job.in_flight and not job.progress_message_id:
            job.progress_message_id = job.nonce
        me = account.gateway.user_id
        if not me or me not in as_text(msg.get("content")):
            # Another user's message: the gateway would skip its later events (edits, its result) unread.
            account.keep(job.nonce, job.job_uuid)
        return job
