"""Which job a Discord event belongs to, and what it does to it (protocol.md §3).

Gateway dispatches come in for every message of the channel, most of them other users' jobs. Our own are found by
the strongest evidence they carry — our nonce, the interaction's id, a message id we know, the job's uuid — and
only as a last resort by a reply's parent or the prompt. The messages then move the job: waiting, progress,
the result with its images and buttons, an answer in words, or Midjourney's error.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from .. import midjourney as mj
from ..config import Settings
from ..midjourney.results import describe_prompts, parse_info, parse_modal, shorten_prompts
from ..models import MIDJOURNEY_BOT_ID, NIJI_BOT_ID, JobStatus
from .accounts import Account
from .budget import Budget
from .scheduler import Scheduling
from .store import Job

log = logging.getLogger(__name__)

BOT_IDS = frozenset({MIDJOURNEY_BOT_ID, NIJI_BOT_ID})
WANTED_EVENTS = frozenset(
    {
        "MESSAGE_CREATE",
        "MESSAGE_UPDATE",
        "MESSAGE_DELETE",
        "INTERACTION_CREATE",
        "INTERACTION_SUCCESS",
        "INTERACTION_FAILURE",
        "INTERACTION_MODAL_CREATE",
        "INTERACTION_IFRAME_MODAL_CREATE",
    }
)
# Jobs whose result is words, not images.
TEXT_KINDS = frozenset({"describe", "shorten", "info", "fast", "relax", "turbo", "settings", "prefer"})
# Presses whose only effect is Discord's acknowledgement.
SIDE_EFFECTS = frozenset({"bookmark", "cancel"})


def from_bot(msg: dict[str, Any]) -> bool:
    """Whether a message's author is the Midjourney (or niji) bot; False for anything malformed."""
    author = msg.get("author")
    return isinstance(author, dict) and isinstance(author.get("id"), str) and author["id"] in BOT_IDS


def as_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def minted_ms(snowflake: object) -> int | None:
    """Milliseconds (since Discord's epoch) at which a snowflake was made; None for anything else."""
    if isinstance(snowflake, str) and snowflake.isdigit():
        return int(snowflake) >> 22
    return None


def _could_answer(job: Job, message_ms: int | None) -> bool:
    """Whether a message made at `message_ms` can be an answer to the job (not older than its interaction)."""
    if message_ms is None:
        return True
    discord = minted_ms(job.interaction_id)  # Discord's own clock: exact
    if discord is not None:
        return message_ms >= discord
    ours = minted_ms(job.nonce)  # our clock: allow for skew
    return ours is None or message_ms >= ours - 5_000


def _grid(buttons: list[Any]) -> bool:
    names = {b.name for b in buttons}
    return {"U1", "U2", "U3", "U4"} <= names


