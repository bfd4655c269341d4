"""Correlation, pure: which job a gateway event belongs to, and what the event does to it.

No engine, no network: `find_job` reads a job index (the store) and a message; `apply_message` and
`apply_interaction` move a job's state and return an `Effect` the engine carries out (end the job, hold the
account, remember /info, follow another user's message). Tested on the real captures alone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from .. import midjourney as mj
from ..midjourney.results import describe_prompts, parse_info, parse_modal, shorten_prompts
from ..models import MIDJOURNEY_BOT_ID, NIJI_BOT_ID, JobStatus
from .store import Job, JobStore

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
SIDE_EFFECTS = frozenset({"bookmark", "cancel", "appeal"})


@dataclass
class Effect:
    """What an event asks of the engine beyond the job's own state."""

    ended: bool = False  # the job is over: release its slot, settle its charge, wake its waiters
    error: str | None = None  # ... and failed, for this reason
    hold: str | None = None  # Midjourney says the account needs a person
    succeeded: bool = False  # a result arrived: an account hold older than the job is over
    info: dict[str, Any] | None = None  # /info's facts, for the account
    follow: list[str] = field(default_factory=list)  # ids the gateway must not skip (another user's message)


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


def relevant(event: str, data: dict[str, Any], store: JobStore) -> bool:
    """Whether a message created or updated in an account's channel may concern one of our jobs."""
    if isinstance(data.get("author"), dict):
        return from_bot(data)
    # Partial updates carry no author: only those of known messages matter.
    return event == "MESSAGE_UPDATE" and store.get(str(data.get("id"))) is not None


def _could_answer(job: Job, message_ms: int | None) -> bool:
    """Whether a message made at `message_ms` can be an answer to the job (not older than its interaction)."""
    if message_ms is None:
        return True
    discord = minted_ms(job.interaction_id)  # Discord's own clock: exact
    if discord is not None:
        return message_ms >= discord
    ours = minted_ms(job.nonce)  # our clock: allow for skew
    return ours is None or message_ms >= ours - 5_000


def find_job(
    store: JobStore, msg: dict[str, Any], *, account: str, user_id: str | None, gone: Collection[str] = ()
) -> Job | None:
    """The job a bot message of `account`'s channel belongs to, strongest evidence first (protocol.md §3).

    `gone` holds our jobs' first messages that Discord deleted: a result that carries nothing but its prompt can
    belong only to a job whose first message is gone (or never came).
    """
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
    me = user_id
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
            and j.account in (None, account)
            and j.job_uuid is None  # a job whose uuid we know is matched by it, not guessed
            and not (unknown_interaction and j.interaction_id)
            and (j.progress_message_id is None or j.progress_message_id in gone)
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


def apply_interaction(store: JobStore, job: Job, event: str, data: dict[str, Any]) -> Effect:
    """An INTERACTION_* dispatch that carries the job's nonce."""
    interaction_id = data.get("id")
    if isinstance(interaction_id, str):
        job.interaction_id = interaction_id
        store.index(job, interaction_id)
    if event == "INTERACTION_FAILURE":
        code = data.get("reason_code")
        return Effect(
            ended=True,
            error=f"Discord reported that the interaction failed (reason code {code}): Midjourney did not accept "
            "it. The button may have expired or the bot may be down; try again, or start a new imagine.",
        )
    if event in ("INTERACTION_MODAL_CREATE", "INTERACTION_IFRAME_MODAL_CREATE"):
        modal = parse_modal(data, iframe=event == "INTERACTION_IFRAME_MODAL_CREATE")
        if modal is not None and job.in_flight:
            job.modal = modal
            job.status = JobStatus.NEEDS_INPUT
            job.touch()
    elif event == "INTERACTION_SUCCESS":
        if job.kind in SIDE_EFFECTS and job.in_flight:
            # A bookmark or a cancel makes no message of its own: Discord's acknowledgement is the result.
            job.note = f"{job.parent_button or job.kind} pressed"
            return Effect(ended=True)
        job.touch()
    return Effect()


