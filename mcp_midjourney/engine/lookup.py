"""Finding jobs: the job behind any id a tool returned (the store first, then Discord), the button a press means,
and a press Midjourney already answered (a second press of a used U button gets no answer at all)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from .. import midjourney as mj
from ..discord.cdn import url_expired
from ..midjourney import ButtonAction
from ..models import Button
from .accounts import Account
from .correlate import press_key
from .errors import EngineError
from .events import Events
from .recovery import Recovery
from .store import Job, JobStore


def choose_button(parent: Job, button: str, message_id: str) -> tuple[Button, ButtonAction, str]:
    """The button of `parent` that `button` names, what pressing it makes, and the message that carries it."""
    buttons = parent.buttons or (parent.progress_buttons if parent.in_flight else [])
    if not buttons:
        if parent.in_flight:
            raise EngineError(
                f"Message {message_id} is a job still running ({parent.status.value}, {parent.progress}%): it has "
                f"no buttons yet. Wait with get_message(message_id='{parent.handle}', wait_seconds=25)."
            )
        raise EngineError(f"Message {message_id} has no buttons to press ({parent.error or 'no result'}).")
    chosen = mj.find_button(buttons, button)
    if chosen is None:
        listing = ", ".join(f"{b.label} ({b.name})" if b.label != b.name else b.name for b in buttons)
        raise EngineError(f"Message {parent.handle} has no button {button!r}. Its buttons are: {listing}.")
    target = parent.result_message_id or parent.progress_message_id or message_id
    return chosen, mj.button_action(chosen.custom_id), target


class Lookup:
    """Jobs by id, from the store or rebuilt from Discord's messages."""

    def __init__(
        self,
        store: JobStore,
        recovery: Recovery,
        events: Events,
        accounts: Sequence[Account],
        ready: Callable[[], Awaitable[None]],
        shared: Callable[[str], Awaitable[Job | None]] | None = None,
    ) -> None:
        self._shared = shared  # a job another server shares under that id (state_jobs.py)
        self.store = store
        self.recovery = recovery
        self.events = events
        self.accounts = accounts
        self._ready = ready

    def _account(self, name: str | None) -> Account:
        return next((a for a in self.accounts if a.name == name), self.accounts[0])

    async def get(self, message_id: str, *, refresh: bool = False) -> Job:
        """The job behind an id; with `refresh`, a finished job's expired signed image URL is read afresh."""
        job = self.store.get(message_id)
        if job is not None:
            if refresh and job.result_message_id and url_expired(job.image_url):
                url = await self.recovery.image_url(self._account(job.account), job.result_message_id)
                if url is not None:
                    old, job.image_url = job.image_url, url
                    job.image_urls = [url if u == old else u for u in job.image_urls]
            return job
        if self._shared is not None and (job := await self._shared(message_id)) is not None:
            return job
        await self._ready()
        found = await self.recovery.message(message_id)
        if found is not None:
            return self.store.get(message_id) or self.events.rebuild(*found)
        orphan = await self.recovery.orphan_result(message_id)
        if orphan is None:
            raise EngineError(f"No message {message_id} in the Midjourney channel. Use the message_id a tool returned.")
        job = self.events.rebuild(*orphan)
        self.store.index(job, message_id)
        return job

    async def earlier_upscale(self, parent: Job, target: str, button: Button, index: int | None) -> Job | None:
        """The result of an earlier press of this U button of `target`, if there was one; raises when Discord shows
        the button used and its result cannot be found (a new press would get no answer)."""
        for job in self.store.running():
            if job.parent_message_id == target and job.parent_button == button.name:
                return job
        earlier = self.store.get(press_key(target, button.name))
        if earlier is None and self._shared is not None:
            earlier = await self._shared(press_key(target, button.name))  # pressed through another server
        if earlier is None and (mj.button_used(button) or parent.nonce == parent.result_message_id):
            # Pressed before this server knew the message (a restart): Discord has the answer, as a reply.
            earlier = await self._earlier_reply(parent, target, button.name, index)
        if earlier is None and mj.button_used(button):
            raise EngineError(
                f"{button.name} was already used on message {target}, and Midjourney does not answer a second "
                "press. Its result is not among the channel's last 100 messages: find it in Discord, or pick "
                "another image."
            )
        return earlier

    async def _earlier_reply(self, parent: Job, target: str, button_name: str, index: int | None) -> Job | None:
        account = self._account(parent.account)
        msg = await self.recovery.earlier_reply(account, target, index)
        if msg is None:
            return None
        job = self.events.rebuild(account, msg)
        job.parent_button = job.parent_button or button_name
        self.store.index(job, press_key(target, button_name))
        return job
