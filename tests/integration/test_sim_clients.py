"""What published Discord clients send and expect, which the simulator must take as Discord does (issue 15).

One test for each of the nine differences found by pointing real clients at the simulator, driven with raw
HTTP and websocket calls. Shapes come from the real captures in tests/fixtures and from protocol.md §8.
"""

from __future__ import annotations

import base64
import io
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from PIL import Image

from mcp_midjourney.models import MIDJOURNEY_BOT_ID
from mcp_midjourney.simulator import SimulatorServer
from tests.conftest import load_fixture
from tests.integration.test_simulator import RawGateway, command, connect, imagine_body, is_result, nonce

JSON = dict[str, Any]
USER_SETTINGS_PROTO_BIT = 1 << 9  # IDENTIFY capability: "the settings protobuf only, no legacy JSON"


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        job_seconds=0.3, ack_seconds=0.01, progress_steps=3, interaction_timeout_seconds=0.2
    ) as server:
        yield server


@pytest.fixture
async def rest(sim: SimulatorServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=sim.api_base, headers={"Authorization": sim.token}) as client:
        yield client


def captured_identify(token: str, capabilities: int | None) -> JSON:
    """The browser IDENTIFY of the capture, with our token and the given capabilities (None: left out)."""
    frame: JSON = load_fixture("captured", "gateway-identify-user-account.json")
    frame["d"]["token"] = token
    if capabilities is None:
        del frame["d"]["capabilities"]
    else:
        frame["d"]["capabilities"] = capabilities
    return frame


async def ready_with(ws: Any, token: str, capabilities: int | None) -> JSON:
    gateway = RawGateway(ws)
    assert (await gateway.receive())["op"] == 10
    await ws.send_json(captured_identify(token, capabilities))
    ready = await gateway.next_event("READY")
    return dict(ready["d"])


def read_protobuf(data: bytes) -> dict[int, list[int | bytes]]:
    """A protobuf message's fields by number (varints as ints, length-delimited as bytes); raises if malformed."""

    def varint(position: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[position]
            value |= (byte & 0x7F) << shift
            position += 1
            shift += 7
            if not byte & 0x80:
                return value, position

    fields: dict[int, list[int | bytes]] = {}
    position = 0
    while position < len(data):
        key, position = varint(position)
        number, wire_type = key >> 3, key & 7
        assert number > 0, "field number 0 is invalid"
        if wire_type == 0:
            value, position = varint(position)
            fields.setdefault(number, []).append(value)
        elif wire_type == 2:
            length, position = varint(position)
            assert position + length <= len(data), "length-delimited field runs past the end"
            fields.setdefault(number, []).append(data[position : position + length])
            position += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
    return fields


async def run_imagine(rest: httpx2.AsyncClient, gateway: RawGateway, body: JSON, **post: Any) -> list[JSON]:
    """Post an interaction (JSON unless `post` says otherwise); every dispatch up to the job's result."""
    answer = await rest.post("/interactions", **(post or {"json": body}))
    assert (answer.status_code, answer.content) == (204, b""), answer.text
    return await gateway.events_until(is_result)


def png_bytes(size: tuple[int, int] = (40, 20), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


# 1 -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_interaction_without_a_nonce_is_accepted_and_runs_its_job(
    sim: SimulatorServer, rest: httpx2.AsyncClient
) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        body = await imagine_body(rest, sim, gateway.session_id, "a lighthouse without a nonce")
        del body["nonce"]
        seen = await run_imagine(rest, gateway, body)
    created = next(f for f in seen if f["t"] == "INTERACTION_CREATE")
    first = next(f for f in seen if f["t"] == "MESSAGE_CREATE")
    assert "nonce" not in created["d"] and created["d"]["id"]
    assert "nonce" not in first["d"] and "a lighthouse without a nonce" in first["d"]["content"]
    assert "INTERACTION_SUCCESS" in [f["t"] for f in seen]
    assert is_result(seen[-1]) and "a lighthouse without a nonce" in seen[-1]["d"]["content"]


# 2 -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_made_up_session_id_is_accepted_and_runs_its_job(
    sim: SimulatorServer, rest: httpx2.AsyncClient
) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        # What widely used clients hard-code (the one of the real U4 capture): no gateway session has it.
        fixed = load_fixture("captured", "rest-interactions-button-upsample-u4.json")["session_id"]
        assert fixed != gateway.session_id
        body = await imagine_body(rest, sim, fixed, "a fox with a fixed session")
        seen = await run_imagine(rest, gateway, body)
    created = next(f for f in seen if f["t"] == "INTERACTION_CREATE")
    assert created["d"]["nonce"] == body["nonce"]
    assert is_result(seen[-1]) and "a fox with a fixed session" in seen[-1]["d"]["content"]


# 3 -----------------------------------------------------------------------------------------------------