def apply_message(store: JobStore, job: Job, msg: dict[str, Any], *, account: str, cdn_base: str) -> Effect:
    """A bot message (created or updated) that `find_job` matched to the job, seen on `account`'s gateway."""
    message_id = str(msg.get("id"))
    if job.status.finished and message_id != job.result_message_id:
        return Effect()  # a finished job only accepts updates of its own result message
    store.index(job, message_id)
    if job.account is None:
        job.account = account
    effect = Effect()
    if isinstance(msg.get("flags"), int):
        job.message_flags = msg["flags"]
    uuid = mj.message_job_uuid(msg)
    if uuid and job.job_uuid is None:
        store.index_uuid(job, uuid)
        if not job.submitted:  # a job rebuilt from a message (maybe another user's): its result names the uuid
            effect.follow.append(uuid)

    verdict = mj.classify_embeds(as_list(msg.get("embeds")))
    if verdict is not None:
        if verdict.category == "queued":
            job.status = JobStatus.QUEUED
            job.queued_note = "Midjourney queued the job: the account is at its concurrency limit"
            job.touch()
            return effect
        if verdict.fails_job:
            reason = f"{verdict.title}: {verdict.description}".strip().rstrip(":")
            effect.ended, effect.error = True, f"Midjourney refused the job. {reason}"
            if verdict.account_problem:
                # Held, not dead: jobs already running carry on (their results still come); new work waits
                # for another account, or fails saying what a person must do.
                effect.hold = f"{reason} ({mj.account_advice(verdict)})"
            buttons = mj.parse_buttons(as_list(msg.get("components")))
            if buttons:  # "Pending mod message": Acknowledge / Resubmit are listed, for the agent to press, or not
                job.buttons, job.result_message_id = buttons, message_id
            return effect
    content_text = as_text(msg.get("content"))
    failure = mj.plain_failure(content_text)
    if failure:
        effect.ended, effect.error = True, f"Midjourney could not run the job: {failure}"
        return effect
    if job.kind in TEXT_KINDS:
        return _text_result(store, job, msg, content_text, effect)
    content = mj.parse_content(content_text)
    attachments = [a for a in as_list(msg.get("attachments")) if isinstance(a, dict)]
    final_image = next((a for a in attachments if not mj.is_progress_attachment(str(a.get("filename", "")))), None)
    done = content.state == "done" or (content.image_index is not None and content.state == "unknown")
    if done and final_image is not None:
        _complete(store, job, msg, final_image, cdn_base)
        effect.ended = effect.succeeded = True
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
        effect.ended = True
        effect.error = "Midjourney stopped the job before it finished (cancelled or refused)."
    elif content.state == "paused":
        job.status = JobStatus.QUEUED
        job.queued_note = "Midjourney paused the job (relax queue)"
        job.touch()
    return effect


def _text_result(store: JobStore, job: Job, msg: dict[str, Any], content: str, effect: Effect) -> Effect:
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
        effect.info = job.info
    else:
        job.note = content.strip() or None
        done = job.note is not None
    if not done:
        job.status = JobStatus.IN_PROGRESS
        job.touch()
        return effect
    job.result_message_id = str(msg.get("id"))
    store.index(job, job.result_message_id)
    job.buttons = mj.parse_buttons(as_list(msg.get("components")))
    image = next((e.get("image") for e in as_list(msg.get("embeds")) if isinstance(e, dict)), None)
    if isinstance(image, dict) and isinstance(image.get("url"), str):
        job.image_url = image["url"]
    effect.ended = True
    return effect


def _complete(store: JobStore, job: Job, msg: dict[str, Any], image: dict[str, Any], cdn_base: str) -> None:
    job.result_message_id = str(msg.get("id"))
    store.index(job, job.result_message_id)
    job.image_url = image.get("url")
    job.buttons = mj.parse_buttons(as_list(msg.get("components")))
    singles = mj.grid_image_urls(cdn_base, job.job_uuid, job.buttons)
    job.image_urls = singles or ([job.image_url] if job.image_url else [])
    job.video_urls = mj.video_urls(cdn_base, job.job_uuid, job.buttons)
    job.preview_url = None
    job.queued_note = None
    if job.parent_message_id and job.parent_button:
        store.index(job, press_key(job.parent_message_id, job.parent_button))


def press_key(message_id: str, button_name: str) -> str:
    """The store key under which the result of a press of `button_name` on `message_id` is found again."""
    return f"press:{message_id}:{button_name}"
