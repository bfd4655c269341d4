"""The rule that tells a retry from a new request (server/calls.py), on a clock the test moves."""

from __future__ import annotations

import pytest

from mcp_midjourney.engine.store import Job
from mcp_midjourney.models import JobStatus
from mcp_midjourney.server.calls import KEEP_FINISHED, Call, Calls


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def job(status: JobStatus = JobStatus.IN_PROGRESS) -> Job:
    made = Job(nonce="1", kind="imagine", prompt="a cat")
    made.status = status
    return made


def started(calls: Calls, client: str, key: str, the_job: Job | None = None) -> tuple[Call, Job]:
    call = calls.begin(client, "imagine", key)
    given = call.job or the_job or job()
    calls.started(call, given)
    return call, given


def test_a_cancelled_call_hands_its_job_to_the_next_identical_call_once_and_teaches_the_timeout() -> None:
    clock = Clock()
    calls = Calls(clock=clock)
    first, first_job = started(calls, "c", "a cat")
    clock.now += 5
    calls.end(first, cancelled=True)
    retry = calls.begin("c", "imagine", "a cat")
    assert retry.job is first_job and retry.inherited
    assert calls.cap("c", 30) == pytest.approx(4.0)  # ends before the client's 5 s
    assert calls.begin("c", "imagine", "a cat").job is None  # handed on once: a third call is new
    assert calls.begin("c", "imagine", "a dog").job is None  # other arguments: a new job


def test_a_client_that_never_cancels_is_recognised_by_its_retry() -> None:
    clock = Clock()
    calls = Calls(clock=clock)
    _first, first_job = started(calls, "c", "a cat")  # still waiting on the server: the client gave up silently
    clock.now += 5.2
    retry = calls.begin("c", "imagine", "a cat")
    assert retry.job is first_job
    assert calls.cap("c", 30) < 5
    assert calls.cap("other client", 30) == 30


def test_identical_calls_at_once_each_get_their_own_job_and_their_retries_one_each() -> None:
    clock = Clock()
    calls = Calls(clock=clock)
    first = [started(calls, "c", "a cat") for _ in range(6)]  # all still waiting: six requests
    assert len({id(j) for _c, j in first}) == 6
    clock.now += 5
    for call, _j in first:
        calls.end(call, cancelled=True)
    retries = [calls.begin("c", "imagine", "a cat").job for _ in range(7)]
    assert {id(j) for j in retries[:6]} == {id(j) for _c, j in first}  # each abandoned job to one retry
    assert retries[6] is None


def test_answered_failed_and_old_jobs_are_not_handed_on() -> None:
    clock = Clock()
    calls = Calls(clock=clock)
    answered, _ = started(calls, "c", "answered")
    calls.end(answered, cancelled=False)
    assert calls.begin("c", "imagine", "answered").job is None

    failed, _ = started(calls, "c", "failed", job(JobStatus.FAILED))
    clock.now += 5
    calls.end(failed, cancelled=True)
    assert calls.begin("c", "imagine", "failed").job is None  # trying again is right after a failure

    done = job(JobStatus.COMPLETED)
    done.finished_at = clock.now
    old, _ = started(calls, "c", "old", done)
    clock.now += 5
    calls.end(old, cancelled=True)
    clock.now += KEEP_FINISHED
    assert calls.begin("c", "imagine", "old").job is None


def test_a_quick_stop_teaches_no_timeout_and_recent_lists_the_newest_first() -> None:
    clock = Clock()
    calls = Calls(clock=clock)
    first, first_job = started(calls, "c", "one")
    clock.now += 0.5
    calls.end(first, cancelled=True)
    assert calls.cap("c", 30) == 30
    _second, second_job = started(calls, "c", "two")
    assert calls.recent() == [second_job, first_job]
