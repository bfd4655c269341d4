"""The Midjourney bot's message content grammar (protocol.md §4) and where a message names its job.

Pure functions of strings and message dicts as Discord sends them. None of them raises on malformed
input: a value of the wrong type reads as "nothing recognisable here".

    **<prompt>** - <@uid> (Waiting to start)
    **<prompt>** - <@uid> (NN%) (fast|relaxed|turbo[, stealth])
    **<prompt>** - Variations (Strong) by <@uid> [(Open on website)](<https://midjourney.com/jobs/…>) (fast)
    **<prompt>** - Image #N <@uid>
    Upscaling image #2 with **<prompt>** - <@uid> (Waiting to start)                         (legacy)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from mcp_midjourney.midjourney._common import UUID_RE, iter_components, job_link_uuid, last_uuid

__all__ = [
    "Content",
    "is_progress_attachment",
    "message_job_uuid",
    "normalise_prompt",
    "parse_content",
    "plain_failure",
]


@dataclass(frozen=True, slots=True)
class Content:
    """What a bot message's content says about a job. Every field is None/"unknown" when not stated."""

    prompt: str | None = None  # the echoed prompt, verbatim (Midjourney's rewriting included)
    user_id: str | None = None  # the account the job belongs to (<@id>)
    kind: str = "unknown"  # imagine | upscale | variation | remix | zoom | pan | video | unknown
    detail: str | None = None  # Strong, Subtle, Region, Creative, 2x, 4x, Left, Right, Up, Down, ...
    image_index: int | None = None  # N of "Image #N" / "image #N"
    state: str = "unknown"  # waiting | progress | paused | stopped | done | unknown
    progress: int | None = None  # 0..100 (0 while waiting, 100 when done)
    mode: str | None = None  # fast | relaxed | turbo
    job_uuid: str | None = None  # from a midjourney.com/jobs/<uuid> link or a "**Job ID**: <uuid>" line


_UNKNOWN = Content()

# What follows the closing "** - ": optional action words, the user mention, then "(…)" groups.
# One line only: newer messages append a "-# subtext" line that is not part of the grammar.
_TAIL_RE = re.compile(r"(?P<action>[^<\n]*?)\s*<@!?(?P<uid>\w+)>(?P<rest>[^\n]*)")
_PROMPT_END = "** - "
_MAX_PROMPT_END_CANDIDATES = 8
# The "(…)" groups. In the link form "[(Open on website)](<https://midjourney.com/jobs/…>)" this finds
# "(Open on website)" and "(<https://…>)", neither of which names a state or a mode: no need to unlink.
_PAREN_RE = re.compile(r"\(([^()]*)\)")
_PERCENT_RE = re.compile(r"(\d{1,3})\s*%")
_IMAGE_N_RE = re.compile(r"image\s*#\s*(\d{1,6})", re.IGNORECASE)
_ZOOM_FACTOR_RE = re.compile(r"(\d+(?:\.\d+)?)\s*x\b", re.IGNORECASE)
_JOB_ID_LINE_RE = re.compile(r"\*\*Job ID\*\*\s*:?\s*(" + UUID_RE.pattern + ")", re.IGNORECASE)

_MODES = {"fast": "fast", "relaxed": "relaxed", "relax": "relaxed", "turbo": "turbo"}
_STATES = {"waiting to start": "waiting", "paused": "paused", "stopped": "stopped"}
_DETAILS = {
    word.casefold(): word
    for word in ("Strong", "Subtle", "Region", "Creative", "2x", "4x", "Left", "Right", "Up", "Down")
}

_FAILURE_PREFIXES = ("failed to process your command", "there was an error processing your request")

# Progress previews: "<uuid>_grid_0.webp" (also the 2026 short form "9a5aa072_grid_0.webp"); a video job's frames
# are "<uuid>_step_<N>.jpeg" (protocol.md §7).
_PROGRESS_FILE_RE = re.compile(r"(?:^|[_/])(?:grid|step)_\d+\.(?:webp|png|jpe?g)$", re.IGNORECASE)

# normalise_prompt: what Midjourney rewrites in the prompt it echoes.
_URL_RE = re.compile(r"<?https?://[^\s>]*>?", re.IGNORECASE)
_VERSION_PARAM_RE = re.compile(r"(?<!\S)--(?:v|version|niji)(?:\s+\d[\w.]*)?(?=\s|$)", re.IGNORECASE)
# What Midjourney rewrites or drops in an echo (protocol.md §7): a profile's codes, a video's --no clause and the
# video model's number. Dropped from both sides of the comparison, with the words that follow them.
_ECHO_CHANGED_RE = re.compile(
    r"(?<!\S)--(?:p|profile|personalize|no)(?:\s+(?!--)\S+)*|(?<!\S)--video(?:\s+\d[\w.]*)?(?=\s|$)",
    re.IGNORECASE,
)
_SPACE_RE = re.compile(r"\s+")


