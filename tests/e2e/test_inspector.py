"""The MCP Inspector's CLI (the standard debugging client, in Node) against the server and the simulator.

The inspector is installed by the session fixture into ``.cache/inspector`` (git-ignored) with npm, once; where
npm is missing or the install fails, the tests skip with the reason. Version 0.15.0 is pinned: it is the last
release that runs on Node 20 (later ones need Node >= 22), and its CLI flags are the ones used here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_midjourney.commands.demo import server_env
from mcp_midjourney.simulator import SimulatorServer

INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "inspector"
INSTALL_TIMEOUT = 240


@pytest.fixture(scope="session")
def inspector() -> Path:
    """The inspector's ``mcp-inspector`` executable, installed on first use."""
    binary = CACHE / "node_modules" / ".bin" / "mcp-inspector"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("npm/node not found: the MCP Inspector test needs Node.js")
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--loglevel=error", INSPECTOR]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install {INSPECTOR} took longer than {INSTALL_TIMEOUT} s")
    if done.returncode != 0 or not binary.exists():
        pytest.skip(f"npm install {INSPECTOR} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return binary


def run_inspector(inspector: Path, sim: SimulatorServer, *method: str) -> dict[str, Any]:
    """`mcp-inspector --cli -e MJ_...=... <python> -m mcp_midjourney --method ...`; its JSON answer."""
    env = server_env(sim)
    settings = [arg for key, value in env.items() if key.startswith("MJ_") for arg in ("-e", f"{key}={value}")]
    command = [str(inspector), "--cli", *settings, sys.executable, "-m", "mcp_midjourney", "--method", *method]
    # The inspector needs node on PATH; the server gets its settings from the -e flags, as a user would pass them.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MJ_")}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"inspector failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    assert sim.token not in done.stdout
    answer: dict[str, Any] = json.loads(done.stdout[done.stdout.index("{") :])
    return answer


def test_the_inspector_lists_the_tools(inspector: Path, sim: SimulatorServer) -> None:
    answer = run_inspector(inspector, sim, "tools/list")
    tools = {tool["name"]: tool for tool in answer["tools"]}
    assert {"imagine", "press_button", "get_message"} <= set(tools)
    assert "prompt" in tools["imagine"]["inputSchema"]["properties"]
    assert tools["imagine"].get("outputSchema"), "structured results need an outputSchema"


def test_the_inspector_calls_imagine(inspector: Path, sim: SimulatorServer) -> None:
    answer = run_inspector(
        inspector,
        sim,
        "tools/call",
        "--tool-name",
        "imagine",
        "--tool-arg",
        "prompt=a lighthouse in a storm, seen by the inspector",
        "wait_seconds=20",
    )
    assert not answer.get("isError"), answer
    job = answer["structuredContent"]
    assert job["status"] in ("completed", "in_progress"), job
    assert job["message_id"].isdigit()
    if job["status"] == "completed":
        assert len(job["image_urls"]) == 4
    assert any(block.get("type") == "text" and "imagine" in block.get("text", "") for block in answer["content"])
