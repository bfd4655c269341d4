"""The engine (in process) against the simulator's faults: REST that copes, every Midjourney answer understood
in well under a second, time limits counted from the last progress, reconciliation after a lost session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from mcp_midjourney.commands.demo import server_env
from mcp_midjourney.config import load_settings
from mcp_midjourney.engine.engine import Engine, EngineError
from mcp_midjourney.engine.store import Job
from mcp_midjourney.models import JobStatus
from mcp_midjourney.simulator import SimulatorServer

pytestmark = pytest.mark.anyio

TOKEN = "faults-test-token.Qw7-not-a-real-secret"
RED, YELLOW = 16711680, 16776960


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        job_seconds=0.4, ack_seconds=0.02, heartbeat_interval_ms=400, token=TOKEN, ready_min_bytes=0
    ) as server:
        yield server


@asynccontextmanager
async def running(sim: SimulatorServer, **env: str) -> AsyncIterator[Engine]:
    settings = load_settings(server_env(sim, MJ_INTERACTION_INTERVAL="0.02", **env))
    engine = Engine(settings)
    async with anyio.create_task_group() as tg:
        await tg.start(engine.run)
        await engine.ready()
        try:
            yield engine
        finally:
            tg.cancel_scope.cancel()


async def finish(engine: Engine, job: Job, seconds: float = 15) -> Job:
    await engine.wait(job, seconds)
    return job


async def run_jobs(engine: Engine, prompts: list[str], seconds: float = 15) -> list[Job]:
    jobs: list[Job] = [await engine.imagine(p) for p in prompts]
    async with anyio.create_task_group() as tg:
        for job in jobs:
            tg.start_soon(finish, engine, job, seconds)
    return jobs


def assert_completed_and_own(sim: SimulatorServer, jobs: list[Job]) -> None:
    for job in jobs:
        assert job.status is JobStatus.COMPLETED, (job.prompt, job.status, job.error)
        info = sim.job_info(job.job_uuid or "")
        assert info is not None and info["nonce"] == job.nonce, (job.prompt, info)  # its own job, nobody else's
        assert info["echo"].startswith(job.prompt)


# --- REST that copes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "route"),
    [
        ({"status": 429, "count": 3, "scope": "user"}, "POST /interactions"),
        ({"status": 429, "count": 2, "scope": "shared"}, "POST /interactions"),
        ({"status": 429, "count": 2, "scope": "global"}, None),
        ({"status": 429, "count": 1, "scope": "cloudflare", "retry_after": 1.0}, "POST /interactions"),
        ({"status": 502, "count": 2}, "POST /interactions"),
        ({"status": 500, "count": 2}, "GET /guilds"),
        ({"status": 503, "count": 3}, None),
        ({"status": 0, "count": 2}, "POST /interactions"),  # the request never got an answer (nor handled)
        ({"status": 0, "count": 1, "handled": True}, "POST /interactions"),  # handled, then the answer was lost
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else str(v),
)
async def test_rest_faults_are_waited_out_and_every_job_completes_once(
    sim: SimulatorServer, fault: dict[str, Any], route: str | None
) -> None:
    async with running(sim) as engine:
        sim.fail_requests(route=route, **fault)
        jobs = await run_jobs(engine, [f"rest fault job {i}" for i in range(3)])
        assert_completed_and_own(sim, jobs)
        fired = [kind for _, kind, _ in sim.fault_log() if kind.startswith("rest")]
        assert len(fired) == fault["count"], fired
    # Every interaction reached the bot exactly once: a lost answer is never resent blindly.
    ours = [u for u in sim.job_states() if (sim.job_info(u) or {}).get("user_id") == sim.user_id]
    assert len(ours) == 3


async def test_a_lost_answer_to_a_form_submit_is_confirmed_by_its_echo_not_resent(sim: SimulatorServer) -> None:
    sim.set_remix(True)
    async with running(sim) as engine:
        grid = await finish(engine, await engine.imagine("a harbour before the remix"))
        asked = await engine.press(grid.handle, "V1")
        await engine.wait(asked, 10, until_input=True)
        assert asked.status is JobStatus.NEEDS_INPUT
        sim.fail_requests(status=0, count=1, handled=True, route="POST /interactions")  # taken, answer lost
        job = await finish(engine, await engine.submit_input(asked, "a harbour after the remix"))
        assert job.status is JobStatus.COMPLETED and job.kind == "variation", (job.status, job.error)
        assert [kind for _, kind, _ in sim.fault_log() if kind.startswith("rest")] == ["rest drop"]
    # The bot got the submit once: the grid and one variation, no second remix.
    ours = [u for u in sim.job_states() if (sim.job_info(u) or {}).get("user_id") == sim.user_id]
    assert len(ours) == 2, ours


async def test_a_rate_limited_account_is_paced_not_failed(sim: SimulatorServer) -> None:
    sim.set_rate_limit(2, 0.5)  # Discord's bucket: two interactions per half second
    async with running(sim) as engine:
        jobs = await run_jobs(engine, [f"paced {i}" for i in range(6)])
        assert_completed_and_own(sim, jobs)


async def test_a_stale_command_version_refreshes_the_index_and_retries_once(sim: SimulatorServer) -> None:
    async with running(sim) as engine:
        first = await finish(engine, await engine.imagine("before the update"))
        assert first.status is JobStatus.COMPLETED
        sim.bump_command_versions(new_ids=True)  # Midjourney shipped a new /imagine
        before = sim.stats().get("GET /guilds/{guild_id}/application-command-index", 0)
        jobs = await run_jobs(engine, ["after the update 1", "after the update 2"])
        assert_completed_and_own(sim, jobs)
        assert sim.stats()["GET /guilds/{guild_id}/application-command-index"] == before + 1


async def test_errors_that_never_end_fail_the_job_with_words_not_a_hang(sim: SimulatorServer) -> None:
    async with running(sim) as engine:
        route = "GET /guilds/{guild_id}/application-command-index"
        before = sim.stats().get(route, 0)
        sim.fail_requests(503, count=50, route="GET /guilds")
        with pytest.raises(EngineError) as info:
            await engine.imagine("never accepted")
        tries = sim.stats().get(route, 0) - before
        assert 1 < tries <= 5  # a few retries with capped backoff (not a loop until the job times out), then words
        assert "503" in str(info.value) and TOKEN not in str(info.value)
        sim.clear_faults()
        sim.fail_requests(429, count=1, route="POST /interactions", retry_after=120)  # longer than we will wait
        with pytest.raises(EngineError) as info:
            await engine.imagine("rate limited for two minutes")
        assert "rate limit" in str(info.value) and "120" in str(info.value)


# --- every Midjourney answer ---------------------------------------------------------------------------------

JOB_TITLES = [
    (
        "Banned prompt detected",
        "Sorry! Our AI moderator thinks this prompt is probably against our community standards.",
    ),
    ("Banned prompt", "This prompt contains a banned word."),
    ("Banned image prompt", "Sorry! Our AI moderator thinks this image is probably against our community standards."),
    ("Invalid parameter", "Unrecognized parameter(s): `--foo`"),
    ("Invalid prompt", "Your prompt could not be understood."),
    ("Invalid link", "The link you provided is not a valid image URL."),
    ("Invalid request", "You need at least two images to blend."),
    ("Empty prompt", "Your prompt appears to be empty. Please add some text and try again."),
    ("Queue full", "Your job queue is full. Please wait for a job to finish first, then resubmit this one."),
]
REFUSED_AFTER_START = [
    ("Request cancelled due to output filters", "Sorry! Our AI moderator has flagged the output of this job."),
    ("Job action restricted", "This action is not available for this job."),
    ("Duplicate images detected", "It appears you are trying to create the same image again."),
]
ACCOUNT_TITLES = [
    ("Action needed to continue", 'If you think this is a mistake, please press the "Appeal" button below.'),
    ("Action required to continue", "Please verify you're human to continue."),
    ("Please complete the task", "Complete the task below to verify you're human."),
    ("Pending mod message", "You have a pending moderation message. Please acknowledge it before using the bot."),
    ("Blocked", "You have been blocked from accessing Midjourney. This happens on repeated or serious ToS violations."),
    ("Credits exhausted", "You have run out of fast hours. Consider /relax or purchase more."),
    ("Subscription required", "You need an active subscription to use Midjourney."),
    ("Subscription paused", "Your subscription is paused. Resume it to keep creating."),
    ("Plan Cancelled", "Your plan has been cancelled."),
    ("Tos not accepted", "Please accept our Terms of Service before using the bot."),
]


def _sent_at(sim: SimulatorServer, title: str) -> float:
    return max(at for at, kind, detail in sim.fault_log() if kind == "answer" and detail == title)


async def _fails_fast(sim: SimulatorServer, engine: Engine, title: str, description: str, **how: Any) -> Job:
    sim.answer_with_embed(title, description, RED, prompt="answered job", **how)
    job = await finish(engine, await engine.imagine("an answered job"))
    assert job.status is JobStatus.FAILED, (title, job.status)
    assert job.error is not None and title in job.error and description.split(".")[0] in job.error, job.error
    latency = (job.finished_at or 0) - _sent_at(sim, title)
    assert 0 <= latency < 0.5, f"{title}: failed {latency:.3f}s after Midjourney said so"
    return job


@pytest.mark.parametrize(("title", "description"), JOB_TITLES, ids=[t for t, _ in JOB_TITLES])
async def test_each_error_title_fails_the_job_at_once_in_midjourneys_words(
    sim: SimulatorServer, title: str, description: str
) -> None:
    async with running(sim) as engine:
        await _fails_fast(sim, engine, title, description)
        assert engine.account_problem is None
        # The account keeps working after a job-level refusal.
        assert (await finish(engine, await engine.imagine("the next job"))).status is JobStatus.COMPLETED


@pytest.mark.parametrize(("title", "description"), REFUSED_AFTER_START, ids=[t for t, _ in REFUSED_AFTER_START])
async def test_refusals_after_the_job_started_fail_it_at_once(
    sim: SimulatorServer, title: str, description: str
) -> None:
    async with running(sim) as engine:
        job = await _fails_fast(sim, engine, title, description, after_start=True)
        assert job.progress > 0  # it had started: the refusal came with no nonce, matched by its interaction
        assert engine.account_problem is None


@pytest.mark.parametrize(("title", "description"), ACCOUNT_TITLES, ids=[t for t, _ in ACCOUNT_TITLES])
async def test_account_titles_fail_the_job_and_hold_the_account_with_what_a_person_must_do(
    sim: SimulatorServer, title: str, description: str
) -> None:
    async with running(sim) as engine:
        sim.set_job_duration(1.0)
        running_job = await engine.imagine("already running")
        await _fails_fast(sim, engine, title, description)
        problem = engine.account_problem or ""
        assert title in problem and "person must" in problem, problem
        # No new work is sent on a held account, and the refusal says why and what to do.
        with pytest.raises(EngineError) as info:
            await engine.imagine("refused while held")
        assert title in str(info.value) and "person must" in str(info.value)
        # A job already running on Midjourney's side is not abandoned.
        assert (await finish(engine, running_job)).status is JobStatus.COMPLETED


async def test_job_queued_is_queued_not_a_failure(sim: SimulatorServer) -> None:
    async with running(sim) as engine:
        sim.answer_with_embed("Job queued", "Your job will start when one of your running jobs finishes.", YELLOW)
        job = await engine.imagine("held in the queue")
        with anyio.fail_after(5):
            while job.queued_note is None or "Midjourney queued" not in job.queued_note:
                await engine.wait(job, 0.2)
        assert job.status is JobStatus.QUEUED and job.error is None
        assert (await finish(engine, job)).status is JobStatus.COMPLETED


async def test_midjourneys_own_queue_holds_jobs_beyond_its_concurrency(sim: SimulatorServer) -> None:
    sim.configure(max_running_jobs=1)
    async with running(sim) as engine:
        jobs = await run_jobs(engine, [f"one at a time {i}" for i in range(3)])
        assert_completed_and_own(sim, jobs)


# --- time limits ---------------------------------------------------------------------------------------------


async def test_a_slow_job_that_keeps_progressing_is_not_timed_out(sim: SimulatorServer) -> None:
    sim.configure(job_seconds=3.0, progress_steps=8)  # an update every ~0.33 s, 3 s in all
    async with running(sim, MJ_JOB_TIMEOUT="1") as engine:
        job = await finish(engine, await engine.imagine("slow but steady"))
        assert job.status is JobStatus.COMPLETED


async def test_a_stalled_job_times_out_a_timeout_after_its_last_update(sim: SimulatorServer) -> None:
    sim.configure(job_seconds=1.2, progress_steps=4)
    sim.stall_next_jobs(1, after=2)
    async with running(sim, MJ_JOB_TIMEOUT="1") as engine:
        job = await engine.imagine("stalls midway")
        await finish(engine, job, 10)
        assert job.status is JobStatus.FAILED and "Timed out" in (job.error or "") and job.progress > 0
        stalled_at = max(at for at, kind, _ in sim.fault_log() if kind == "stall")
        waited = (job.finished_at or 0) - stalled_at
        # The last update came one step (0.24 s) before the stall; the watchdog checks every 0.2 s.
        assert 0.6 <= waited <= 1.5, waited


# --- the gateway's gaps --------------------------------------------------------------------------------------


async def test_jobs_that_finish_during_an_invalid_session_are_reconciled_over_rest(sim: SimulatorServer) -> None:
    sim.set_job_duration(0.8)
    async with running(sim) as engine:
        jobs = [await engine.imagine(p) for p in ("gap a", "gap b", "gap a")]
        await anyio.sleep(0.15)
        sim.invalidate_sessions()  # the client waits 1-3 s before identifying: the jobs finish in the gap
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(finish, engine, job, 15)
        assert_completed_and_own(sim, jobs)
        assert sim.stats().get("GET /channels/{channel_id}/messages", 0) >= 1  # read back over REST


async def test_a_finished_job_whose_progress_was_never_seen_is_matched_after_the_gap(sim: SimulatorServer) -> None:
    sim.set_job_duration(0.5)
    async with running(sim) as engine:
        sim.freeze_connections()
        sim.forget_sessions()  # the resume will be refused: everything in between is gone for good
        job = await engine.imagine("finished unseen")
        await finish(engine, job, 15)
        assert_completed_and_own(sim, [job])


async def test_other_users_jobs_with_the_same_prompt_are_never_taken(sim: SimulatorServer) -> None:
    sim.shadow_prompts(True)
    async with running(sim) as engine:
        jobs = await run_jobs(engine, ["the same words"] * 3)
        assert_completed_and_own(sim, jobs)
        assert len({j.job_uuid for j in jobs}) == 3
