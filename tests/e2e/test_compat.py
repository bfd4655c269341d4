"""The compatibility matrix's harness (`python -m compat`), offline: its reference row, the mcp SDK 2.x client
of this venv, through the real runner (a driver process spawning the server over stdio) against the simulator.
The other rows need their frameworks from the package index, so they run only in the command itself."""

from __future__ import annotations

from pathlib import Path

from compat.__main__ import FRAMEWORKS
from compat.report import render
from compat.runner import run_row


def test_the_reference_row_follows_a_job_to_its_upscale_with_one_job_each(tmp_path: Path) -> None:
    reference = next(f for f in FRAMEWORKS if f.own)
    # imagine returns after 1 s with the job still running: the scripted model must follow the result's hint.
    row = run_row(reference, "stdio", 3.0, tmp_path, timeout=120, server_settings={"MJ_DEFAULT_WAIT": "1"})
    report = row.report
    assert report.get("flow_ok"), (report, Path(row.log).read_text(encoding="utf-8")[-2000:])
    assert row.jobs == {"imagine": 1, "upscale": 1}
    assert row.interactions == 2
    imagine = report["steps"][0]
    assert [c["tool"] for c in imagine["calls"]][:2] == ["imagine", "get_message"]
    assert imagine["calls"][0]["outcome"].startswith(("queued", "in_progress"))
    assert imagine["status"] == "completed" and any(p.startswith("image") for p in imagine["received"])
    text = render([row], command="python -m compat", date="today", seconds=1.0, job_seconds=3.0, python="3.11")
    assert f"| {reference.title} |" in text and "| ok | 1 / 1 |" in text
    assert "Nothing: every row completed with one job per imagine." in text
