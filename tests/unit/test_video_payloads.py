"""Every video payload of the fixtures through the parser, the correlation and the builders (protocol.md §5-§7):
an Animate job's progress frame and final grid, a pick, an image-to-video grid of two, the AnimateModal, a v8
single's buttons, a "Pending mod message" with its buttons, and the echoes Midjourney rewrites."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mcp_midjourney import midjourney as mj
from mcp_midjourney.engine.budget import Budget, BudgetExceeded, BudgetLimits, Limits
from mcp_midjourney.engine.correlate import apply_interaction, apply_message, find_job, press_key
from mcp_midjourney.engine.store import Job, JobStore
from mcp_midjourney.media.save import download_items
from mcp_midjourney.midjourney.cdn import VIDEO_PATH
from mcp_midjourney.models import JobStatus
from mcp_midjourney.server.render import job_view, next_hint
from tests.conftest import load_fixture

FIXTURE = "video-2026.json"


def payload(name: str) -> Any:
    return copy.deepcopy(load_fixture("reconstructed", FIXTURE)[name])


def facts() -> dict[str, Any]:
    return load_fixture("reconstructed", FIXTURE)


def running(store: JobStore, nonce: str, **fields: Any) -> Job:
    job = Job(nonce=nonce, kind="animate", prompt="a small bird on a branch", submitted=True, account="main")
    for key, value in fields.items():
        setattr(job, key, value)
    store.add(job)
    return job


def test_the_fixture_is_marked_reconstructed() -> None:
    assert "RECONSTRUCTED" in facts()["_provenance"]["source"]


def test_an_animate_progress_frame_is_progress_not_a_result() -> None:
    frame = payload("animate_progress")
    content = mj.parse_content(frame["content"])
    assert (content.kind, content.state, content.progress, content.mode) == ("video", "progress", 31, "fast")
    assert mj.is_progress_attachment(frame["attachments"][0]["filename"])
    assert mj.message_job_uuid(frame) == "9bdd338a-3876-4b4b-b175-af661e8a8cab"
    store = JobStore()
    job = running(store, frame["nonce"])
    assert find_job(store, frame, account="main", user_id=facts()["user_id"]) is job
    effect = apply_message(store, job, frame, account="main", cdn_base=facts()["cdn_base"])
    assert not effect.ended and job.status is JobStatus.IN_PROGRESS and job.progress == 31
    assert job.video_urls == [] and job.preview_url == frame["attachments"][0]["url"]


def test_the_final_video_grid_completes_with_four_mp4_links_and_the_animated_webp() -> None:
    frame, grid = payload("animate_progress"), payload("final_video_grid")
    expected = grid.pop("expected")
    assert mj.parse_content(grid["content"]).kind == expected["kind"]
    assert mj.parse_content(grid["content"]).prompt == expected["prompt"]
    store = JobStore()
    job = running(store, frame["nonce"])
    apply_message(store, job, frame, account="main", cdn_base=facts()["cdn_base"])
    # The final message carries no nonce and no interaction: the job's uuid (seen on its progress frame) finds it.
    assert find_job(store, grid, account="main", user_id=facts()["user_id"]) is job
    effect = apply_message(store, job, grid, account="main", cdn_base=facts()["cdn_base"])
    assert effect.ended and effect.succeeded
    job.complete()  # what the engine does with an ended effect
    assert job.video_urls == expected["video_urls"]
    assert job.image_url == grid["attachments"][0]["url"]  # the animated WebP: the still the model sees
    assert [b.name for b in job.buttons] == expected["button_names"]
    assert job.image_urls == [job.image_url]  # no per-image CDN URLs: a video grid is not an image grid
    view = job_view(job)
    assert view.video_urls == expected["video_urls"] and "video_urls" in view.next and "U1'..'U4" in view.next


def test_a_pick_gives_one_mp4_and_extend_buttons_and_is_found_again_by_its_press() -> None:
    pick = payload("video_pick")
    expected = pick.pop("expected")
    content = mj.parse_content(pick["content"])
    assert (content.kind, content.image_index, content.state) == (expected["kind"], expected["image_index"], "done")
    store = JobStore()
    job = running(store, "1511320000000000200", kind="upscale", interaction_id="1511320000000000201")
    job.parent_message_id, job.parent_button = pick["message_reference"]["message_id"], "video_upscale_2"
    store.index(job, job.interaction_id)
    assert find_job(store, pick, account="main", user_id=facts()["user_id"]) is job
    assert apply_message(store, job, pick, account="main", cdn_base=facts()["cdn_base"]).succeeded
    job.complete()
    assert job.job_uuid == expected["job_uuid"]
    assert job.video_urls == expected["video_urls"]
    assert [b.name for b in job.buttons] == expected["button_names"]
    assert store.get(press_key(job.parent_message_id, "video_upscale_2")) is job
    assert "extend_high" in next_hint(job)


def test_an_image_to_video_grid_of_two_has_two_mp4s() -> None:
    grid = payload("image_to_video_grid_bs2")
    expected = grid.pop("expected")
    store = JobStore()
    sent = grid.pop("sent_prompt")
    job = Job(
        nonce="1511320000000000500",
        kind="imagine",
        prompt=sent,
        normalised_prompt=mj.normalise_prompt(sent),
        submitted=True,
        account="main",
    )
    store.add(job)
    # Nothing but the echo names this job (its first message is gone): the echo dropped --no and rewrote --video.
    found = find_job(store, grid, account="main", user_id=facts()["user_id"], gone={"x"})
    assert found is job
    apply_message(store, job, grid, account="main", cdn_base=facts()["cdn_base"])
    assert job.video_urls == expected["video_urls"] and job.job_uuid == expected["job_uuid"]
    assert mj.parse_content(grid["content"]).kind == "video"


@pytest.mark.parametrize("pair", range(2))
def test_correlation_survives_the_echoes_midjourney_rewrites(pair: int) -> None:
    rewrite = facts()["echo_rewrites"][pair]
    assert rewrite["sent"] != rewrite["echoed"]
    assert mj.normalise_prompt(rewrite["sent"]) == mj.normalise_prompt(rewrite["echoed"])


def test_different_prompts_still_differ_once_normalised() -> None:
    assert mj.normalise_prompt("a cat --p abc --ar 2:3") != mj.normalise_prompt("a dog --p abc --ar 2:3")
    assert mj.normalise_prompt("a cat --motion low --video") != mj.normalise_prompt("a cat --motion high --video")


def test_what_each_video_button_is_and_costs() -> None:
    grid, pick = payload("final_video_grid"), payload("video_pick")
    ids = [c["custom_id"] for row in grid["components"] + pick["components"] for c in row["components"]]
    actions = {mj.button_name(i): mj.button_action(i) for i in ids}
    assert actions["video_upscale_3"].kind == "upscale" and actions["video_upscale_3"].index == 3
    assert (actions["animate_high_extend"].kind, actions["animate_high_extend"].detail) == ("extend", "High")
    assert (actions["animate_low_extend"].kind, actions["animate_low_extend"].detail) == ("extend", "Low")
    assert mj.press_cost(actions["video_upscale_1"]) == "upscale"
    assert mj.press_cost(actions["animate_low_extend"]) == "video"
    assert mj.press_cost(mj.button_action("MJ::JOB::animate_high::1::9bdd338a-3876-4b4b-b175-af661e8a8cab::SOLO")) == (
        "video"
    )
    assert mj.press_cost(actions["reroll"], on_video=True) == "video"
    assert mj.press_cost(actions["reroll"]) == "job"
    buttons = mj.parse_buttons(pick["components"])
    for spelling in ("extend_high", "Extend (High motion)", "extend"):
        found = mj.find_button(buttons, spelling)
        assert found is not None and found.name == "animate_high_extend", spelling
    assert mj.find_button(mj.parse_buttons(grid["components"]), "U2").name == "video_upscale_2"  # type: ignore[union-attr]
    unlabelled = copy.deepcopy(grid["components"])
    for component in unlabelled[0]["components"]:
        component.pop("label", None)
    for spelling in ("U3", "u 3", "upscale 3"):
        found = mj.find_button(mj.parse_buttons(unlabelled), spelling)
        assert found is not None and found.name == "video_upscale_3", spelling


def test_a_pick_press_is_built_like_any_button_press() -> None:
    grid = payload("final_video_grid")
    custom_id = grid["components"][0]["components"][1]["custom_id"]
    body = mj.button_press(
        application_id="936929561302675456",
        guild_id=None,
        channel_id=grid["channel_id"],
        message_id=grid["id"],
        message_flags=0,
        session_id="made-up-session",
        nonce="1511320000000000600",
        custom_id=custom_id,
    )
    assert body["type"] == 3 and body["message_id"] == grid["id"]
    assert body["data"] == {
        "component_type": 2,
        "custom_id": "MJ::JOB::video_virtual_upscale::2::9bdd338a-3876-4b4b-b175-af661e8a8cab",
    }


def test_the_animate_modal_waits_for_a_prompt_and_its_submit_is_built() -> None:
    modal = payload("animate_modal")
    store = JobStore()
    job = running(store, modal["d"]["nonce"])
    apply_interaction(store, job, modal["event"], modal["d"])
    assert job.status is JobStatus.NEEDS_INPUT and job.modal is not None
    assert job.modal.custom_id.startswith("MJ::AnimateModal::9bdd338a-3876-4b4b-b175-af661e8a8cab::1::high::")
    assert job.modal.prefilled == "a small bird on a branch --raw --v 7"
    body = mj.modal_submit(
        application_id="936929561302675456",
        guild_id=None,
        channel_id=modal["d"]["channel_id"],
        session_id="made-up-session",
        nonce="1511320000000000700",
        modal_interaction_id=job.modal.interaction_id,
        modal_custom_id=job.modal.custom_id,
        inputs={job.modal.inputs[0][0]: "a small bird taking off"},
    )
    field = body["data"]["components"][0]["components"][0]
    assert body["type"] == 5 and field == {
        "type": 4,
        "custom_id": "MJ::AnimateModal::prompt",
        "value": "a small bird taking off",
    }


def test_a_v8_single_has_no_upscale_zoom_or_pan_and_says_what_it_can_do() -> None:
    buttons = mj.parse_buttons(payload("v8_single_components"))
    kinds = {mj.button_action(b.custom_id).kind for b in buttons}
    assert kinds == {"variation", "animate", "bookmark"}
    job = Job(nonce="1", kind="upscale", prompt="a glass city --v 8", status=JobStatus.COMPLETED, buttons=buttons)
    job.result_message_id = "2"
    hint = next_hint(job)
    assert "vary_subtle" in hint and "animate_high" in hint


def test_a_pending_mod_message_fails_the_job_holds_the_account_and_lists_its_buttons() -> None:
    message = payload("pending_mod_message")
    store = JobStore()
    job = running(store, message["nonce"], kind="imagine")
    assert find_job(store, message, account="main", user_id=facts()["user_id"]) is job
    effect = apply_message(store, job, message, account="main", cdn_base=facts()["cdn_base"])
    assert effect.ended and "Pending mod message" in (effect.error or "") and "acknowledge" in (effect.error or "")
    assert effect.hold and "person must" in effect.hold
    assert [b.label for b in job.buttons] == ["Acknowledge", "Resubmit"]
    assert job.result_message_id == message["id"] and job.message_flags == 64
    acknowledge, resubmit = (mj.button_action(b.custom_id) for b in job.buttons)
    assert mj.press_cost(acknowledge) is None and mj.press_cost(resubmit) == "job"
    job.fail(effect.error or "")
    hint = next_hint(job)
    assert "'Acknowledge' or 'Resubmit'" in hint and "only if they ask" in hint


def test_the_mp4_pattern_lives_in_one_place() -> None:
    assert VIDEO_PATH == "video/{uuid}/{i}.mp4"
    assert mj.video_url("https://cdn.midjourney.com/", "u", 3) == "https://cdn.midjourney.com/video/u/3.mp4"
    assert (
        mj.video_urls("https://cdn.midjourney.com", None, mj.parse_buttons(payload("video_pick")["components"])) == []
    )


def test_a_video_spends_eight_jobs_of_the_budget() -> None:
    budget = Budget(BudgetLimits(total=Limits(jobs_per_hour=10)))
    spend = budget.spend("video")
    assert spend.count == 8 and spend.bucket == "job" and spend.kind == "video"
    assert budget.remaining()["jobs_this_hour"] == 2
    with pytest.raises(BudgetExceeded, match="8 jobs"):
        budget.spend("video")
    budget.refund(spend)
    assert budget.remaining()["jobs_this_hour"] == 10
    tight = Budget(BudgetLimits(total=Limits(jobs_per_hour=7)))
    with pytest.raises(BudgetExceeded, match="more than the limit allows"):
        tight.spend("video")


def test_download_items_add_the_mp4s() -> None:
    grid = ["https://c/video/u/0.mp4", "https://c/video/u/1.mp4"]
    items = download_items("u", "https://d/a.webp", ["https://d/a.webp"], grid)
    assert items == [("https://d/a.webp", "u"), (grid[0], "u_video_1"), (grid[1], "u_video_2")]
    assert download_items("u", "https://d/a.webp", [], ["https://c/video/u/0.mp4"])[-1] == (
        "https://c/video/u/0.mp4",
        "u_video",
    )


def test_a_grid_without_u_buttons_still_has_its_four_images_and_a_hint() -> None:
    uuid = "0badf00d-aaaa-4bbb-8ccc-dddddddddddd"
    rows = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 2, "label": f"V{i}", "custom_id": f"MJ::JOB::variation::{i}::{uuid}"}
                for i in range(1, 5)
            ],
        }
    ]
    buttons = mj.parse_buttons(rows)
    urls = mj.grid_image_urls("https://cdn.midjourney.com", uuid, buttons)
    assert urls == [f"https://cdn.midjourney.com/{uuid}/0_{i}.png" for i in range(4)]
    job = Job(nonce="1", kind="imagine", prompt="a glass city --v 8", status=JobStatus.COMPLETED, buttons=buttons)
    job.image_urls, job.result_message_id = urls, "2"
    assert "V1'..'V4" in next_hint(job) and "U1" not in next_hint(job)