def parse_content(content: str) -> Content:
    """Parse a bot message's `content` by the grammar of protocol.md §4.

    `prompt` is None when the content does not follow the grammar (or, as in some logged fragments, lacks
    the opening ``**``); the tail (user, state, mode) is still read when it is there.
    """
    # Every job message bolds its prompt: anything without "**" (other users' chatter, replies to /relax,
    # non-strings) leaves here at the cost of one substring test.
    if not isinstance(content, str) or "**" not in content:
        return _UNKNOWN

    job_uuid = job_link_uuid(content)
    if job_uuid is None and "Job ID" in content:
        match = _JOB_ID_LINE_RE.search(content)
        job_uuid = match.group(1).lower() if match else None

    # The prompt may itself contain " - " or "**": the real end is the LAST "** - " that is followed by
    # a well-formed tail, so walk the candidates backwards (almost always one step; bounded, so that a
    # hostile string full of "** - " stays linear).
    end = content.rfind(_PROMPT_END)
    tail = None
    for _ in range(_MAX_PROMPT_END_CANDIDATES):
        if end < 0:
            break
        tail = _TAIL_RE.match(content, end + len(_PROMPT_END))
        if tail is not None:
            break
        end = content.rfind(_PROMPT_END, 0, end)
    if tail is None:
        return Content(job_uuid=job_uuid) if job_uuid else _UNKNOWN

    head = content[:end]
    start = head.find("**")
    prompt = head[start + 2 :] if start >= 0 else None
    prefix = head[:start] if start > 0 else ""

    kind, detail, image_index = _classify_action(tail.group("action"))
    if prefix:
        legacy = _classify_prefix(prefix)
        if legacy is not None:
            kind, image_index = legacy
    if kind == "imagine" and prompt is not None and "--video" in prompt.casefold():
        kind = "video"

    state, progress, mode = _read_groups(tail.group("rest"))
    return Content(
        prompt=prompt,
        user_id=tail.group("uid"),
        kind=kind,
        detail=detail,
        image_index=image_index,
        state=state,
        progress=progress,
        mode=mode,
        job_uuid=job_uuid,
    )


def _classify_action(action: str) -> tuple[str, str | None, int | None]:
    """(kind, detail, image index) from the words between "** - " and the mention."""
    text = action.strip()
    # "Variations (Strong) by" -> "Variations (Strong)"; sliced, not a regex: this runs on every update.
    if text[-3:].lower() == " by" or text.lower() == "by":
        text = text[:-2].rstrip()
    if not text:
        return "imagine", None, None  # also blend and reroll grids: no action words at all
    lowered = text.casefold()
    if lowered.startswith("image"):
        match = _IMAGE_N_RE.match(text)
        if match is not None:
            return "upscale", None, int(match.group(1))

    paren = _PAREN_RE.search(text)
    detail = _canonical_detail(paren.group(1)) if paren else None
    words = (text[: paren.start()] if paren else text).split()
    verb = words[0].casefold() if words else ""

    if verb.startswith("upscal"):
        return "upscale", detail, None
    if verb.startswith(("variation", "vary")) or lowered.startswith("making variation"):
        return "variation", detail, None
    if verb.startswith("remix"):
        return "remix", detail, None
    if verb == "zoom":
        if detail is None:
            factor = _ZOOM_FACTOR_RE.search(text)
            detail = f"{factor.group(1)}x" if factor else None
        return "zoom", detail, None
    if verb == "pan":
        if detail is None and len(words) > 1:
            detail = _canonical_detail(words[1])
        return "pan", detail, None
    # Words we have never seen: keep them as the detail so the engine can at least show them.
    return "unknown", text, None


def _classify_prefix(prefix: str) -> tuple[str, int | None] | None:
    """The legacy forms that name the action before the prompt ("Upscaling image #2 with **…")."""
    lowered = prefix.casefold()
    match = _IMAGE_N_RE.search(prefix)
    index = int(match.group(1)) if match else None
    for needle, kind in (("upscal", "upscale"), ("variation", "variation"), ("remix", "remix")):
        if needle in lowered:
            return kind, index
    return None