class Correlation(Scheduling):
    """Gateway events applied to the jobs they belong to."""

    def __init__(self, settings: Settings, accounts: list[Account], budget: Budget | None) -> None:
        super().__init__(settings, accounts, budget)
        self.events_handled = 0
        self._gone: OrderedDict[str, None] = OrderedDict()  # our jobs' messages Discord deleted (bounded)

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Handle one dispatch as the first account's gateway would deliver it."""
        self.dispatch_from(self.accounts[0], event, data)

    def dispatch_from(self, account: Account, event: str, data: dict[str, Any]) -> None:
        """Handle one gateway dispatch of an account. Cheap for the events of others; never raises."""
        self.events_handled += 1
        if event.startswith("INTERACTION"):
            self._on_interaction(event, data)
            return
        if data.get("channel_id") != account.channel_id:
            return
        if event == "MESSAGE_DELETE":
            # The progress message is deleted just before the result arrives: remember it, so a result that
            # carries nothing but its prompt can still find its job (see `_correlate`).
            deleted = data.get("id")
            if isinstance(deleted, str) and self.store.get(deleted) is not None:
                self._mark_gone(deleted)
            return
        author = data.get("author")
        if isinstance(author, dict):
            if not from_bot(data):
                return
        elif event != "MESSAGE_UPDATE" or self.store.get(str(data.get("id"))) is None:
            return  # partial updates carry no author: only those of known messages matter
        try:
            self._on_message(account, data)
        except Exception:
            log.exception("could not apply a Midjourney message to its job")

    def _on_interaction(self, event: str, data: dict[str, Any]) -> None:
        nonce = data.get("nonce")
        job = self.store.get(nonce) if isinstance(nonce, str) else None
        if job is None:
            return
        interaction_id = data.get("id")
        if isinstance(interaction_id, str):
            job.interaction_id = interaction_id
            self.store.index(job, interaction_id)
        if event == "INTERACTION_FAILURE":
            code = data.get("reason_code")
            self._finish(
                job,
                error=f"Discord reported that the interaction failed (reason code {code}): Midjourney did not accept "
                "it. The button may have expired or the bot may be down; try again, or start a new imagine.",
            )
        elif event in ("INTERACTION_MODAL_CREATE", "INTERACTION_IFRAME_MODAL_CREATE"):
            modal = parse_modal(data, iframe=event == "INTERACTION_IFRAME_MODAL_CREATE")
            if modal is not None and job.in_flight:
                job.modal = modal
                job.status = JobStatus.NEEDS_INPUT
                job.touch()
        elif event == "INTERACTION_SUCCESS":
            if job.kind in SIDE_EFFECTS and job.in_flight:
                # A bookmark or a cancel makes no message of its own: Discord's acknowledgement is the result.
                job.note = f"{job.parent_button or job.kind} pressed"
                self._finish(job)
            else:
                job.touch()

    def _correlate(self, account: Account, msg: dict[str, Any]) -> Job | None:
        """Find the job a bot message belongs to, strongest evidence first (protocol.md §3)."""
        store = self.store
        nonce = msg.get("nonce")
        if isinstance(nonce, str) and (job := store.get(nonce)):
            return job
        for key in ("interaction_metadata", "interaction"):
            meta = msg.get(key)
            if isinstance(meta, dict) and isinstance(meta.get("id"), str) and (job := store.get(meta["id"])):
                return job
        message_id = msg.get("id")
        if isinstance(message_id, str) and (job := store.get(message_id)):
            return job
        uuid = mj.message_job_uuid(msg)
        if uuid and (job := store.by_uuid(uuid)) and job.in_flight:
            return job
        text = as_text(msg.get("content"))
        me = account.gateway.user_id
        if me and "<@" in text and f"<@{me}>" not in text and f"<@!{me}>" not in text:
            # Names someone and never us: another user's job. Most of a busy channel; parsing it cost ~14 µs.
            return None
        content = mj.parse_content(text)
        if content.user_id and me and content.user_id != me:
            return None  # another user's job in the same channel
        reference = msg.get("message_reference")
        parent_id = reference.get("message_id") if isinstance(reference, dict) else None
        # A message that names an interaction we do not know can only be a job's whose interaction we never saw.
        unknown_interaction = any(
            isinstance(meta, dict) and isinstance(meta.get("id"), str)
            for meta in (msg.get("interaction_metadata"), msg.get("interaction"))
        )
        made = minted_ms(message_id)
        candidates = sorted(
            (
                j
                for j in store.running()
                if j.submitted
                and j.result_message_id is None
                and j.account in (None, account.name)
                and j.job_uuid is None  # a job whose uuid we know is matched by it, not guessed
                and not (unknown_interaction and j.interaction_id)
                and (j.progress_message_id is None or j.progress_message_id in self._gone)
                and _could_answer(j, made)
            ),
            key=lambda j: j.created,
        )
        if parent_id:
            for job in candidates:
                if job.parent_message_id != parent_id:
                    continue
                if job.parent_index is None or content.image_index in (None, job.parent_index):
                    return job
        if content.prompt is not None:
            # Last resort: the oldest running job of ours with the same prompt that has no message of its own (or
            # whose message Discord deleted, as it does just before the result).
            wanted = mj.normalise_prompt(content.prompt)
            for job in candidates:
                if job.normalised_prompt == wanted and not (parent_id and job.parent_message_id != parent_id):
                    return job
        return None

    def _mark_gone(self, message_id: str) -> None:
        self._gone[message_id] = None
        while len(self._gone) > 10_000:
            self._gone.popitem(last=False)

    def _on_message(self, account: Account, msg: dict[str, Any]) -> None:
        job = self._correlate(account, msg)
        if job is None or job.account not in (None, account.name):
            return  # accounts sharing a channel each see every message: only the owner's counts
        message_id = str(msg.get("id"))
        if job.status.finished and message_id != job.result_message_id:
            return  # a finished job only accepts updates of its own result message
        self.store.index(job, message_id)
        if job.account is None:
            job.account = account.name
        if isinstance(msg.get("flags"), int):
            job.message_flags = msg["flags"]
        uuid = mj.message_job_uuid(msg)
        if uuid and job.job_uuid is None:
            self.store.index_uuid(job, uuid)
            if not job.submitted:  # a job rebuilt from a message (maybe another user's): its result names the uuid
                account.keep(uuid)

        verdict = mj.classify_embeds(as_list(msg.get("embeds")))
        if verdict is not None:
            if verdict.category == "queued":
                job.status = JobStatus.QUEUED
                job.queued_note = "Midjourney queued the job: the account is at its concurrency limit"
                job.touch()
                return
            if verdict.fails_job:
                reason = f"{verdict.title}: {verdict.description}".strip().rstrip(":")
                self._finish(job, error=f"Midjourney refused the job. {reason}")
                if verdict.account_problem:
                    # Held, not dead: jobs already running carry on (their results still come); new work waits
                    # for another account, or fails saying what a person must do.
                    account.hold(f"{reason} ({mj.account_advice(verdict)})")
                    log.warning("account %s held by Midjourney: %s", account.name, verdict.title)
                    self._pump()
                return
        content_text = as_text(msg.get("content"))
        failure = mj.plain_failure(content_text)
        if failure:
            self._finish(job, error=f"Midjourney could not run the job: {failure}")
            return
        if job.kind in TEXT_KINDS:
            self._text_result(job, msg, content_text)
            return
        content = mj.parse_content(content_text)
        attachments = [a for a in as_list(msg.get("attachments")) if isinstance(a, dict)]
        final_image = next((a for a in attachments if not mj.is_progress_attachment(str(a.get("filename", "")))), None)
        done = content.state == "done" or (content.image_index is not None and content.state == "unknown")
        if done and final_image is not None:
            self._complete(job, msg, final_image)
        elif content.state == "waiting":
            job.progress_message_id = job.progress_message_id or message_id
            if job.status is not JobStatus.IN_PROGRESS:  # a late or repeated first message never goes back
                job.status = JobStatus.QUEUED
            job.touch()
        elif content.state == "progress":
            job.progress_message_id = job.progress_message_id or message_id
            job.status = JobStatus.IN_PROGRESS
            job.queued_note = None
            job.progress = max(job.progress, min(99, content.progress or 0))
            if msg.get("components"):
                job.progress_buttons = mj.parse_buttons(as_list(msg.get("components")))
            if attachments:
                job.preview_url = attachments[0].get("url") or job.preview_url
            job.touch()
        elif content.state == "stopped":
            self._finish(job, error="Midjourney stopped the job before it finished (cancelled or refused).")
        elif content.state == "paused":
            job.status = JobStatus.QUEUED
            job.queued_note = "Midjourney paused the job (relax queue)"
            job.touch()

    def _text_result(self, job: Job, msg: dict[str, Any], content: str) -> None:
        """Answers in words: /describe's and /shorten's prompts, /info's facts, a mode switch's reply."""
        job.progress_message_id = job.progress_message_id or str(msg.get("id"))
        if job.kind == "describe":
            job.prompts = describe_prompts(msg)
            done = bool(job.prompts)
        elif job.kind == "shorten":
            job.prompts = shorten_prompts(msg)
            done = bool(job.prompts)
        elif job.kind == "info":
            job.info = parse_info(msg)
            done = job.info is not None
            if done:
                self.account(job.account).info = job.info
        else:
            job.note = content.strip() or None
            done = job.note is not None
        if not done:
            job.status = JobStatus.IN_PROGRESS
            job.touch()
            return
        job.result_message_id = str(msg.get("id"))
        self.store.index(job, job.result_message_id)
        job.buttons = mj.parse_buttons(as_list(msg.get("components")))
        image = next((e.get("image") for e in as_list(msg.get("embeds")) if isinstance(e, dict)), None)
        if isinstance(image, dict) and isinstance(image.get("url"), str):
            job.image_url = image["url"]
        self._finish(job)

    def _complete(self, job: Job, msg: dict[str, Any], image: dict[str, Any]) -> None:
        job.result_message_id = str(msg.get("id"))
        self.store.index(job, job.result_message_id)
        job.image_url = image.get("url")
        job.buttons = mj.parse_buttons(as_list(msg.get("components")))
        uuid = job.job_uuid
        if uuid and _grid(job.buttons):
            base = self.settings.cdn_base
            job.image_urls = [f"{base}/{uuid}/0_{i}.png" for i in range(4)]
        else:
            job.image_urls = [job.image_url] if job.image_url else []
        job.preview_url = None
        job.queued_note = None
        if job.parent_message_id and job.parent_button:
            self.store.index(job, f"press:{job.parent_message_id}:{job.parent_button}")
        owner = self.account(job.account)
        if job.submitted and owner.problem_at is not None and job.created > owner.problem_at:
            owner.cleared()  # a job sent after Midjourney held the account succeeded: the hold is over
        self._finish(job)
