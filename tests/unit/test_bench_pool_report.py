"""How the pool benchmark reports a run: the target applies unless the server's one core was the limit.

A run whose server kept its core busy (CPU time close to the wall time) measures the CPU, so its wall-time row
is shown without a verdict (with the reason, and the verdict it would have had); routing and balance keep their
targets at any load. The CPU figure comes from /proc, read for this process's own children only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import children_cpu_seconds
from bench.throughput import SATURATED, ThroughputResult, _saturated, figures


def _result(
    *, wall: float, cpu: float | None, routed: int = 100, problems: list[str] | None = None
) -> ThroughputResult:
    return ThroughputResult(
        jobs=100,
        accounts=2,
        concurrency=5,
        queue_size=10,
        job_seconds=0.5,
        interaction_interval=0.05,
        mode="stdio",
        wall=wall,
        completed=100,
        routed=routed,
        per_account={"main": 50, "pool01": 50},
        problems=problems or [],
        cpu_seconds=cpu,
    )


def test_a_run_below_saturation_is_judged_against_the_target() -> None:
    slow = _result(wall=6.0, cpu=3.0)  # ideal 5 s: ratio 1.2, server half busy
    assert not _saturated(slow)
    ratio, routing, balance = figures(slow, waive_when_saturated=True)
    assert ratio.met is False and ratio.verdict == "**not met**" and ratio.value == "1.200" and not ratio.waived
    assert "CPU of the server process: 3.0 s, 50% of one core" in ratio.note
    assert "16.7 jobs/s (the schedule allows at most 20.0/s)" in ratio.note
    assert routing.met is True and balance.met is True


def test_a_saturated_run_is_shown_without_a_verdict_but_routing_keeps_its_target() -> None:
    bound = _result(wall=6.0, cpu=6.0 * SATURATED + 0.01, routed=99, problems=["job 7: got a / b, sent c"])
    assert _saturated(bound)
    ratio, routing, _ = figures(bound, waive_when_saturated=True)
    assert ratio.met is None and ratio.verdict == "not applied" and ratio.target == "≤ 1.10"
    assert ratio.value == "1.200 (server CPU 85%)"
    assert "≥ 85%" in ratio.waived and "would not be met" in ratio.waived
    assert routing.met is False  # a misrouted job is a failure whatever the load
    # Only the run that asks for it may be waived: the same result is judged otherwise.
    [judged, *_] = figures(bound)
    assert judged.met is False and not judged.waived


def test_the_waiver_says_when_the_target_would_have_been_met() -> None:
    [ratio, *_] = figures(_result(wall=5.2, cpu=5.1), waive_when_saturated=True)
    assert ratio.met is None and "would be met" in ratio.waived


def test_without_a_cpu_figure_the_target_applies() -> None:
    unknown = _result(wall=5.2, cpu=None)
    assert not _saturated(unknown)
    [ratio, *_] = figures(unknown, waive_when_saturated=True)
    assert ratio.met is True and "CPU" not in ratio.note and not ratio.waived


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_children_cpu_counts_only_the_marked_child() -> None:
    busy = (
        "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\n"
        "print('done', flush=True)\ntime.sleep(30)\n"
    )
    # An unmarked child (its program spells the marker in two halves) whose own child, our grandchild,
    # carries the marker: neither may be counted.
    nested = (
        "import subprocess, sys\n"
        f"inner = subprocess.Popen([sys.executable, '-c', {busy!r}, 'bench-cpu-' + 'marker'], stdout=subprocess.PIPE)\n"
        "inner.stdout.readline()\n" + busy
    )
    assert children_cpu_seconds("bench-cpu-marker") is None  # no such child yet
    marked = subprocess.Popen([sys.executable, "-c", busy, "bench-cpu-marker"], stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen([sys.executable, "-c", nested], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for process in (marked, other):  # each has burnt its 1.0 s of CPU (the grandchild too)
            assert process.stdout is not None and process.stdout.readline().strip() == "done"
        used = children_cpu_seconds("bench-cpu-marker")
        # The marked child's share only (its 1.0 s plus start-up, even on a loaded machine): two would be >= 2.0.
        assert used is not None and 1.0 <= used < 1.7
        assert children_cpu_seconds("no-such-marker-anywhere") is None
    finally:
        marked.kill()
        os.killpg(other.pid, signal.SIGKILL)  # the grandchild with it
        for process in (marked, other):
            process.wait()
