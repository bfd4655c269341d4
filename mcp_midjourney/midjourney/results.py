"""Results that are not images: /describe's and /shorten's prompts, /info's account facts, modals.

Pure functions of Discord payloads, like the rest of this package; they never raise on odd input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# 1️⃣ … 5️⃣ : a digit, an optional variation selector, the combining keycap.
_NUMBERED = re.compile(r"^\s*([1-9])\ufe0f?\u20e3\s*(.+?)\s*$")
_FIELD = re.compile(r"^\s*\*\*(?P<key>[^*]+?)\*\*\s*:?\s*(?P<value>.*?)\s*$")
_HOURS = re.compile(r"(?P<left>[\d.]+)\s*/\s*(?P<total>[\d.]+)\s*hours?", re.IGNORECASE)
_PERCENT = re.compile(r"\((?P<pct>[\d.]+)%\)")


def numbered_prompts(text: Any) -> list[str]:
    """The prompts listed as ``1️⃣ …``, ``2️⃣ …`` in a /describe or /shorten answer, in order."""
    if not isinstance(text, str):
        return []
    found: dict[int, str] = {}
    for line in text.splitlines():
        match = _NUMBERED.match(line)
        if match and int(match.group(1)) not in found:
            found[int(match.group(1))] = match.group(2).strip()
    return [found[k] for k in sorted(found)]


def embed_texts(message: dict[str, Any]) -> list[str]:
    """Titles and descriptions of a message's embeds."""
    out: list[str] = []
    embeds = message.get("embeds")
    for embed in embeds if isinstance(embeds, list) else []:
        if isinstance(embed, dict):
            out.extend(str(embed.get(k)) for k in ("title", "description") if isinstance(embed.get(k), str))
    return out


def describe_prompts(message: dict[str, Any]) -> list[str]:
    """The four prompts of a finished /describe answer (empty while Midjourney is still thinking)."""
    for text in embed_texts(message):
        prompts = numbered_prompts(text)
        if prompts:
            return prompts
    return []


def shorten_prompts(message: dict[str, Any]) -> list[str]:
    """The shortened prompts of a /shorten answer (the part after "Shortened prompts")."""
    for text in embed_texts(message):
        tail = text.split("Shortened prompts", 1)[-1]
        prompts = numbered_prompts(tail)
        if prompts:
            return prompts
    return []


def parse_info(message: dict[str, Any]) -> dict[str, Any] | None:
    """/info's "Your info" embed as numbers where it gives numbers; None when the message is not one."""
    embeds = message.get("embeds")
    for embed in embeds if isinstance(embeds, list) else []:
        if not isinstance(embed, dict) or not str(embed.get("title") or "").lower().startswith("your info"):
            continue
        facts: dict[str, Any] = {}
        for line in str(embed.get("description") or "").splitlines():
            match = _FIELD.match(line)
            if not match:
                continue
            key = re.sub(r"[^a-z0-9]+", "_", match.group("key").strip().lower()).strip("_")
            value = match.group("value")
            facts[key] = value
            if key == "fast_time_remaining":
                hours = _HOURS.search(value)
                if hours:
                    facts["fast_hours_left"] = float(hours.group("left"))
                    facts["fast_hours_total"] = float(hours.group("total"))
                pct = _PERCENT.search(value)
                if pct:
                    facts["fast_percent_left"] = float(pct.group("pct"))
            elif key.startswith("queued_jobs"):
                facts["queued_jobs"] = _int(value)
            elif key == "running_jobs":
                facts["running_jobs"] = 0 if value.strip().lower() in ("", "none") else len(value.split(","))
            elif key == "job_mode":
                facts["mode"] = value.strip().lower()
        return facts
    return None


def _int(text: str) -> int | None:
    match = re.search(r"\d+", text)
    return int(match.group(0)) if match else None


@dataclass(frozen=True)
class Modal:
    """A modal Midjourney opened in answer to a press: what it asks for and how to submit it."""

    interaction_id: str
    custom_id: str
    title: str
    inputs: list[tuple[str, str, str]] = field(default_factory=list)  # (custom_id, label, pre-filled value)
    iframe: bool = False

    @property
    def prefilled(self) -> str | None:
        return self.inputs[0][2] if self.inputs else None


def parse_modal(data: dict[str, Any], *, iframe: bool = False) -> Modal | None:
    """An ``INTERACTION_MODAL_CREATE`` (or iframe modal) event as a `Modal`."""
    interaction_id, custom_id = data.get("id"), data.get("custom_id")
    if not isinstance(interaction_id, str) or not isinstance(custom_id, str):
        return None
    inputs: list[tuple[str, str, str]] = []
    rows = data.get("components")
    for row in rows if isinstance(rows, list) else []:
        children = row.get("components") if isinstance(row, dict) else None
        for child in children if isinstance(children, list) else []:
            if isinstance(child, dict) and child.get("type") == 4 and isinstance(child.get("custom_id"), str):
                inputs.append((child["custom_id"], str(child.get("label") or ""), str(child.get("value") or "")))
    return Modal(interaction_id, custom_id, str(data.get("title") or ""), inputs, iframe)
