"""Correlation as pure functions, on the real captures: no engine, no network, only a job index and a message."""

from __future__ import annotations

import copy
from typing import Any

from mcp_midjourney.engine.correlate import apply_interaction, apply_message, find_job, press_key
from mcp_midjourney.engine.store import Job, JobStore
from mcp_midjourney.models import MIDJOURNEY_BOT_ID, JobStatus
from tests.conftest import load_fixture

ME = "439110225975443468"
CHANNEL = "1069126859100524575"
UUID = "a7cb1552-f779-4094-9afe-2acf22dae280"
CDN = "https://cdn.example.test"


def capture(name: str) -> dict[str, Any]:
    return copy.deepcopy(load_fixture("captured", name)["d"])


def running(store: JobStore, nonce: str, prompt: str = "glass", **fields: Any) -> Job:
    job = Job(nonce=nonce, kind="imagine", prompt=prompt, normalised_prompt=prompt, submitted=True)
    for key, value in fields.items():
        setattr(job, key, value)
    store.add(job)
    return job


def test_the_nonce_wins_over_an_identical_prompt() -> None:
    store = JobStore()
    waiting = capture("gateway-message-create-imagine-waiting-to-start.json")
    older = running(store, "1083788665919890000")  # same prompt, sent earlier: text alone would pick it
    ours = running(store, waiting["nonce"])
    assert find_job(store, waiting, account="main", user_id=ME) is ours
    assert older.progress_message_id is None


def test_a_result_with_only_its_prompt_goes_to_the_job_whose_first_message_is_gone() -> None:
    store = JobStore()
    result = capture("gateway-message-create-imagine-final-grid.json")
    result.pop("attachments")  # no uuid from the file name either: only the prompt is left
    result["components"] = []
    kept = running(store, "1083788600000000001", progress_message_id="1083788600000000011")
    deleted = running(store, "1083788600000000002", progress_message_id="1083788600000000022")
    assert find_job(store, result, account="main", user_id=ME) is None  # both still have their first message
    assert find_job(store, result, account="main", user_id=ME, gone={"1083788600000000022"}) is deleted
    assert kept.result_message_id is None


def test_another_users_job_is_never_matched_by_prompt() -> None:
    store = JobStore()
    running(store, "1083788600000000001")
    result = capture("gateway-message-create-imagine-final-grid.json")
    assert find_job(store, result, account="main", user_id="111111111111111111") is None


def test_the_final_grid_completes_the_job_with_the_four_single_images() -> None:
    store = JobStore()
    job = running(store, "1083788600000000001", account="main")
    result = capture("gateway-message-create-imagine-final-grid.json")
    effect = apply_message(store, job, result, account="main", cdn_base=CDN)
    assert effect.ended and effect.succeeded and effect.error is None and effect.hold is None
    assert job.result_message_id == result["id"] and job.job_uuid == UUID
    assert job.image_urls == [f"{CDN}/{UUID}/0_{i}.png" for i in range(4)]
    assert [b.name for b in job.buttons][:4] == ["U1", "U2", "U3", "U4"]
    assert store.get(result["id"]) is job and store.by_uuid(UUID) is job


def test_an_upscale_result_is_found_again_by_its_press() -> None:
    store = JobStore()
    job = running(store, "1083788600000000001", account="main", parent_message_id="1083788807800897597")
    job.parent_button = "U2"
    reply = capture("gateway-message-create-imagine-final-grid.json")
    reply["id"] = "1083788900000000000"
    reply["components"] = []  # a single image: no U1-U4, so no per-image CDN URLs
    apply_message(store, job, reply, account="main", cdn_base=CDN)
    assert store.get(press_key("1083788807800897597", "U2")) is job
    assert job.image_urls == [job.image_url]


def test_an_account_problem_embed_fails_the_job_and_holds_the_account() -> None:
    store = JobStore()
    job = running(store, "1083788600000000001", account="main")
    embed = load_fixture("reconstructed", "embed-action-needed-to-continue.json")["embed"]
    message = {"id": "1083788600000000100", "channel_id": CHANNEL, "author": {"id": MIDJOURNEY_BOT_ID}}
    effect = apply_message(store, job, message | {"embeds": [embed]}, account="main", cdn_base=CDN)
    assert effect.ended and effect.error and effect.error.startswith("Midjourney refused the job.")
    assert effect.hold and not effect.succeeded
    assert job.status is JobStatus.QUEUED  # the engine ends it: correlation only says so


def test_a_rebuilt_job_of_another_user_asks_to_follow_its_uuid() -> None:
    store = JobStore()
    job = Job(nonce="1083788600000000001", kind="imagine", prompt="glass", account="main")  # never submitted
    store.add(job)
    progress = capture("gateway-message-create-imagine-final-grid.json")
    progress["content"] = "**glass** - <@111111111111111111> (31%) (fast)"
    progress["attachments"][0]["filename"] = f"glass_{UUID}_grid_0.webp"
    effect = apply_message(store, job, progress, account="main", cdn_base=CDN)
    assert effect.follow == [UUID] and not effect.ended and job.progress == 31


def test_an_interaction_failure_ends_the_job_with_the_reason_code() -> None:
    store = JobStore()
    job = running(store, "1083788600000000001")
    effect = apply_interaction(store, job, "INTERACTION_FAILURE", {"id": "1083788600000000009", "reason_code": 2})
    assert effect.ended and "reason code 2" in (effect.error or "")
    assert store.get("1083788600000000009") is job  # indexed by Discord's interaction id
