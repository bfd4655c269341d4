"""One row of the matrix: the framework's venv, a simulator, our server, the driver; and what the simulator saw.

Each framework gets its own venv under `.compat/<name>/` (git-ignored), made here with the framework from the
package index. Its driver (`compat/drivers/<name>.py`) runs in that venv and spawns our server itself over stdio,
from this checkout's interpreter; for the HTTP rows this process starts the server (`mcp-midjourney serve
--transport http`) on a free loopback port and the driver connects by URL. Every row has its own simulator, so
the jobs it counts (POST /interactions, and the jobs the fake bot started, by kind) are that row's alone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_midjourney.commands.demo import server_env
from mcp_midjourney.simulator import SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".compat"
DRIVERS = Path(__file__).resolve().parent / "drivers"


@dataclass(frozen=True)
class Framework:
    name: str  # the row's key and the venv's folder
    title: str
    install: tuple[str, ...]  # pip requirements, from the package index
    driver: str  # compat/drivers/<driver>.py
    transports: tuple[str, ...] = ("stdio",)
    own: bool = False  # runs in this project's own venv (mcp 2.x is its dependency): nothing to install
    # The settings the README gives for this framework (its client's, and the server's MJ_*): when any are set,
    # the matrix has one more row, over stdio, with them.
    tuned: tuple[tuple[str, Any], ...] = ()
    server_tuned: tuple[tuple[str, str], ...] = ()


@dataclass
class Row:
    framework: Framework
    transport: str
    tuned: bool = False  # run with the README's settings instead of the defaults
    report: dict[str, Any] = field(default_factory=dict)
    install_error: str | None = None
    jobs: dict[str, int] = field(default_factory=dict)  # kind -> jobs the simulated bot started
    interactions: int = 0
    log: str = ""


def _python(framework: Framework) -> Path:
    return Path(sys.executable) if framework.own else VENVS / framework.name / "bin" / "python"


def ensure_venv(framework: Framework, *, reinstall: bool = False) -> str | None:
    """Make the framework's venv and install it; None when it is ready, or why it is not."""
    if framework.own:
        return None
    venv = VENVS / framework.name
    marker = venv / ".installed"
    wanted = "\n".join(framework.install)
    if not reinstall and marker.exists() and marker.read_text(encoding="utf-8") == wanted:
        return None
    VENVS.mkdir(exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *framework.install],
    ]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if "ERROR" in line or "error" in line] or lines
            return " ".join(errors[-2:])[:400] if errors else f"exit code {done.returncode}"
    marker.write_text(wanted, encoding="utf-8")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the HTTP server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the HTTP server did not listen on port {port} within {seconds:.0f} s")


def run_row(
    framework: Framework,
    transport: str,
    job_seconds: float,
    workdir: Path,
    timeout: float,
    server_settings: dict[str, str] | None = None,
    *,
    tuned: bool = False,
) -> Row:
    """Run the driver of one framework over one transport against a fresh simulator; never raises.

    `server_settings` are MJ_* variables for the server on top of the simulator's (none in the matrix: defaults)."""
    row = Row(framework, transport, tuned=tuned)
    workdir = workdir / f"{framework.name}-{transport}{'-tuned' if tuned else ''}"
    workdir.mkdir(parents=True, exist_ok=True)
    out, log, server_log = workdir / "report.json", workdir / "driver.log", workdir / "server.log"
    http: subprocess.Popen[bytes] | None = None
    try:
        with SimulatorServer(job_seconds=job_seconds) as sim, server_log.open("wb") as server_err:
            # DEBUG logs (to stderr, kept in the row's folder) change nothing the client sees.
            server = dict(framework.server_tuned) if tuned else {}
            env = server_env(sim, MJ_LOG_LEVEL="DEBUG", **server, **(server_settings or {}))
            settings: dict[str, Any] = {"transport": transport, "tuned": dict(framework.tuned) if tuned else {}}
            if transport == "http":
                port = _free_port()
                http = subprocess.Popen(
                    [sys.executable, "-m", "mcp_midjourney", "serve", "--transport", "http", "--port", str(port)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=server_err,
                    stderr=server_err,
                )
                _wait_for_port(port, http)
                settings["url"] = f"http://127.0.0.1:{port}/mcp"
            else:
                settings.update(command=sys.executable, args=["-m", "mcp_midjourney"], env=env)
            config = workdir / "config.json"
            config.write_text(json.dumps(settings), encoding="utf-8")
            try:
                driver_env = {k: v for k, v in os.environ.items() if k in ("HOME", "PATH", "LANG", "TERM", "USER")}
                # No key for any model provider is set: nothing may reach a model's API.
                driver_env.update(PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore", TMPDIR=str(workdir))
                stopped = None
                with log.open("w", encoding="utf-8") as driver_log:
                    driver = subprocess.Popen(
                        [str(_python(framework)), str(DRIVERS / f"{framework.driver}.py"), str(config), str(out)],
                        cwd=workdir,
                        env=driver_env,
                        stdin=subprocess.DEVNULL,
                        stdout=driver_log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its group holds the servers it spawned: stopped together
                    )
                    try:
                        driver.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        stopped = f"the driver did not finish within {timeout:.0f} s and was stopped"
                        os.killpg(driver.pid, signal.SIGKILL)
                        driver.wait()
                if out.exists():
                    row.report = json.loads(out.read_text(encoding="utf-8"))
                else:
                    tail = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()][-3:]
                    row.report = {"connect_error": stopped or "the driver wrote no report: " + " | ".join(tail)[:400]}
                if stopped and out.exists():
                    row.report.setdefault("notes", []).append(stopped)
                time.sleep(1.0)  # let a last interaction land before counting
                row.interactions = sim.stats().get("POST /interactions", 0)
                for uuid in sim.job_states():
                    info = sim.job_info(uuid) or {}
                    kind = str(info.get("kind", "?"))
                    row.jobs[kind] = row.jobs.get(kind, 0) + 1
            finally:
                if http is not None:  # before the simulator stops, so the server does not see Discord vanish
                    http.terminate()
                    try:
                        http.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        http.kill()
    except Exception as exc:
        row.report.setdefault("connect_error", f"the harness failed: {type(exc).__name__}: {exc}")
    finally:
        if http is not None and http.poll() is None:
            http.kill()
    row.log = str(log)
    return row
