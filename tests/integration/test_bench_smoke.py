"""The benchmark suite's dispatch, memory and shared-state measurements run, at tiny counts, and say sensible things.

No timing thresholds here (timed assertions flake): only that each benchmark runs end to end and that what
it reports is consistent (our jobs complete, the store stays within its bound, the figures are well formed).
"""

from __future__ import annotations

import pytest

from bench import dispatch, memory

pytestmark = pytest.mark.anyio


async def test_dispatch_benchmark_runs_a_small_stream() -> None:
    recorded = await dispatch.simulator_frames(jobs=2, messages=2)
    result = await dispatch.measure(events=3000, recorded=recorded)

    assert result.events >= 3000
    assert result.seconds > 0 and result.json_seconds > 0
    assert result.mix["ours"] > 0 and sum(result.mix.values()) == result.events
    assert 0.05 < result.mix["ours"] / result.events < 0.2  # about one event in ten is ours
    assert result.our_jobs > 0 and result.our_jobs_completed == result.our_jobs  # every one of ours finished
    assert "simulator gateway recording" in result.sources
    [figure] = dispatch.figures(result)
    assert figure.value.endswith("/s") and figure.met in (True, False)


async def test_memory_benchmark_counts_bytes_and_stays_bounded() -> None:
    per_job = await memory.per_job(50)
    assert per_job.completed == 50
    assert 500 < per_job.bytes_per_job < 1_000_000

    bounded = await memory.bounded(jobs=300, store_limit=100)
    assert bounded.completed == 300
    assert bounded.store_len <= 100  # finished jobs beyond the bound were evicted
    assert bounded.rss_end_kib > 0 and bounded.peak_kib >= bounded.rss_start_kib

    rows = memory.figures(per_job, bounded)
    assert [r.name.split(",")[0] for r in rows] == ["Memory per finished job (store)", "Peak RSS"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_shared_state_benchmark_routes_every_job_and_never_over_commits(transport: str, tmp_path) -> None:
    import shutil

    from bench import shared

    if transport == "http" and shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH (Debian: apt-get install redis-server; .ci/run does)")
    result = await shared.measure(
        transport=transport, workdir=tmp_path, servers=2, accounts=2, jobs=12, concurrency=2, job_seconds=0.5
    )
    assert result.problems == [] and result.routed == 12
    assert result.over_commits == 0 and result.peak <= 2
    assert [figure.met for figure in shared.figures(result)][1:] == [True, True]
