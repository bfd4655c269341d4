"""Our gateway client against the simulator's faults: it heals (resume, re-identify), it stops on final close
codes instead of looping, and malformed frames never break the session."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from mcp_midjourney.discord.gateway import FATAL_CLOSE_CODES, Gateway
from mcp_midjourney.discord.rest import DiscordRest
from mcp_midjourney.engine.prefilter import FramePrefilter
from mcp_midjourney.simulator import SimulatorServer

pytestmark = pytest.mark.anyio

TOKEN = "gw-test-token.Zx9-not-a-real-secret"


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(job_seconds=0.5, heartbeat_interval_ms=300, token=TOKEN, ready_min_bytes=0) as server:
        yield server


@dataclass
class Session:
    gateway: Gateway
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    readies: list[bool] = field(default_factory=list)

    def contents(self) -> list[str]:
        return [str(d.get("content")) for e, d in self.events if e == "MESSAGE_CREATE"]

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while True:
                if condition():
                    return
                await anyio.sleep(0.02)


@asynccontextmanager
async def connected(
    sim: SimulatorServer, token: str = TOKEN, *, channel_id: str | None = None, **options: Any
) -> AsyncIterator[Session]:
    """A gateway session against the simulator; with `channel_id`, the engine's pre-filter for that channel."""
    rest = DiscordRest(sim.api_base, SecretStr(token), interaction_interval=0)
    session: Session
    if channel_id is not None:
        options["prefilter"] = FramePrefilter(channel_id, user_id=lambda: session.gateway.user_id).skips

    def on_dispatch(event: str, data: dict[str, Any]) -> None:
        session.events.append((event, data))

    gateway = Gateway(
        rest,
        SecretStr(token),
        on_dispatch=on_dispatch,
        on_ready=lambda again: session.readies.append(again),
        **options,
    )
    session = Session(gateway)
    async with anyio.create_task_group() as tg:
        tg.start_soon(gateway.run)
        try:
            yield session
        finally:
            tg.cancel_scope.cancel()
            await rest.aclose()


