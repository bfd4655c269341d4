"""A published Discord user client, discord.py-self, reaches READY against the simulator (issue 15).

Changed only in its URLs: its REST base (`Route.BASE`) and its gateway URL (`DEFAULT_GATEWAY`, set to what
the simulator's `GET /gateway` answers). Its look-ups of outside hosts (it asks the web for a build number
and a browser version before it logs in) fail at once, as on a machine without a network: name resolution
refuses every name but loopback. The time to READY is printed (the issue's target is under 4 s); the test
itself only waits, generously, for READY.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import discord
import discord.gateway
import discord.http
import httpx2
import pytest
import yarl

from mcp_midjourney.models import MIDJOURNEY_BOT_ID
from mcp_midjourney.simulator import SimulatorServer

READY_TIMEOUT = 30.0  # seconds: generous; the figure that matters is printed
TARGET_SECONDS = 4.0
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(job_seconds=0.3, ack_seconds=0.01) as server:
        yield server


@pytest.fixture
def refused_hosts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every look-up of a name that is not loopback fail at once; the names refused, in order."""
    refused: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK_NAMES:
            refused.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: outside hosts are unreachable in this test")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return refused


def test_discord_py_self_reaches_ready_changed_only_in_its_urls(
    sim: SimulatorServer, refused_hosts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway_url = httpx2.get(f"{sim.api_base}/gateway").json()["url"]
    monkeypatch.setattr(discord.http.Route, "BASE", sim.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(gateway_url))

    seen: dict[str, Any] = {}

    async def run() -> float:
        client = discord.Client()
        ready = asyncio.Event()

        @client.event
        async def on_ready() -> None:
            channel = client.get_channel(int(sim.channel_id))
            guild = client.get_guild(int(sim.guild_id))
            seen.update(
                user_id=client.user.id if client.user else None,
                channel=getattr(channel, "name", None),
                members=sorted(m.id for m in guild.members) if guild else None,
                status=client.settings.status,
                experiments=len(client.experiments),
            )
            ready.set()

        started = time.monotonic()
        runner = asyncio.create_task(client.start(sim.token))
        waiter = asyncio.create_task(ready.wait())
        try:
            done, _ = await asyncio.wait({runner, waiter}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                runner.result()  # the client stopped before READY: raise what stopped it
                raise AssertionError("discord.py-self stopped before READY")
            assert waiter in done, f"no READY within {READY_TIMEOUT} s"
            return time.monotonic() - started
        finally:
            waiter.cancel()
            await client.close()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    elapsed = asyncio.run(run())
    print(f"\ndiscord.py-self {discord.__version__}: READY in {elapsed:.2f} s (target < {TARGET_SECONDS:.0f} s)")
    print(f"outside hosts it tried, refused at once: {sorted(set(refused_hosts))}")

    assert seen["user_id"] == int(sim.user_id)
    assert seen["channel"] == "midjourney"
    assert seen["members"] == sorted([int(sim.user_id), int(MIDJOURNEY_BOT_ID)])  # from op 37's member list
    assert seen["status"] == discord.Status.online  # read from the READY settings protobuf
    assert seen["experiments"] > 0
    assert all(name not in LOOPBACK_NAMES for name in refused_hosts)
