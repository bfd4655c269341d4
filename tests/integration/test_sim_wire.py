"""The simulator's gateway frames against Discord's documented examples: it must stay a witness of the protocol."""

from __future__ import annotations

import json

import httpx2
import pytest

from mcp_midjourney.discord.gateway import identify_payload
from mcp_midjourney.simulator import SimulatorServer
from tests.conftest import load_fixture

pytestmark = pytest.mark.anyio


async def _frame(ws, op: int) -> dict:
    while True:
        frame = json.loads(await ws.receive_text(timeout=5))
        if frame.get("op") == op:
            return frame


async def test_hello_heartbeat_reconnect_and_invalid_session_frames_match_discords_docs() -> None:
    hello_doc = load_fixture("discord-docs", "gateway-op10-hello.json")
    dispatch_doc = load_fixture("discord-docs", "gateway-op0-dispatch-envelope.json")
    reconnect_doc = load_fixture("discord-docs", "gateway-op7-reconnect.json")
    invalid_doc = load_fixture("discord-docs", "gateway-op9-invalid-session.json")
    heartbeat_doc = load_fixture("discord-docs", "gateway-op1-heartbeat.json")
    with SimulatorServer(job_seconds=0.3) as sim:
        async with (
            httpx2.AsyncClient() as client,
            client.websocket(f"{sim.gateway_url}/?v=9&encoding=json", max_message_size_bytes=64 * 1024 * 1024) as ws,
        ):
            hello = json.loads(await ws.receive_text(timeout=5))
            assert hello["op"] == hello_doc["op"] and set(hello_doc["d"]) <= set(hello["d"])
            await ws.send_text(json.dumps(identify_payload(sim.token)))
            ready = await _frame(ws, 0)
            assert set(dispatch_doc) <= set(ready) and ready["t"] == "READY" and ready["s"] == 1

            await ws.send_text(json.dumps({"op": heartbeat_doc["op"], "d": ready["s"]}))
            assert (await _frame(ws, 11))["op"] == 11

            sim.send_reconnect()
            reconnect = await _frame(ws, 7)
            assert {k: reconnect[k] for k in reconnect_doc} == reconnect_doc

            sim.invalidate_sessions()
            invalid = await _frame(ws, 9)
            assert {k: invalid[k] for k in invalid_doc} == invalid_doc