async def test_a_zombie_connection_is_closed_and_resumed_without_losing_events(
    sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mcp_midjourney.discord.gateway")
    async with connected(sim) as s:
        await s.gateway.wait_ready(5)
        sim.freeze_connections()  # no more frames, no heartbeat ACKs: the socket looks alive but is dead
        sim.inject_message("said while the connection was a zombie")
        await s.until(lambda: "said while the connection was a zombie" in s.contents(), timeout=15)
    stats = sim.gateway_stats()
    assert stats["RESUME"] == 1 and stats["IDENTIFY"] == 1, stats
    # The heartbeat watchdog found the zombie (nothing else closed the socket), and the session resumed once.
    said = [r.getMessage() for r in caplog.records if r.name == "mcp_midjourney.discord.gateway"]
    assert "gateway heartbeat not acknowledged: reconnecting" in said, said
    assert s.gateway.reconnects == 1 and not any("connection failed" in line for line in said), said
    assert s.readies == [False]  # resumed: no new session, so no reconciliation needed


@pytest.mark.parametrize("how", ["abrupt", "close 4000", "op 7", "close 1011"])
async def test_a_dropped_connection_resumes_and_the_gap_is_replayed(sim: SimulatorServer, how: str) -> None:
    async with connected(sim) as s:
        await s.gateway.wait_ready(5)
        if how == "op 7":
            sim.send_reconnect()
        elif how == "abrupt":
            sim.drop_connections()
        else:
            sim.drop_connections(abrupt=False, code=int(how.split()[1]))
        for i in range(3):
            sim.inject_message(f"missed {i}")
        await s.until(lambda: all(f"missed {i}" in s.contents() for i in range(3)))
        assert s.contents().count("missed 0") == 1
    stats = sim.gateway_stats()
    assert stats["IDENTIFY"] == 1 and stats["RESUME"] >= 1, stats


async def test_an_invalid_session_identifies_anew_and_says_so(sim: SimulatorServer) -> None:
    async with connected(sim) as s:
        await s.gateway.wait_ready(5)
        sim.invalidate_sessions()
        await s.until(lambda: not s.gateway.ready, timeout=1)  # no interaction may use the dead session
        await s.until(lambda: len(s.readies) == 2, timeout=8)
        assert s.readies == [False, True]  # the engine is told to reconcile over REST
        assert s.gateway.ready and s.gateway.session_id
    assert sim.gateway_stats()["IDENTIFY"] == 2


async def test_a_refused_resume_falls_back_to_identify(sim: SimulatorServer) -> None:
    async with connected(sim) as s:
        await s.gateway.wait_ready(5)
        sim.forget_sessions()  # as when the resume window passed
        sim.drop_connections()
        await s.until(lambda: len(s.readies) == 2, timeout=8)
        assert s.readies == [False, True]
    stats = sim.gateway_stats()
    assert stats["RESUME"] == 1 and stats["IDENTIFY"] == 2


@pytest.mark.parametrize("code", [4004, 4010, 4011, 4012, 4013, 4014])
async def test_final_close_codes_stop_with_a_clear_error_and_no_reconnect_loop(sim: SimulatorServer, code: int) -> None:
    async with connected(sim) as s:
        await s.gateway.wait_ready(5)
        sim.drop_connections(abrupt=False, code=code)
        await s.until(lambda: s.gateway.fatal is not None, timeout=3)
        await anyio.sleep(1.0)  # long enough for several reconnects, were there any
        assert not s.gateway.ready
        assert s.gateway.fatal == FATAL_CLOSE_CODES[code]
        assert str(code) in s.gateway.fatal or "token" in s.gateway.fatal
    assert sim.gateway_stats()["connections"] == 1


async def test_a_revoked_token_stops_the_gateway(sim: SimulatorServer) -> None:
    async with connected(sim) as s:
        await s.gateway.wait_ready(5)
        sim.revoke_account(TOKEN)
        await s.until(lambda: s.gateway.fatal is not None, timeout=3)
        assert "token" in (s.gateway.fatal or "") and "MJ_DISCORD_TOKEN" in (s.gateway.fatal or "")


async def test_garbage_frames_are_ignored_and_the_session_carries_on(sim: SimulatorServer) -> None:
    sim.set_event_faults(garbage=1.0)
    async with connected(sim) as s:
        await s.gateway.wait_ready(5)
        for i in range(20):
            sim.inject_message(f"through the noise {i}")
        await s.until(lambda: all(f"through the noise {i}" in s.contents() for i in range(20)))
        assert s.gateway.malformed_frames >= 5
    assert sim.gateway_stats()["connections"] == 1  # never dropped over a bad frame
    assert any(kind == "garbage" for _, kind, _ in sim.fault_log())


async def test_duplicated_and_reordered_frames_keep_the_highest_sequence(sim: SimulatorServer) -> None:
    sim.set_event_faults(duplicate=0.5, reorder=0.5)
    async with connected(sim) as s:
        await s.gateway.wait_ready(5)
        for i in range(30):
            sim.inject_message(f"shuffled {i}")
        await s.until(lambda: all(f"shuffled {i}" in s.contents() for i in range(30)))
        await anyio.sleep(0.3)
        highest = s.gateway.seq
        sim.set_event_faults()
        sim.drop_connections()
        sim.inject_message("after the drop")
        await s.until(lambda: "after the drop" in s.contents())
    kinds = {kind for _, kind, _ in sim.fault_log()}
    assert {"duplicate", "reorder"} <= kinds
    assert highest is not None and highest >= 31
    assert sim.gateway_stats()["IDENTIFY"] == 1  # the resume after all that shuffling was accepted


async def test_another_users_job_is_skipped_unparsed_and_the_session_still_resumes(sim: SimulatorServer) -> None:
    async with connected(sim, channel_id=sim.channel_id) as s:
        await s.gateway.wait_ready(5)
        assert s.gateway.user_id == sim.user_id  # from READY: the mention rule is on
        sim.inject_job("someone else's lighthouse")
        sim.inject_message("plain chat, no mention")
        await s.until(lambda: any(e == "MESSAGE_DELETE" for e, _ in s.events))  # their progress message went
        await s.until(lambda: s.gateway.frames_skipped >= 3)  # first message, progress, result: never parsed
        await anyio.sleep(0.3)
        theirs = [d for e, d in s.events if e != "MESSAGE_DELETE" and "lighthouse" in str(d.get("content"))]
        assert theirs == [] and "plain chat, no mention" in s.contents()
        skipped, seq = s.gateway.frames_skipped, s.gateway.seq
        assert s.gateway.events_received == len(s.events) + skipped + 1  # + READY
        sim.drop_connections()
        sim.inject_message("after the drop")
        await s.until(lambda: "after the drop" in s.contents())
        assert s.contents().count("after the drop") == 1 and s.gateway.frames_skipped == skipped
        assert seq is not None and s.gateway.seq is not None and s.gateway.seq > seq
    assert sim.gateway_stats()["IDENTIFY"] == 1  # the resume from a skipped frame's sequence was accepted


async def test_a_bad_token_at_connect_is_final(sim: SimulatorServer) -> None:
    async with connected(sim, token="gw-wrong-token-0000000") as s:
        await s.until(lambda: s.gateway.fatal is not None, timeout=5)
        assert "MJ_DISCORD_TOKEN" in (s.gateway.fatal or "")


def test_reconnect_delay_has_jitter_backs_off_and_is_capped() -> None:
    gateway = Gateway(DiscordRest("http://127.0.0.1:9/api/v9", SecretStr(TOKEN)), SecretStr(TOKEN), on_dispatch=print)
    healthy = [gateway.reconnect_delay(0, 1) for _ in range(50)]
    assert all(0.05 <= d <= 0.5 for d in healthy) and len(set(healthy)) > 40  # soon, and never all at once
    for failures in range(1, 12):
        ceiling = min(30.0, 2.0 ** (failures - 1))  # exponential, up to the cap...
        delays = [gateway.reconnect_delay(failures, 1) for _ in range(20)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 15  # ...with jitter
    assert min(gateway.reconnect_delay(0, 11) for _ in range(50)) >= 5.0  # a flapping connection slows right down
