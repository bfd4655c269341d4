"""How the pool benchmark reports a run: the target applies unless the server's one core was the limit.

A run whose server kept its core busy (CPU time close to the wall time) measures the CPU, so its wall-time row
is reported as a capacity figure without a verdict; routing and balance keep their targets at any load. The
CPU figure itself comes from /proc, read for this process's children.
"""

from __future__ import annotations

import subprocess
import sys
import time
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
    ratio, routing, balance = figures(slow, capacity=_saturated(slow))
    assert ratio.met is False and ratio.target == "≤ 1.10" and ratio.value == "1.200"
    assert "CPU of the server process: 3.0 s, 50% of one core" in ratio.note
    assert routing.met is True and balance.met is True


def test_a_cpu_bound_run_is_a_capacity_figure_but_routing_keeps_its_target() -> None:
    bound = _result(wall=6.0, cpu=6.0 * SATURATED + 0.01, routed=99, problems=["job 7: got a / b, sent c"])
    assert _saturated(bound)
    ratio, routing, _ = figures(bound, capacity=_saturated(bound))
    assert ratio.met is None and ratio.verdict == "—" and "CPU-bound" in ratio.name
    assert ratio.value == "1.200 (16.7 jobs/s)"
    assert routing.met is False  # a misrouted job is a failure whatever the load


def test_without_a_cpu_figure_the_target_applies() -> None:
    unknown = _result(wall=5.2, cpu=None)
    assert not _saturated(unknown)
    [ratio, *_] = figures(unknown, capacity=_saturated(unknown))
    assert ratio.met is True and "CPU" not in ratio.note


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_children_cpu_counts_only_the_marked_child() -> None:
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    marked = subprocess.Popen([sys.executable, "-c", busy, "bench-cpu-marker"])
    other = subprocess.Popen([sys.executable, "-c", busy])
    try:
        deadline = time.monotonic() + 20
        used = 0.0
        while time.monotonic() < deadline:
            used = children_cpu_seconds("bench-cpu-marker") or 0.0
            if used >= 0.3:
                break
            time.sleep(0.05)
        assert 0.3 <= used < 0.6  # the marked child's 0.3 s, not the other one's too
        assert children_cpu_seconds("no-such-marker-anywhere") == 0.0
    finally:
        for process in (marked, other):
            process.kill()
            process.wait()
