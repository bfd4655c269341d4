"""The streamable HTTP transport: the real server as a subprocess, driven by the SDK's client by URL."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_midjourney.commands.demo import server_env
from mcp_midjourney.server.http import BearerAuth, RefusedToStart, allowed_hosts, check_binding, is_loopback
from mcp_midjourney.simulator import SimulatorServer

from .conftest import data

TOKEN = "test-http-token-0123456789abcdef"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "mcp_midjourney", "serve", "--transport", "http", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
        )


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"the server did not listen on {port} within {timeout} s:\n{log.read_text()}")


@pytest.fixture
def http_server(sim: SimulatorServer, tmp_path: Path) -> Iterator[str]:
    """`serve --transport http` on 127.0.0.1 with MJ_HTTP_TOKEN; yields the endpoint URL."""
    port = free_port()
    log = tmp_path / "http-server.log"
    process = serve(server_env(sim, MJ_HTTP_TOKEN=TOKEN), "--port", str(port), log=log)
    try:
        wait_listening(process, port, log)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            stdout, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, _ = process.communicate()
        # stdout is not the protocol in HTTP mode, but the server must still keep it clean.
        assert stdout == b"", stdout
        assert TOKEN not in log.read_text()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_sdk_client_by_url_with_the_token_lists_tools_and_imagines(http_server: str, mode: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    async with http, Client(streamable_http_client(http_server, http_client=http), mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"imagine", "press_button", "get_message"} <= names
        result = await client.call_tool("imagine", {"prompt": "a lighthouse over http", "wait_seconds": 20})
        job = data(result)
        assert job["status"] == "completed", job
        assert len(job["image_urls"]) == 4


@pytest.mark.anyio
async def test_without_the_token_every_request_gets_a_json_401(http_server: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
            response = await http.post(http_server, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
            assert response.status_code == 401, headers
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
        denied = await http.get(http_server, headers={"Accept": "text/event-stream"})
        assert denied.status_code == 401


@pytest.mark.anyio
async def test_a_foreign_host_header_is_refused_even_with_the_token(http_server: str) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 would send its own Host header.
    async with httpx2.AsyncClient(timeout=10) as http:
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Host": "evil.example"}
        response = await http.post(http_server, json=INITIALIZE, headers=headers)
        assert response.status_code == 421
        origin = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}
        assert (await http.post(http_server, json=INITIALIZE, headers=origin)).status_code == 403


def test_a_non_loopback_bind_without_a_token_refuses_to_start(sim: SimulatorServer, tmp_path: Path) -> None:
    env = server_env(sim)
    run = subprocess.run(
        [sys.executable, "-m", "mcp_midjourney", "serve", "--transport", "http", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 2
    assert "MJ_HTTP_TOKEN" in run.stderr and "0.0.0.0" in run.stderr
    assert run.stdout == ""


def test_binding_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.com")
    check_binding("127.0.0.1", None)
    check_binding("0.0.0.0", TOKEN)
    with pytest.raises(RefusedToStart, match="MJ_HTTP_TOKEN"):
        check_binding("192.168.1.4", None)
    with pytest.raises(RefusedToStart, match="too short"):
        check_binding("127.0.0.1", "short")
    hosts = allowed_hosts("10.0.0.2", 8000, ["mcp.internal"])
    assert {"10.0.0.2:8000", "127.0.0.1:8000", "localhost", "mcp.internal:8000"} <= set(hosts)


def test_bearer_comparison() -> None:
    auth = BearerAuth(lambda *_: None, TOKEN)  # type: ignore[arg-type]
    assert auth.authorized(f"Bearer {TOKEN}") and auth.authorized(f"bearer {TOKEN}")
    assert not auth.authorized(None) and not auth.authorized(TOKEN) and not auth.authorized(f"Basic {TOKEN}")
    assert not auth.authorized(f"Bearer {TOKEN}x") and not auth.authorized("Bearer ")
