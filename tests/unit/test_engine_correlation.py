"""Correlation of Discord events to jobs, on real captures: strongest evidence first, never prompt text alone."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mcp_midjourney.config import Settings
from mcp_midjourney.engine.engine import Engine
from mcp_midjourney.engine.store import Job
from mcp_midjourney.models import MIDJOURNEY_BOT_ID, JobStatus
from tests.conftest import load_fixture, no_errors_logged, session_ready

CHANNEL = "1069126859100524575"
ME = "439110225975443468"
UUID = "a7cb1552-f779-4094-9afe-2acf22dae280"
BOT = {"id": MIDJOURNEY_BOT_ID, "username": "Midjourney Bot", "bot": True}


def make_engine() -> Engine:
    """A fresh engine (cheap: nothing connects until it runs) whose session is up as after READY."""
    engine = Engine(Settings(token=SecretStr("made-up-token-abcdef"), guild_id=None, channel_id=CHANNEL))
    session_ready(engine.accounts[0].gateway, ME)
    return engine


def submitted(engine: Engine, nonce: str, prompt: str = "glass", **fields: Any) -> Job:
    job = Job(nonce=nonce, kind=fields.pop("kind", "imagine"), prompt=prompt, normalised_prompt=prompt.lower())
    for key, value in fields.items():
        setattr(job, key, value)
    job.submitted = True
    engine.store.add(job)
    return job


def waiting() -> dict[str, Any]:
    return copy.deepcopy(load_fixture("captured", "gateway-message-create-imagine-waiting-to-start.json")["d"])


def final() -> dict[str, Any]:
    return copy.deepcopy(load_fixture("captured", "gateway-message-create-imagine-final-grid.json")["d"])


def progress(message_id: str, percent: int, uuid: str = UUID, user: str = ME) -> dict[str, Any]:
    return {
        "id": message_id,
        "channel_id": CHANNEL,
        "author": BOT,
        "content": f"**glass** - <@{user}> ({percent}%) (relaxed)",
        "attachments": [{"id": "1", "filename": f"{uuid}_grid_0.webp", "url": f"https://cdn.test/{uuid}_grid_0.webp"}],
        "components": [
            {
                "type": 1,
                "components": [
                    {
                        "type": 2,
                        "style": 4,
                        "label": "Cancel Job",
                        "custom_id": f"MJ::CancelJob::ByJobid::{uuid}",
                    }
                ],
            }
        ],
        "embeds": [],
    }


def test_a_whole_imagine_life_from_real_captures() -> None:
    engine = make_engine()
    first = waiting()
    job = submitted(engine, first["nonce"])

    engine.dispatch("INTERACTION_SUCCESS", {"id": first["interaction"]["id"], "nonce": first["nonce"]})
    assert engine.store.get(first["interaction"]["id"]) is job

    engine.dispatch("MESSAGE_CREATE", first)
    assert job.status is JobStatus.QUEUED and job.progress_message_id == first["id"]

    engine.dispatch("MESSAGE_UPDATE", progress(first["id"], 31))
    engine.dispatch("MESSAGE_UPDATE", progress(first["id"], 62))
    assert job.status is JobStatus.IN_PROGRESS and job.progress == 62 and job.job_uuid == UUID
    assert job.preview_url and UUID in job.preview_url

    engine.dispatch("MESSAGE_DELETE", {"id": first["id"], "channel_id": CHANNEL})
    assert job.in_flight

    result = final()
    engine.dispatch("MESSAGE_CREATE", result)
    assert job.status is JobStatus.COMPLETED and job.progress == 100
    assert job.handle == result["id"] and engine.store.get(result["id"]) is job
    assert job.image_url == result["attachments"][0]["url"]
    assert job.image_urls == [f"https://cdn.midjourney.com/{UUID}/0_{i}.png" for i in range(4)]
    assert [b.name for b in job.buttons] == ["U1", "U2", "U3", "U4", "reroll", "V1", "V2", "V3", "V4"]


def test_identical_prompts_and_other_users_do_not_steal_results() -> None:
    engine = make_engine()
    mine_a = submitted(engine, "1000000000000000001")
    mine_b = submitted(engine, "1000000000000000002")
    other_uuid = "11111111-2222-3333-4444-555555555555"
    b_uuid = "99999999-8888-7777-6666-555555555555"

    # Another user's job with the very same prompt, in the same channel: ignored.
    theirs = final()
    theirs["id"] = "1083788807800899999"
    theirs["content"] = "**glass** - <@123456789012345678> (relaxed)"
    theirs["attachments"][0]["filename"] = f"someone_glass_{other_uuid}.png"
    for row in theirs["components"]:
        for button in row["components"]:
            button["custom_id"] = button["custom_id"].replace(UUID, other_uuid)
    engine.dispatch("MESSAGE_CREATE", theirs)
    assert mine_a.in_flight and mine_b.in_flight

    # Each of our jobs gets its own first message by nonce and its own uuid from progress.
    for job, message_id, uuid in (
        (mine_a, "1083788668470300001", UUID),
        (mine_b, "1083788668470300002", b_uuid),
    ):
        first = waiting()
        first["nonce"], first["id"] = job.nonce, message_id
        engine.dispatch("MESSAGE_CREATE", first)
        engine.dispatch("MESSAGE_UPDATE", progress(message_id, 50, uuid))

    # B's result arrives first: it must go to B, by uuid, though A is older and has the same prompt.
    result_b = final()
    result_b["id"] = "1083788807800890002"
    result_b["attachments"][0]["filename"] = f"Alex_Poloz_glass_{b_uuid}.png"
    for row in result_b["components"]:
        for button in row["components"]:
            button["custom_id"] = button["custom_id"].replace(UUID, b_uuid)
    engine.dispatch("MESSAGE_CREATE", result_b)
    assert mine_b.status is JobStatus.COMPLETED and mine_b.result_message_id == result_b["id"]
    assert mine_a.in_flight

    engine.dispatch("MESSAGE_CREATE", final())
    assert mine_a.status is JobStatus.COMPLETED and mine_a.job_uuid == UUID


def test_prompt_text_is_only_the_last_resort_and_survives_the_bots_rewrite() -> None:
    engine = make_engine()
    job = submitted(engine, "1000000000000000003", prompt="glass")
    result = final()
    result["content"] = "**glass --v 7** - <@439110225975443468> (fast)"
    engine.dispatch("MESSAGE_CREATE", result)
    assert job.status is JobStatus.COMPLETED


def test_upscale_result_is_matched_by_reply_and_image_index() -> None:
    engine = make_engine()
    u2 = submitted(
        engine,
        "1000000000000000004",
        kind="upscale",
        parent_message_id="1083788807800897597",
        parent_button="U2",
        parent_index=2,
    )
    u3 = submitted(
        engine,
        "1000000000000000005",
        kind="upscale",
        parent_message_id="1083788807800897597",
        parent_button="U3",
        parent_index=3,
    )
    reply = {
        "id": "1083788807800897700",
        "type": 19,
        "channel_id": CHANNEL,
        "author": BOT,
        "content": "**glass** - Image #3 <@439110225975443468>",
        "message_reference": {"message_id": "1083788807800897597", "channel_id": CHANNEL},
        "attachments": [
            {
                "id": "9",
                "filename": "Alex_Poloz_glass_bbbbbbbb-f779-4094-9afe-2acf22dae280.png",
                "url": "https://cdn.test/u3.png",
            }
        ],
        "components": [],
        "embeds": [],
    }
    engine.dispatch("MESSAGE_CREATE", reply)
    assert u3.status is JobStatus.COMPLETED and u3.image_url == "https://cdn.test/u3.png"
    assert u2.in_flight


def test_error_embed_fails_the_job_with_midjourneys_words() -> None:
    engine = make_engine()
    job = submitted(engine, "1000000000000000006")
    embed = load_fixture("reconstructed", "embed-queue-full.json")["embed"]
    engine.dispatch(
        "MESSAGE_CREATE",
        {
            "id": "1083788807800897800",
            "channel_id": CHANNEL,
            "author": BOT,
            "nonce": job.nonce,
            "content": "",
            "embeds": [embed],
            "attachments": [],
            "components": [],
        },
    )
    assert job.status is JobStatus.FAILED
    assert "Queue full" in (job.error or "") and "queue is full" in (job.error or "")


def test_interaction_failure_fails_the_job() -> None:
    engine = make_engine()
    job = submitted(engine, "1000000000000000007")
    engine.dispatch("INTERACTION_FAILURE", {"id": "1083788807800897900", "nonce": job.nonce, "reason_code": 1})
    assert job.status is JobStatus.FAILED and "reason code 1" in (job.error or "")


def test_events_of_other_channels_and_authors_are_ignored() -> None:
    engine = make_engine()
    job = submitted(engine, "1000000000000000008")
    other_channel = final() | {"channel_id": "222222222222222222"}
    engine.dispatch("MESSAGE_CREATE", other_channel)
    not_the_bot = final() | {"author": {"id": "123456789012345678"}}
    engine.dispatch("MESSAGE_CREATE", not_the_bot)
    assert job.in_flight


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(
        [
            "MESSAGE_CREATE",
            "MESSAGE_UPDATE",
            "MESSAGE_DELETE",
            "INTERACTION_SUCCESS",
            "INTERACTION_FAILURE",
            "INTERACTION_MODAL_CREATE",
        ]
    ),
    payload=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "nonce",
                "channel_id",
                "author",
                "content",
                "embeds",
                "attachments",
                "components",
                "interaction",
                "interaction_metadata",
                "message_reference",
                "flags",
                "reason_code",
            ]
        ),
        json_values,
        max_size=10,
    ),
)
def test_dispatch_applies_arbitrary_payloads_without_an_error(event: str, payload: dict[str, Any]) -> None:
    engine = make_engine()
    job = submitted(engine, "1000000000000000009")
    payload.setdefault("channel_id", CHANNEL)
    if isinstance(payload.get("author"), dict) or "author" not in payload:
        payload["author"] = BOT
    with no_errors_logged():  # the dispatcher catches everything and logs it as an ERROR: none may appear
        engine.dispatch(event, payload)
    assert 0 <= job.progress <= 100 and (job.status is not JobStatus.FAILED or job.error)


@pytest.mark.parametrize("mutation", ["drop_attachments", "garbage_components", "content_none"])
def test_mutated_real_messages_do_not_break_dispatch(mutation: str) -> None:
    engine = make_engine()
    job = submitted(engine, "1000000000000000010")
    message = final()
    if mutation == "drop_attachments":
        message["attachments"] = None
    elif mutation == "garbage_components":
        message["components"] = [{"type": 1, "components": "nope"}, 7, None]
    else:
        message["content"] = None
    with no_errors_logged():
        engine.dispatch("MESSAGE_CREATE", message)
    assert job.status in (JobStatus.QUEUED, JobStatus.COMPLETED)


def test_another_senders_job_on_the_same_account_is_never_taken_for_ours() -> None:
    """Two servers on one account: every session hears of every interaction; one whose nonce is not ours is
    another server's, and so are its messages, though its prompt is ours and our job has no message yet."""
    engine = make_engine()
    mine = submitted(engine, "1000000000000000001")  # sent, its interaction not heard of yet
    first = waiting()  # the other server's job: same account, same prompt
    engine.dispatch("INTERACTION_CREATE", {"id": first["interaction"]["id"], "nonce": first["nonce"]})
    engine.dispatch("MESSAGE_CREATE", first)
    engine.dispatch("MESSAGE_UPDATE", progress(first["id"], 50))
    engine.dispatch("MESSAGE_DELETE", {"id": first["id"], "channel_id": CHANNEL})
    engine.dispatch("MESSAGE_CREATE", final())
    assert mine.in_flight and mine.progress_message_id is None and mine.job_uuid is None
    # Its own messages still find it.
    own = waiting()
    own["nonce"], own["id"] = mine.nonce, "1083788668470300001"
    del own["interaction"]
    engine.dispatch("MESSAGE_CREATE", own)
    assert mine.progress_message_id == own["id"]
