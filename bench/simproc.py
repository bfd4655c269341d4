"""The simulator in a process of its own, driven from the benchmark over a pipe.

In one process with the benchmark's client, the simulator shares its interpreter lock with the client and its
jobs run late under load (a "0.5 s" job took 0.55–0.6 s): the benchmark would measure the fake Discord. A
child process gives it a core's worth of its own. CLOCK_MONOTONIC is one clock for the whole machine, so the
child's timestamps (`results_sent`) compare with this process's `time.monotonic()`.

`RemoteSimulator` offers the `SimulatorServer` controls the benchmarks use, by name; calls are thread-safe.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
from multiprocessing.connection import Client, Connection, Listener
from types import TracebackType
from typing import Any

from .common import ROOT, flatten_images


def _serve(conn: Connection, config: dict[str, Any], flat: bool) -> None:
    """The child's side: run a `SimulatorServer` and answer `(name, args, kwargs)` requests until told to stop."""
    from mcp_midjourney.simulator import SimulatorServer

    with SimulatorServer(**config) as sim:
        if flat:
            flatten_images(sim)
        # Every property of the server (token, ids, URLs), for the parent to read as attributes.
        properties = [n for n, v in vars(SimulatorServer).items() if isinstance(v, property)]
        conn.send({name: getattr(sim, name) for name in properties})
        while True:
            try:
                request = conn.recv()
            except EOFError:
                break
            if request is None:
                break
            name, args, kwargs = request
            try:
                if name == "run":  # a function "module:name" applied to the Simulator, on its own loop
                    module, _, attribute = str(args[0]).partition(":")
                    function = getattr(importlib.import_module(module), attribute)
                    result = sim.call(function, sim.simulator, *args[1:], **kwargs)
                else:
                    result = getattr(sim, name)(*args, **kwargs)
                conn.send(("ok", result))
            except Exception as exc:  # report it to the parent, keep serving
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    conn.close()


class RemoteSimulator:
    """A `SimulatorServer` (with any `SimulatorConfig` overrides) running in a child process.

    The child is `python -m bench.simproc`, connected back over a loopback socket with a random key.
    """

    def __init__(self, *, flat_images: bool = True, **config: Any) -> None:
        self._config = config
        self._flat = flat_images
        self._lock = threading.Lock()
        self._info: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> RemoteSimulator:
        key = os.urandom(16)
        with Listener(("127.0.0.1", 0), authkey=key) as listener:
            port = listener.address[1]
            spec = json.dumps({"port": port, "key": key.hex(), "config": self._config, "flat": self._flat})
            self._process = subprocess.Popen([sys.executable, "-m", "bench.simproc", spec], cwd=ROOT)
            accepted: list[Connection] = []
            waiter = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
            waiter.start()
            waiter.join(60)
        if not accepted:
            self.__exit__(None, None, None)
            raise RuntimeError("the simulator process did not connect within 60 s")
        self._conn = accepted[0]
        if not self._conn.poll(60):
            self.__exit__(None, None, None)
            raise RuntimeError("the simulator process did not start within 60 s")
        self._info = self._conn.recv()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._conn is not None:
            try:
                with self._lock:
                    self._conn.send(None)
            except OSError:
                pass
            self._conn.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a `SimulatorServer` method by name in the child and return its result."""
        if self._conn is None:
            raise RuntimeError("the simulator process is not running")
        with self._lock:
            self._conn.send((name, args, kwargs))
            if not self._conn.poll(120):
                raise RuntimeError(f"the simulator process did not answer {name} within 120 s")
            status, result = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"simulator {name} failed: {result}")
        return result

    def run(self, function: str, *args: Any) -> Any:
        """Apply a module-level function ("package.module:name") to the child's `Simulator`, on its loop."""
        return self.call("run", function, *args)

    def __getattr__(self, name: str) -> str:
        """The simulator's properties (token, guild_id, channel_id, api_base, ...), as the child reported them."""
        info = self.__dict__.get("_info") or {}
        if name in info:
            return str(info[name])
        raise AttributeError(name)

    # The controls the benchmarks use.
    def stats(self) -> dict[str, int]:
        """REST requests so far by route."""
        result: dict[str, int] = self.call("stats")
        return result

    def gateway_stats(self) -> dict[str, int]:
        """Gateway counters (connections, IDENTIFY, dispatches)."""
        result: dict[str, int] = self.call("gateway_stats")
        return result

    def results_sent(self) -> list[tuple[str, float]]:
        """(job uuid, monotonic time) of every final result sent."""
        result: list[tuple[str, float]] = self.call("results_sent")
        return result

    def add_account(self, token: str, username: str) -> str:
        """Another account; its user id."""
        result: str = self.call("add_account", token, username)
        return result

    def account_channel(self, token: str) -> str:
        """An account's DM channel with the bot."""
        result: str = self.call("account_channel", token)
        return result

    def inject_job(self, prompt: str, *, username: str = "other_user", user_id: str | None = None) -> str:
        """Another user's job in the guild channel; its uuid."""
        result: str = self.call("inject_job", prompt, username=username, user_id=user_id)
        return result

    def inject_message(self, content: str, *, username: str = "other_user") -> str:
        """Another user's chat message in the guild channel; its id."""
        result: str = self.call("inject_message", content, username=username)
        return result


def main() -> None:
    """`python -m bench.simproc '<json spec>'`: connect back to the benchmark and serve."""
    spec = json.loads(sys.argv[1])
    conn = Client(("127.0.0.1", int(spec["port"])), authkey=bytes.fromhex(spec["key"]))
    _serve(conn, dict(spec["config"]), bool(spec["flat"]))


if __name__ == "__main__":
    main()
