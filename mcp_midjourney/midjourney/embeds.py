"""Midjourney's status embeds (protocol.md §6): errors, warnings, "Job queued", account holds.

Titles are matched case-insensitively against what Midjourney is known to send; a title never seen is
judged by its colour (red = error, yellow = warning) and a few words. Embeds that are results rather than
statuses (/describe, /info, /settings) are not status embeds and yield None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mcp_midjourney.midjourney._common import is_int

__all__ = ["EmbedVerdict", "account_advice", "classify_embeds"]

RED = 16711680
YELLOWS = frozenset({16776960, 16239475})


@dataclass(frozen=True, slots=True)
class EmbedVerdict:
    """Midjourney's verdict on a job, from the embed of its reply."""

    category: str  # queued | moderation | invalid | queue_full | action_needed | account | refused |
    #                warning | error
    title: str
    description: str  # Midjourney's own words
    fails_job: bool  # False only for "queued" and warnings
    account_problem: bool  # the account needs a person (moderation hold, captcha, block, billing)
    prompt: str | None = None  # the prompt from the footer ("/imagine <prompt>"), for correlation


_CATEGORY_BY_TITLE = {
    # moderation refused the prompt
    "banned prompt detected": "moderation",
    "banned prompt": "moderation",
    "banned image prompt": "moderation",
    # bad input
    "invalid parameter": "invalid",
    "invalid prompt": "invalid",
    "invalid link": "invalid",
    "invalid request": "invalid",
    "empty prompt": "invalid",
    # concurrency
    "job queued": "queued",
    "queue full": "queue_full",
    # the account is held until a person acts (appeal, captcha, acknowledge)
    "action needed to continue": "action_needed",
    "action required to continue": "action_needed",
    "please complete the task": "action_needed",
    "pending mod message": "action_needed",
    # account state
    "blocked": "account",
    "credits exhausted": "account",
    "subscription required": "account",
    "subscription paused": "account",
    "plan cancelled": "account",
    "plan canceled": "account",
    "tos not accepted": "account",
    # refused after the job started
    "request cancelled due to output filters": "refused",
    "request canceled due to output filters": "refused",
    "job action restricted": "refused",
    "duplicate images detected": "refused",
}
_ACCOUNT_CATEGORIES = frozenset({"action_needed", "account"})
_HARMLESS_CATEGORIES = frozenset({"queued", "warning"})

# Fallbacks for titles never seen, by words (checked in order), before the colour is consulted.
_TITLE_WORDS = (
    ("banned", "moderation"),
    ("invalid", "invalid"),
    ("queue full", "queue_full"),
    ("to continue", "action_needed"),
    ("subscription", "account"),
    ("credits", "account"),
    ("error", "error"),
    ("denied", "error"),
)
# Descriptions that give the game away whatever the title and colour (kancom/midjourney-api's rules).
_DESCRIPTION_WORDS = (
    ("verify you're human", "action_needed"),
    ("verify you are human", "action_needed"),
    ("your job queue is full", "queue_full"),
    ("abuse alert", "account"),
    ("run out of", "account"),
)
_TITLE_TRIM = " \t\r\n!.:"
_EXTRA_BLANK_LINES_RE = re.compile(r"\n{3,}")
_FOOTER_COMMAND_RE = re.compile(r"^/\w+\s+(.+)$", re.DOTALL)


def classify_embeds(embeds: list[Any]) -> EmbedVerdict | None:
    """The verdict of the first Midjourney status embed in `embeds`, or None when there is none."""
    if not isinstance(embeds, list) or not embeds:
        return None
    for embed in embeds:
        if isinstance(embed, dict):
            verdict = _classify(embed)
            if verdict is not None:
                return verdict
    return None


def _classify(embed: dict[str, object]) -> EmbedVerdict | None:
    raw_title = embed.get("title")
    title = raw_title.strip() if isinstance(raw_title, str) else ""
    key = " ".join(title.casefold().strip(_TITLE_TRIM).split())
    raw_description = embed.get("description")
    description = _clean(raw_description) if isinstance(raw_description, str) else ""
    color = embed.get("color")

    category = _CATEGORY_BY_TITLE.get(key) if key else None
    if category is None and key:
        category = next((cat for word, cat in _TITLE_WORDS if word in key), None)
    if category is None and description:
        lowered = description.casefold()
        category = next((cat for word, cat in _DESCRIPTION_WORDS if word in lowered), None)
    if category is None and is_int(color):
        if color == RED:
            category = "error"
        elif color in YELLOWS:
            category = "warning"
    if category is None:
        return None  # a result embed (/describe, /info, /settings…), not a status

    footer = embed.get("footer")
    footer_text = footer.get("text") if isinstance(footer, dict) else None
    prompt = None
    if isinstance(footer_text, str):
        command = _FOOTER_COMMAND_RE.match(footer_text.strip())
        if command is not None:
            prompt = command.group(1).strip()
        elif not description:
            description = _clean(footer_text)  # the footer is all Midjourney said
    return EmbedVerdict(
        category=category,
        title=title,
        description=description,
        fails_job=category not in _HARMLESS_CATEGORIES,
        account_problem=category in _ACCOUNT_CATEGORIES,
        prompt=prompt,
    )


# What a person must do about each account-level answer (the agent cannot do it: it needs Discord's own UI).
_HOLD = "; new jobs wait until then (the account is tried again after a few minutes)"
_ADVICE_BY_TITLE = {
    "action needed to continue": "a person must open Discord, find Midjourney's message in the channel and press "
    "Appeal (or Acknowledge)" + _HOLD,
    "action required to continue": "a person must open Discord and complete Midjourney's check (captcha) in the "
    "channel" + _HOLD,
    "please complete the task": "a person must open Discord and complete Midjourney's check (captcha) in the "
    "channel" + _HOLD,
    "pending mod message": "a person must open Discord and acknowledge Midjourney's moderation message" + _HOLD,
    "blocked": "a person must contact Midjourney support (docs.midjourney.com); until then use another account",
    "credits exhausted": "a person must buy more fast hours at midjourney.com/account, or switch the account to "
    "relax mode (/relax) if its plan allows it",
    "subscription required": "a person must subscribe to a Midjourney plan at midjourney.com/account",
    "subscription paused": "a person must resume the Midjourney subscription at midjourney.com/account",
    "plan cancelled": "a person must renew the Midjourney plan at midjourney.com/account",
    "plan canceled": "a person must renew the Midjourney plan at midjourney.com/account",
    "tos not accepted": "a person must accept Midjourney's Terms of Service: run /imagine in Discord and press "
    "'Accept ToS'" + _HOLD,
}


def account_advice(verdict: EmbedVerdict) -> str:
    """What a person must do to free an account Midjourney holds (only meaningful for `account_problem`)."""
    key = " ".join(verdict.title.casefold().strip(_TITLE_TRIM).split())
    if key in _ADVICE_BY_TITLE:
        return _ADVICE_BY_TITLE[key]
    if verdict.category == "action_needed":
        return "a person must open Discord and do what Midjourney asks in the channel" + _HOLD
    return "a person must check the Midjourney account (midjourney.com/account) and Midjourney's message in Discord"


def _clean(text: str) -> str:
    """Midjourney's words without the indentation of its multi-line strings and without bold markers."""
    lines = (line.strip() for line in text.replace("**", "").splitlines())
    return _EXTRA_BLANK_LINES_RE.sub("\n\n", "\n".join(lines)).strip()