def test_the_websocket_upgrade_declines_permessage_deflate(sim: SimulatorServer) -> None:
    host, port = sim.base_url.removeprefix("http://").split(":")
    request = (
        "GET /?v=9&encoding=json&compress=zlib-stream HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        # What curl_cffi (discord.py-self) and browsers offer.
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = raw.recv(4096)
            assert chunk, f"connection closed during the handshake: {answer!r}"
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 101")
    assert "sec-websocket-accept:" in head
    assert "sec-websocket-extensions" not in head and "permessage-deflate" not in head


# 4 -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ready_experiments_are_rows_of_eleven_fields(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        ready = await ready_with(ws, sim.token, 30717)
    rows = ready["experiments"]
    assert rows and all(isinstance(row, list) and len(row) >= 11 for row in rows)
    for exp_hash, revision, bucket, override, population, result, aa, debug, holdout, h_rev, h_bucket, *_ in rows:
        assert all(isinstance(v, int) for v in (exp_hash, revision, bucket, population, result))
        assert override in (-1, 0) and aa in (0, 1) and debug in (0, 1)
        assert 0 <= exp_hash < 2**32 and 0 <= result < 10_000
        assert (holdout is None) == (h_rev is None) == (h_bucket is None)
        assert holdout is None or isinstance(holdout, str)
    assert len({row[0] for row in rows}) == len(rows)
    assert ready["guild_experiments"] == [] or all(len(row) >= 10 for row in ready["guild_experiments"])


# 5 -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ready_user_settings_proto_is_a_settings_protobuf(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        ready = await ready_with(ws, sim.token, 30717)
    fields = read_protobuf(base64.b64decode(ready["user_settings_proto"], validate=True))
    # PreloadedUserSettings: 1 versions, 11 status, 12 localization, 13 appearance (each an embedded message).
    assert set(fields) <= set(range(1, 18)) and {1, 11, 12} <= set(fields)
    versions = read_protobuf(bytes(fields[1][0]))  # type: ignore[arg-type]
    assert set(versions) <= {1, 2, 3} and all(isinstance(v, int) for vs in versions.values() for v in vs)
    status = read_protobuf(bytes(fields[11][0]))  # type: ignore[arg-type]
    assert read_protobuf(bytes(status[1][0])) == {1: [b"online"]}  # type: ignore[arg-type]
    localization = read_protobuf(bytes(fields[12][0]))  # type: ignore[arg-type]
    assert read_protobuf(bytes(localization[1][0])) == {1: [b"en-US"]}  # type: ignore[arg-type]
    assert "user_settings" not in ready  # the capture's capabilities include the protobuf bit
    assert 30717 & USER_SETTINGS_PROTO_BIT


# 6 -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_merged_members_op8_chunks_and_op37_member_lists(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        ready = await ready_with(ws, sim.token, 30717)
        guild_ids = [g["id"] for g in ready["guilds"]]
        me = ready["user"]["id"]
        assert len(ready["merged_members"]) == len(guild_ids)
        assert all([m["user_id"] for m in members] == [me] for members in ready["merged_members"])
        assert all(isinstance(m["roles"], list) and m["joined_at"] for ms in ready["merged_members"] for m in ms)

        await ws.send_json(
            {
                "op": 8,
                "d": {
                    "guild_id": [sim.guild_id],
                    "query": None,
                    "limit": None,
                    "presences": True,
                    "user_ids": [me, "1"],
                    "nonce": "0xdeadbeef",
                },
            }
        )
        chunk = (await gateway.next_event("GUILD_MEMBERS_CHUNK"))["d"]
        assert chunk["guild_id"] == sim.guild_id and chunk["nonce"] == "0xdeadbeef"
        assert (chunk["chunk_index"], chunk["chunk_count"]) == (0, 1)
        assert [m["user"]["id"] for m in chunk["members"]] == [me] and chunk["not_found"] == ["1"]
        assert [p["user"]["id"] for p in chunk["presences"]] == [me]

        await ws.send_json({"op": 8, "d": {"guild_id": sim.guild_id, "query": "", "limit": 0, "nonce": "all"}})
        everyone = (await gateway.next_event("GUILD_MEMBERS_CHUNK"))["d"]
        assert {m["user"]["id"] for m in everyone["members"]} == {me, MIDJOURNEY_BOT_ID}

        subscriptions = {
            sim.guild_id: {"typing": True, "activities": True, "threads": True, "channels": {sim.channel_id: [[0, 99]]}}
        }
        await ws.send_json({"op": 37, "d": {"subscriptions": subscriptions}})
        listed = (await gateway.next_event("GUILD_MEMBER_LIST_UPDATE"))["d"]
        assert listed["guild_id"] == sim.guild_id and listed["member_count"] == 2
        (sync,) = listed["ops"]
        assert sync["op"] == "SYNC" and sync["range"] == [0, 99]
        members = [item["member"]["user"]["id"] for item in sync["items"] if "member" in item]
        assert set(members) == {me, MIDJOURNEY_BOT_ID}
        assert {g["id"] for g in listed["groups"]} == {"online", "offline"}

        # A subscription without channels is accepted and answered by nothing: the session carries on.
        await ws.send_json({"op": 37, "d": {"subscriptions": {sim.guild_id: {"typing": True}}}})
        await ws.send_json({"op": 1, "d": gateway.seq})
        while (frame := await gateway.receive())["op"] != 11:
            assert frame["t"] != "GUILD_MEMBER_LIST_UPDATE"


# 7 -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_multipart_interactions_with_payload_json_and_files(
    sim: SimulatorServer, rest: httpx2.AsyncClient
) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        body = await imagine_body(rest, sim, gateway.session_id, "a multipart owl")
        seen = await run_imagine(rest, gateway, body, files={"payload_json": (None, json.dumps(body))})
        assert is_result(seen[-1]) and "a multipart owl" in seen[-1]["d"]["content"]

        describe = await command(rest, "describe")
        upload = {
            "type": 2,
            "application_id": MIDJOURNEY_BOT_ID,
            "guild_id": sim.guild_id,
            "channel_id": sim.channel_id,
            "session_id": gateway.session_id,
            "nonce": nonce(),
            "data": {
                "version": describe["version"],
                "id": describe["id"],
                "name": "describe",
                "type": 1,
                "options": [{"type": 11, "name": "image", "value": 0}],
                "attachments": [{"id": "0", "filename": "red.png"}],
            },
        }
        parts = {"payload_json": (None, json.dumps(upload)), "files[0]": ("red.png", png_bytes(), "image/png")}
        answer = await rest.post("/interactions", files=parts)
        assert answer.status_code == 204, answer.text
        first = (await gateway.next_event("MESSAGE_CREATE"))["d"]
        described = (await gateway.next_event("MESSAGE_UPDATE"))["d"]
    assert first["nonce"] == upload["nonce"] and first["embeds"][0]["image"]["width"] == 40
    assert described["embeds"][0]["description"].count("--ar 40:20") == 4

    broken = await rest.post("/interactions", files={"payload_json": (None, "{not json")})
    assert broken.status_code == 400 and broken.json()["code"] == 50109
    missing = await rest.post("/interactions", files={"other": (None, "x")})
    assert missing.status_code == 400 and "payload_json" in missing.json()["errors"]


