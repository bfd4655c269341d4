"""Midjourney's status embeds: every known title, the colours, and the real embeds of the fixtures."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mcp_midjourney.midjourney import EmbedVerdict, classify_embeds
from tests.conftest import PROTOCOL, load_fixture

RED, YELLOW, AMBER, GREEN = 16711680, 16776960, 16239475, 65280

EXPECTED = {
    "Banned prompt detected": "moderation",
    "Banned prompt": "moderation",
    "Banned image prompt": "moderation",
    "Invalid parameter": "invalid",
    "Invalid prompt": "invalid",
    "Invalid link": "invalid",
    "Invalid request": "invalid",
    "Empty prompt": "invalid",
    "Job queued": "queued",
    "Queue full": "queue_full",
    "Action needed to continue": "action_needed",
    "Action required to continue": "action_needed",
    "Please complete the task": "action_needed",
    "Pending mod message": "action_needed",
    "Blocked": "account",
    "Credits exhausted": "account",
    "Subscription required": "account",
    "Subscription paused": "account",
    "Plan Cancelled": "account",
    "Tos not accepted": "account",
    "Request cancelled due to output filters": "refused",
    "Job action restricted": "refused",
    "Duplicate images detected": "refused",
}


def verdict(title: str, color: Any = None, **embed: Any) -> EmbedVerdict | None:
    return classify_embeds([{"type": "rich", "title": title, "color": color, **embed}])


@pytest.mark.parametrize(("title", "category"), sorted(EXPECTED.items()))
@pytest.mark.parametrize("color", [RED, YELLOW, None])
def test_every_known_title(title: str, category: str, color: int | None) -> None:
    for spelling in (title, title.upper(), title.lower(), f" {title}! "):
        found = verdict(spelling, color, description="Midjourney says why.")
        assert found is not None
        assert found.category == category
        assert found.fails_job is (category != "queued")
        assert found.account_problem is (category in ("action_needed", "account"))
        assert found.description == "Midjourney says why."
        assert found.title == spelling.strip()


def _protocol_section_6() -> list[tuple[str, str]]:
    section = PROTOCOL.read_text(encoding="utf-8").split("## 6.", 1)[1]
    rows: list[tuple[str, str]] = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows.extend((title, cells[2]) for title in re.findall(r"`([^`]+)`", cells[0]))
    return rows


def test_every_title_of_protocol_section_6() -> None:
    rows = _protocol_section_6()
    assert len(rows) >= 20
    for title, should in rows:
        found = verdict(title, GREEN)  # a neutral colour: the title alone must decide
        assert found is not None, title
        assert found.category not in ("error", "warning"), title
        assert found.fails_job is ("keep waiting" not in should), title
        assert found.account_problem is ("account" in should), title


def _titles_of_the_titles_file() -> set[str]:
    data = load_fixture("captured", "bot-error-embed-titles.json")["by_source"]
    titles = {t for t in data["igolaizola/bulkai pkg/ai/midjourney/midjourney.go parseError (embed title, lowercased)"]}
    trueai = data["trueai-org/midjourney-proxy DiscordWebSocketService.cs OnMessage (embed title, exact)"]
    titles |= set(trueai["errorTitles"]) | set(trueai["continueTitles (ignored)"])
    titles |= set(trueai["account-disabling titles"])
    titles |= {"Job queued", "Tos not accepted", "Duplicate images detected", "Pending mod message"}
    titles |= set(data["verbatim descriptions seen"]) - {"abuse alert"}  # a description, tested below
    titles.discard("<other>")
    return {re.sub(r"\s*\(.*\)$", "", t) for t in titles}


def test_every_title_of_the_titles_fixture() -> None:
    data = load_fixture("captured", "bot-error-embed-titles.json")["by_source"]
    bulkai = data["igolaizola/bulkai pkg/ai/midjourney/midjourney.go parseError (embed title, lowercased)"]
    for title in _titles_of_the_titles_file():
        found = verdict(title, None)
        assert found is not None, title
        assert found.category not in ("error", "warning"), title
        how = bulkai.get(title.lower(), "")
        if how.startswith("not an error"):
            assert not found.fails_job, title
        elif how:
            assert found.fails_job, title
    # trueai's account-disabling titles all mark the account.
    trueai = data["trueai-org/midjourney-proxy DiscordWebSocketService.cs OnMessage (embed title, exact)"]
    for title in trueai["account-disabling titles"]:
        found = verdict(title)
        assert found is not None and found.account_problem, title


def test_the_real_action_needed_embed() -> None:
    embed = load_fixture("reconstructed", "embed-action-needed-to-continue.json")["embed"]
    found = classify_embeds([embed])
    assert found is not None
    assert (found.category, found.fails_job, found.account_problem) == ("action_needed", True, True)
    assert found.prompt is not None and found.prompt.startswith("An intricate lace fabric texture")
    assert found.prompt.endswith("--ar 16:9")
    assert found.description.startswith("Sorry! Our AI moderators feel your prompt")
    assert "\n        " not in found.description  # Midjourney's source indentation is gone
    assert 'press the "Appeal" button' in found.description


def test_the_real_queue_full_embed() -> None:
    embed = load_fixture("reconstructed", "embed-queue-full.json")["embed"]
    found = classify_embeds([embed])
    assert found == EmbedVerdict(
        category="queue_full",
        title="Queue full",
        description="Your job queue is full. Please wait for a job to finish first, then resubmit this one.",
        fails_job=True,
        account_problem=False,
        prompt=embed["footer"]["text"].removeprefix("/imagine "),
    )


def test_unknown_titles_go_by_colour() -> None:
    red = verdict("Something new went wrong", RED, description="**Sorry**, try again")
    assert red is not None
    assert (red.category, red.fails_job, red.account_problem, red.description) == (
        "error",
        True,
        False,
        "Sorry, try again",
    )
    for color in (YELLOW, AMBER):
        warning = verdict("Heads up", color, description="Your prompt was trimmed.")
        assert warning is not None and (warning.category, warning.fails_job) == ("warning", False)
    assert verdict("Your info - someone", GREEN) is None  # /info: a result, not a status
    assert verdict("Your info - someone") is None


def test_unknown_titles_with_telling_words() -> None:
    assert verdict("Invalid aspect ratio!", GREEN).category == "invalid"  # type: ignore[union-attr]
    assert verdict("Permission denied").category == "error"  # type: ignore[union-attr]
    human = classify_embeds([{"description": "Please verify you're human to continue.", "color": 0}])
    assert human is not None and human.category == "action_needed" and human.account_problem
    data = load_fixture("captured", "bot-error-embed-titles.json")["by_source"]["verbatim descriptions seen"]
    abuse = classify_embeds([{"description": data["abuse alert"].split(" (")[0], "color": 0}])
    assert abuse is not None and abuse.category == "account" and abuse.account_problem


def test_not_status_embeds() -> None:
    describe = {"description": "1️⃣ a cat on a mat\n\n2️⃣ a dog", "image": {"url": "https://x/y.png"}, "color": 0}
    assert classify_embeds([describe]) is None
    assert classify_embeds([]) is None
    junks: list[Any] = [None, "x", 1, [None, "x", 1, []], [{"title": 5, "color": "red"}], [{"color": True}]]
    for junk in junks:
        assert classify_embeds(junk) is None


def test_the_first_status_embed_wins_and_footers() -> None:
    embeds = [
        {"description": "1️⃣ result", "color": 0},
        {
            "title": "Job queued",
            "description": "Your job will start shortly.",
            "footer": {"text": "/imagine a cat"},
        },
        {"title": "Queue full", "color": RED},
    ]
    found = classify_embeds(embeds)
    assert found is not None
    assert (found.category, found.fails_job, found.prompt) == ("queued", False, "a cat")
    only_footer = verdict("Invalid link", RED, footer={"text": "Could not fetch that image."})
    assert only_footer is not None
    assert (only_footer.description, only_footer.prompt) == ("Could not fetch that image.", None)