def _canonical_detail(word: str) -> str | None:
    word = word.strip()
    if not word:
        return None
    return _DETAILS.get(word.casefold(), word)


def _read_groups(rest: str) -> tuple[str, int | None, str | None]:
    """(state, progress, mode) from the "(…)" groups after the mention."""
    state: str | None = None
    progress: int | None = None
    mode: str | None = None
    for group in _PAREN_RE.findall(rest):
        text = group.strip().casefold()
        if text in _STATES:
            state = _STATES[text]
        elif text.endswith("%"):
            percent = _PERCENT_RE.fullmatch(text)
            if percent is not None:
                state, progress = "progress", min(int(percent.group(1)), 100)
        else:
            first = text.partition(",")[0].rstrip()  # "fast, stealth" -> fast
            if first in _MODES:
                mode = _MODES[first]
        # Anything else ("Open on website for full quality", a link) says nothing about the state.
    if state is None:
        # The grammar matched and no group says otherwise: the message is a finished result.
        return "done", 100, mode
    if state == "waiting":
        progress = 0
    return state, progress, mode


def plain_failure(content: str) -> str | None:
    """The text of a plain-text failure reply ("Failed to process your command…"), else None."""
    if not isinstance(content, str):
        return None
    text = content.strip()
    if text[:48].casefold().startswith(_FAILURE_PREFIXES):
        return text
    return None


def message_job_uuid(message: dict[str, Any]) -> str | None:
    """The Midjourney job uuid a message belongs to, from the message itself only.

    Looked for, in order: attachment filenames (``…_<uuid>.png``, ``<uuid>_grid_0.webp``), component
    custom_ids (``MJ::JOB::upsample::1::<uuid>``, ``MJ::CancelJob::ByJobid::<uuid>``), then
    midjourney.com/jobs/<uuid> links in the content and the embeds. `referenced_message` is deliberately
    not read: it is the parent job, not this one.
    """
    if not isinstance(message, dict):
        return None

    attachments = message.get("attachments")
    if isinstance(attachments, list):
        for attachment in attachments:
            if not isinstance(attachment, dict):
                continue
            name = attachment.get("filename")
            if not isinstance(name, str):
                url = attachment.get("url")
                name = url.split("?", 1)[0].rsplit("/", 1)[-1] if isinstance(url, str) else None
            found = last_uuid(name)
            if found:
                return found

    for component in iter_components(message.get("components")):
        found = last_uuid(component.get("custom_id"))
        if found:
            return found

    content = message.get("content")
    found = job_link_uuid(content)
    if found:
        return found
    if isinstance(content, str) and "Job ID" in content:
        match = _JOB_ID_LINE_RE.search(content)
        if match:
            return match.group(1).lower()

    embeds = message.get("embeds")
    if isinstance(embeds, list):
        for embed in embeds:
            found = _embed_job_uuid(embed)
            if found:
                return found
    return None


def _embed_job_uuid(embed: object) -> str | None:
    if not isinstance(embed, dict):
        return None
    candidates: list[object] = [embed.get("url"), embed.get("description"), embed.get("title")]
    for key in ("image", "thumbnail", "footer"):
        sub = embed.get(key)
        if isinstance(sub, dict):
            candidates.append(sub.get("url"))
            candidates.append(sub.get("text"))
    for text in candidates:
        found = job_link_uuid(text)
        if found:
            return found
    return None


def normalise_prompt(text: str) -> str:
    """A comparison key for the LAST-RESORT prompt match, equal for a sent prompt and Midjourney's echo.

    Drops URLs (the bot turns image links into ``<https://s.mj.run/…>``) and angle brackets, drops the
    ``--v``/``--version``/``--niji`` parameter the bot appends and what it rewrites (``--p`` codes, a video's
    ``--no`` clause, ``--video 1``), turns an em dash (what some keyboards
    make of "--") back into "--", collapses whitespace and casefolds.
    """
    if not isinstance(text, str):
        return ""
    text = unicodedata.normalize("NFC", text).replace("\u2014", "--")
    text = _URL_RE.sub(" ", text).replace("<", " ").replace(">", " ")
    text = _ECHO_CHANGED_RE.sub(" ", _VERSION_PARAM_RE.sub(" ", text))
    return _SPACE_RE.sub(" ", text).strip().casefold()


def is_progress_attachment(filename: str) -> bool:
    """True for a low-resolution progress preview (``…_grid_0.webp``), False for a result image."""
    return isinstance(filename, str) and _PROGRESS_FILE_RE.search(filename) is not None
