"""`mcp-midjourney demo` end to end, as a new user runs it: the grid, the upscale and the video flow, files saved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_ends_with_a_video_and_saves_its_mp4(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    done = subprocess.run(
        [sys.executable, "-m", "mcp_midjourney", "demo", "--job-seconds", "0.4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "button='animate_high'" in done.stdout and "animate completed" in done.stdout
    assert "video 1: " in done.stdout and "extend_high" in done.stdout
    mp4 = out / "video_U1.mp4"
    assert mp4.read_bytes()[4:8] == b"ftyp"
    assert (out / "grid.png").exists() and (out / "upscale_U1.png").exists()
