"""Findings 8 and 9: the HTTP transport against a client that holds on. Headers must arrive in time, open
connections and MCP sessions are capped, idle sessions end, refused requests cannot flood the log, and a server
bound to another loopback address accepts that address as Host."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from mcp_midjourney.commands.demo import server_env
from mcp_midjourney.simulator import SimulatorServer
from tests.e2e.test_http import INITIALIZE, MCP_HEADERS, TOKEN, free_port, serve


def wait_listening(process: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
    for _ in range(400):
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"the server did not listen on {host}:{port}:\n{log.read_text()}")


@contextlib.contextmanager
def http_server(sim: SimulatorServer, tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[str, Path]]:
    """`serve --transport http` with `env`; yields its base URL (http://host:port) and its log."""
    port, log = free_port(), tmp_path / "http-server.log"
    host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
    process = serve(server_env(sim, **env), "--port", str(port), *args, log=log)
    try:
        wait_listening(process, host, port, log)
        yield f"http://{host}:{port}", log
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def initialize(client: httpx2.Client, url: str, **headers: str) -> httpx2.Response:
    return client.post(f"{url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


def test_request_headers_must_arrive_in_time(sim: SimulatorServer, tmp_path: Path) -> None:
    with http_server(sim, tmp_path, MJ_HTTP_HEADER_TIMEOUT="1") as (url, _log):
        port = int(url.rsplit(":", 1)[1])
        with (
            socket.create_connection(("127.0.0.1", port)) as silent,
            socket.create_connection(("127.0.0.1", port)) as slow,
        ):
            slow.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
            assert closed_by_server(silent, 15) and closed_by_server(slow, 15)
        with httpx2.Client() as client:
            assert initialize(client, url).status_code == 200  # a client that sends its request is served


def test_open_connections_are_capped(sim: SimulatorServer, tmp_path: Path) -> None:
    with http_server(sim, tmp_path, MJ_HTTP_MAX_CONNECTIONS="3", MJ_HTTP_HEADER_TIMEOUT="120") as (url, log):
        port = int(url.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        extra = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        try:
            assert all(closed_by_server(sock, 15) for sock in extra)
        finally:
            for sock in held + extra:
                sock.close()
        with httpx2.Client() as client:
            for _ in range(20):  # the server notices the held ones closing
                with contextlib.suppress(httpx2.TransportError):
                    if initialize(client, url).status_code == 200:
                        break
                time.sleep(0.1)
            else:
                pytest.fail("not served once the held connections closed")
        assert log.read_text().count("MJ_HTTP_MAX_CONNECTIONS") == 1  # one warning, however many were closed


def test_sessions_are_capped_and_idle_ones_end(sim: SimulatorServer, tmp_path: Path) -> None:
    with (
        http_server(sim, tmp_path, MJ_HTTP_MAX_SESSIONS="2", MJ_HTTP_SESSION_IDLE="1") as (url, _log),
        httpx2.Client() as client,
    ):
        opened = [initialize(client, url) for _ in range(3)]
        assert [r.status_code for r in opened] == [200, 200, 503]
        session = opened[0].headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        assert client.post(f"{url}/mcp", json=ping, headers=headers).status_code == 200
        time.sleep(4)  # idle four times MJ_HTTP_SESSION_IDLE (a request would restart the clock)
        assert client.post(f"{url}/mcp", json=ping, headers=headers).status_code == 404
        assert initialize(client, url).status_code == 200  # its place is free again


def test_refused_requests_cannot_flood_the_log(sim: SimulatorServer, tmp_path: Path) -> None:
    with http_server(sim, tmp_path, MJ_HTTP_TOKEN=TOKEN) as (url, log), httpx2.Client() as client:
        for _ in range(40):
            assert initialize(client, url, Authorization="Bearer wrong-token-0123456789").status_code == 401
        assert initialize(client, url, Authorization=f"Bearer {TOKEN}").status_code == 200
    warnings = [line for line in log.read_text().splitlines() if "bearer token" in line and "WARNING" in line]
    assert 1 <= len(warnings) <= 2, warnings
    assert TOKEN not in log.read_text()


def test_the_bound_loopback_address_is_accepted_as_host(sim: SimulatorServer, tmp_path: Path) -> None:
    try:
        socket.create_server(("127.0.0.2", 0)).close()
    except OSError:
        pytest.skip("127.0.0.2 cannot be bound on this machine")
    with http_server(sim, tmp_path, "--host", "127.0.0.2") as (url, _log), httpx2.Client() as client:
        answer = initialize(client, url)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        assert initialize(client, url, Host="evil.example").status_code == 421  # rebinding protection holds