# 8 -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_capabilities_without_the_settings_proto_bit_get_legacy_user_settings(
    sim: SimulatorServer, rest: httpx2.AsyncClient
) -> None:
    legacy_capabilities = 30717 & ~USER_SETTINGS_PROTO_BIT
    async with connect(rest, sim.gateway_url) as ws:
        legacy = await ready_with(ws, sim.token, legacy_capabilities)
    async with connect(rest, sim.gateway_url) as ws:
        none_at_all = await ready_with(ws, sim.token, None)
    async with connect(rest, sim.gateway_url) as ws:
        modern = await ready_with(ws, sim.token, 30717)
    for ready in (legacy, none_at_all):
        settings = ready["user_settings"]
        assert settings["locale"] == "en-US" and settings["theme"] in ("dark", "light")
        assert settings["status"] == "online" and isinstance(settings["guild_positions"], list)
        assert isinstance(settings["friend_source_flags"], dict) and "developer_mode" in settings
    assert "user_settings" not in modern
    assert all(r["user_settings_proto"] for r in (legacy, none_at_all, modern))


# 9 -----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content",
    [b"just some text, not a picture\n", png_bytes()[:60], b"GIF89a" + b"\x00" * 40],
    ids=["text", "truncated-png", "gif-header-only"],
)
async def test_describe_of_a_non_image_is_refused_and_the_simulator_lives_on(
    sim: SimulatorServer, rest: httpx2.AsyncClient, content: bytes
) -> None:
    slots = await rest.post(
        f"/channels/{sim.channel_id}/attachments",
        json={"files": [{"id": "0", "filename": "notes.png", "file_size": len(content)}]},
    )
    (slot,) = slots.json()["attachments"]
    async with httpx2.AsyncClient() as bare:
        assert (await bare.put(slot["upload_url"], content=content)).status_code == 200
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        describe = await command(rest, "describe")
        body = {
            "type": 2,
            "application_id": MIDJOURNEY_BOT_ID,
            "guild_id": sim.guild_id,
            "channel_id": sim.channel_id,
            "session_id": gateway.session_id,
            "nonce": nonce(),
            "data": {
                "version": describe["version"],
                "id": describe["id"],
                "name": "describe",
                "type": 1,
                "options": [{"type": 11, "name": "image", "value": 0}],
                "attachments": [{"id": "0", "filename": "notes.png", "uploaded_filename": slot["upload_filename"]}],
            },
        }
        assert (await rest.post("/interactions", json=body)).status_code == 204
        refusal = (await gateway.next_event("MESSAGE_CREATE"))["d"]
        assert refusal["embeds"][0]["color"] == 16711680 and "could not be read" in refusal["embeds"][0]["description"]
        # Still alive: the next job runs to its result.
        after = await imagine_body(rest, sim, gateway.session_id, "a cat after a bad upload")
        seen = await run_imagine(rest, gateway, after)
    assert "a cat after a bad upload" in seen[-1]["d"]["content"]
