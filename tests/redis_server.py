"""A private redis-server for tests: Debian's binary on a free loopback port, its files in a temp folder.

Never a mock: the shared state's Redis backend is tested against the real server. Where no `redis-server` is on
PATH (`.ci/run` installs Debian's package), the tests that need one skip and say so.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

BINARY = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process; `stop` and `start` it again on the same port (an outage and its end)."""

    def __init__(self, folder: Path) -> None:
        if BINARY is None:
            pytest.skip("no redis-server on PATH (Debian: apt-get install redis-server; .ci/run does)")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert BINARY is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [BINARY, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"]  # a restart keeps all
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}: see {self.folder / 'redis.log'}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
