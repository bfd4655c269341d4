"""The simulator, driven with raw HTTP and websocket calls (not our client): is it a faithful Discord?

Each test gets its own simulator on 127.0.0.1 with sub-second jobs. Where a test compares shapes with
the real captures in tests/fixtures.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx2
import pytest
from httpx2.websockets import AsyncWebSocketSession, WebSocketDisconnect
from PIL import Image

from mcp_midjourney.models import MIDJOURNEY_BOT_ID
from mcp_midjourney.simulator import SimulatorServer
from mcp_midjourney.simulator import prompts as sim_prompts
from tests.conftest import load_fixture

JSON = dict[str, Any]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
WAIT = 5.0  # seconds: generous upper bound for any single expected event


def fixture(relative: str) -> Any:
    """A real capture from tests/fixtures."""
    return load_fixture(*relative.split("/"))


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


class RawGateway:
    """A bare gateway session: identify, then read dispatches."""

    def __init__(self, ws: AsyncWebSocketSession) -> None:
        self.ws = ws
        self.seq = 0
        self.session_id = ""
        self.ready: JSON = {}

    async def receive(self, timeout: float = WAIT) -> JSON:
        frame: JSON = await self.ws.receive_json(timeout=timeout)
        if frame.get("s"):
            self.seq = frame["s"]
        return frame

    async def identify(self, token: str) -> JSON:
        hello = await self.receive()
        assert hello["op"] == 10
        await self.ws.send_json({"op": 2, "d": {"token": token, "capabilities": 16381, "properties": {"os": "Linux"}}})
        self.ready = await self.receive()
        self.session_id = self.ready["d"]["session_id"]
        return self.ready

    async def next_event(self, *names: str, timeout: float = WAIT) -> JSON:
        """The next dispatch among `names` (others, like READY_SUPPLEMENTAL, are skipped)."""
        with anyio.fail_after(timeout):
            while True:
                frame = await self.receive()
                if frame["op"] == 0 and (not names or frame["t"] in names):
                    return frame

    async def events_until(self, done: Any, timeout: float = WAIT) -> list[JSON]:
        """Dispatches up to and including the first one for which `done(frame)` is true."""
        seen: list[JSON] = []
        with anyio.fail_after(timeout):
            while True:
                frame = await self.receive()
                if frame["op"] == 0 and frame["t"] != "READY_SUPPLEMENTAL":
                    seen.append(frame)
                    if done(frame):
                        return seen

    async def silence(self, seconds: float) -> list[JSON]:
        """Everything dispatched within `seconds` (to show that nothing came)."""
        seen: list[JSON] = []
        with anyio.move_on_after(seconds):
            while True:
                frame = await self.receive()
                if frame["op"] == 0:
                    seen.append(frame)
        return seen


def connect(client: httpx2.AsyncClient, url: str) -> Any:
    """Open the gateway with a frame limit big enough for a real READY (well past 64 KiB)."""
    return client.websocket(f"{url}/?v=9&encoding=json", max_message_size_bytes=4 * 1024 * 1024)


_nonce_counter = 0


def nonce() -> str:
    global _nonce_counter
    _nonce_counter += 1
    return str(((int(time.time() * 1000) - 1_420_070_400_000) << 22) | _nonce_counter)


async def command(rest: httpx2.AsyncClient, name: str) -> JSON:
    index = (await rest.get(f"/guilds/{GUILD}/application-command-index")).json()
    found: JSON = next(c for c in index["application_commands"] if c["name"] == name)
    return found


GUILD = "1121633108689698856"


async def imagine_body(rest: httpx2.AsyncClient, sim: SimulatorServer, session_id: str, prompt: str) -> JSON:
    cmd = await command(rest, "imagine")
    return {
        "type": 2,
        "application_id": MIDJOURNEY_BOT_ID,
        "guild_id": sim.guild_id,
        "channel_id": sim.channel_id,
        "session_id": session_id,
        "nonce": nonce(),
        "data": {
            "version": cmd["version"],
            "id": cmd["id"],
            "name": "imagine",
            "type": 1,
            "options": [{"type": 3, "name": "prompt", "value": prompt}],
            "attachments": [],
        },
    }


def press_body(sim: SimulatorServer, session_id: str, message: JSON, custom_id: str) -> JSON:
    return {
        "type": 3,
        "nonce": nonce(),
        "guild_id": sim.guild_id,
        "channel_id": sim.channel_id,
        "message_flags": message.get("flags", 0),
        "message_id": message["id"],
        "application_id": MIDJOURNEY_BOT_ID,
        "session_id": session_id,
        "data": {"component_type": 2, "custom_id": custom_id},
    }


def is_result(frame: JSON) -> bool:
    """The final message of a job: a MESSAGE_CREATE with buttons and no nonce."""
    d = frame["d"]
    return frame["t"] == "MESSAGE_CREATE" and "nonce" not in d and bool(d.get("components"))


def custom_ids(message: JSON) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"] if "custom_id" in c]


async def png(client: httpx2.AsyncClient, url: str) -> Image.Image:
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(response.content))
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


# -- REST --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rest_answers_like_discord(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    assert (await rest.get("/gateway")).json() == {"url": sim.gateway_url}
    me = (await rest.get("/users/@me")).json()
    assert me["id"] == sim.user_id and "bot" not in me
    # v10 answers too.
    assert (await rest.get(f"{sim.base_url}/api/v10/users/@me")).status_code == 200

    async with httpx2.AsyncClient(base_url=sim.api_base) as anonymous:
        for headers in ({}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {sim.token}"}):
            answer = await anonymous.get("/users/@me", headers=headers)
            assert answer.status_code == 401
            assert answer.json() == {"message": "401: Unauthorized", "code": 0}

    unknown = await rest.get("/channels/1234567890123456789/messages?limit=5")
    assert (unknown.status_code, unknown.json()) == (404, {"message": "Unknown Channel", "code": 10003})
    forbidden = await rest.get("/channels/1121633108689698860/messages")
    assert (forbidden.status_code, forbidden.json()) == (403, {"message": "Missing Access", "code": 50001})
    missing = await rest.get(f"/channels/{sim.channel_id}/messages/1234567890123456789")
    assert (missing.status_code, missing.json()) == (404, {"message": "Unknown Message", "code": 10008})
    assert (await rest.get(f"/channels/{sim.channel_id}/messages?limit=500")).json()["code"] == 50035
    assert (await rest.get("/no/such/route")).json() == {"message": "404: Not Found", "code": 0}

    stats = sim.stats()
    assert stats["GET /users/@me"] == 5
    assert stats["GET /channels/{channel_id}/messages"] == 3


@pytest.mark.anyio
async def test_command_index_is_shaped_like_the_capture_and_versions_can_go_stale(
    sim: SimulatorServer, rest: httpx2.AsyncClient
) -> None:
    index = (await rest.get(f"/guilds/{sim.guild_id}/application-command-index")).json()
    by_name = {c["name"]: c for c in index["application_commands"]}
    for name in ("imagine", "describe", "blend", "shorten", "info", "fast", "relax", "turbo", "settings"):
        assert by_name[name]["application_id"] == MIDJOURNEY_BOT_ID
    assert index["applications"][0]["id"] == MIDJOURNEY_BOT_ID
    # The DM form of the index answers the same.
    dm = await rest.get(f"/channels/{sim.channel_id}/application-command-index")
    assert dm.json()["application_commands"] == index["application_commands"]

    captured = {c["name"]: c for c in fixture("captured/rest-application-command-index.json")["application_commands"]}
    for name, ours in by_name.items():
        if name == "prefer":
            continue  # trimmed to its remix subcommand
        assert set(ours) == set(captured[name]), name
        assert [o["name"] for o in ours.get("options", [])] == [o["name"] for o in captured[name].get("options", [])]

    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        stale = await imagine_body(rest, sim, gateway.session_id, "a cat")
        sim.bump_command_versions(["imagine"])
        answer = await rest.post("/interactions", json=stale)
        assert answer.status_code == 400
        assert answer.json() == {
            "code": 50035,
            "errors": {
                "data": {
                    "_errors": [
                        {
                            "code": "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION",
                            "message": "This command is outdated, please try again in a few minutes",
                        }
                    ]
                }
            },
            "message": "Invalid Form Body",
        }
        fresh = await imagine_body(rest, sim, gateway.session_id, "a cat")
        assert fresh["data"]["version"] != stale["data"]["version"]
        answer = await rest.post("/interactions", json=fresh)
        assert (answer.status_code, answer.content) == (204, b"")


@pytest.mark.anyio
async def test_interactions_are_validated(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        good = await imagine_body(rest, sim, gateway.session_id, "a cat")

        no_session = {k: v for k, v in good.items() if k != "session_id"}
        assert (await rest.post("/interactions", json=no_session)).json()["errors"]["session_id"]["_errors"]
        bad_nonce = {**good, "nonce": "not-a-snowflake"}
        assert (await rest.post("/interactions", json=bad_nonce)).json()["errors"]["nonce"]["_errors"]
        wrong_app = {**good, "application_id": "1022952195194359889"}
        assert (await rest.post("/interactions", json=wrong_app)).status_code == 404
        elsewhere = {**good, "channel_id": "1121633108689698860"}
        assert (await rest.post("/interactions", json=elsewhere)).json()["code"] == 50001
        garbage = await rest.post("/interactions", content=b"{not json", headers={"Content-Type": "application/json"})
        assert garbage.json()["code"] == 50109

        # A button that is not on the message: 204, then Discord gives up on the interaction.
        sim.inject_message("hello")
        posted = (await gateway.next_event("MESSAGE_CREATE"))["d"]
        press = press_body(
            sim, gateway.session_id, posted, "MJ::JOB::upsample::1::" + "0" * 8 + "-0000-0000-0000-" + "0" * 12
        )
        assert (await rest.post("/interactions", json=press)).status_code == 204
        created = await gateway.next_event("INTERACTION_CREATE")
        failed = await gateway.next_event("INTERACTION_FAILURE", "INTERACTION_SUCCESS")
        assert failed["t"] == "INTERACTION_FAILURE"
        assert failed["d"]["id"] == created["d"]["id"] and failed["d"]["nonce"] == press["nonce"]


@pytest.mark.anyio
async def test_the_strict_switch_brings_back_the_nonce_and_session_checks(
    sim: SimulatorServer, rest: httpx2.AsyncClient
) -> None:
    sim.configure(strict_interactions=True)
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        good = await imagine_body(rest, sim, gateway.session_id, "a cat")

        bad_session = {**good, "session_id": "0" * 32}
        answer = await rest.post("/interactions", json=bad_session)
        assert answer.status_code == 400 and "session_id" in answer.json()["errors"]
        no_nonce = {k: v for k, v in good.items() if k != "nonce"}
        assert (await rest.post("/interactions", json=no_nonce)).json()["errors"]["nonce"]["_errors"]
        assert (await rest.post("/interactions", json=good)).status_code == 204


@pytest.mark.anyio
async def test_rate_limited_interactions_get_a_429_like_discords(
    sim: SimulatorServer, rest: httpx2.AsyncClient
) -> None:
    sim.set_rate_limit(2, 30.0)
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        answers = [
            await rest.post("/interactions", json=await imagine_body(rest, sim, gateway.session_id, f"cat {n}"))
            for n in range(3)
        ]
    assert [a.status_code for a in answers] == [204, 204, 429]
    limited = answers[2]
    body = limited.json()
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 0 < body["retry_after"] <= 30
    for header in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Reset-After", "X-RateLimit-Bucket"):
        assert header in limited.headers
    assert limited.headers["X-RateLimit-Remaining"] == "0" and limited.headers["X-RateLimit-Scope"] == "user"
    documented = fixture("discord-docs/rest-429-user-scope.json")
    assert set(body) == set(documented["body"])
    assert {h.lower() for h in documented["headers"]} <= {h.lower() for h in limited.headers}


# -- gateway -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_gateway_handshake_heartbeat_and_bad_token(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        hello = await ws.receive_json(timeout=WAIT)
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41_250
        await ws.send_json({"op": 1, "d": None})
        assert (await ws.receive_json(timeout=WAIT))["op"] == 11
        await ws.send_json({"op": 2, "d": {"token": "not-the-token", "properties": {}}})
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_json(timeout=WAIT)
        assert (closed.value.code, closed.value.reason) == (4004, "Authentication failed.")

    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        ready = await gateway.identify(sim.token)
        assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
        d = ready["d"]
        assert d["user"]["id"] == sim.user_id and d["resume_gateway_url"] == sim.gateway_url
        assert re.fullmatch(r"[0-9a-f]{32}", d["session_id"])
        assert any(g["id"] == sim.guild_id for g in d["guilds"])
        # As heavy as a real user READY: a 64 KiB frame limit would not do.
        assert len(json.dumps(ready)) > 64 * 1024

        await ws.send_json({"op": 1, "d": gateway.seq})
        while (await gateway.receive())["op"] != 11:  # READY_SUPPLEMENTAL may come first
            pass
        sim.set_heartbeat_acks(False)
        await ws.send_json({"op": 1, "d": gateway.seq})
        with pytest.raises(TimeoutError):
            while True:
                assert (await gateway.receive(timeout=0.3))["op"] != 11
        assert sim.request_heartbeat() == 1
        assert (await gateway.receive())["op"] == 1


@pytest.mark.anyio
async def test_resume_replays_what_was_missed(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        sim.inject_message("before the drop")
        await gateway.next_event("MESSAGE_CREATE")
        session_id, seq = gateway.session_id, gateway.seq
        assert sim.drop_connections() == 1  # abrupt: no close frame
        with pytest.raises((WebSocketDisconnect, TimeoutError, Exception)):
            await gateway.receive(timeout=2)
    missed = [sim.inject_message(f"missed {n}") for n in range(3)]

    async with connect(rest, gateway.ready["d"]["resume_gateway_url"]) as ws:
        assert (await ws.receive_json(timeout=WAIT))["op"] == 10
        await ws.send_json({"op": 6, "d": {"token": sim.token, "session_id": session_id, "seq": seq}})
        frames = [await ws.receive_json(timeout=WAIT) for _ in range(4)]
    assert [f["t"] for f in frames] == ["MESSAGE_CREATE"] * 3 + ["RESUMED"]
    assert [f["d"]["id"] for f in frames[:3]] == missed
    assert [f["s"] for f in frames] == list(range(seq + 1, seq + 5))

    async with connect(rest, sim.gateway_url) as ws:
        assert (await ws.receive_json(timeout=WAIT))["op"] == 10
        await ws.send_json({"op": 6, "d": {"token": sim.token, "session_id": "f" * 32, "seq": 3}})
        assert await ws.receive_json(timeout=WAIT) == {"t": None, "s": None, "op": 9, "d": False}
    assert sim.gateway_stats()["RESUME"] == 2


# -- the bot -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_imagine_lives_like_a_real_job(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        body = await imagine_body(rest, sim, gateway.session_id, "https://example.com/cat.png  a   glass cat")
        assert (await rest.post("/interactions", json=body)).status_code == 204
        events = await gateway.events_until(is_result)

    names = [e["t"] for e in events]
    assert names[:3] == ["INTERACTION_CREATE", "INTERACTION_SUCCESS", "MESSAGE_CREATE"]
    assert names[3:-2] == ["MESSAGE_UPDATE"] * 3 and names[-2:] == ["MESSAGE_DELETE", "MESSAGE_CREATE"]
    seqs = [e["s"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    interaction_id = events[0]["d"]["id"]
    assert events[0]["d"] == {"id": interaction_id, "nonce": body["nonce"]} == events[1]["d"]
    start = events[2]["d"]
    assert start["nonce"] == body["nonce"]
    assert start["interaction"]["id"] == start["interaction_metadata"]["id"] == interaction_id
    assert start["interaction"]["name"] == "imagine" and start["author"]["id"] == MIDJOURNEY_BOT_ID
    echo = re.fullmatch(r"\*\*(.+)\*\* - <@(\d+)> \(Waiting to start\)", start["content"])
    assert echo and echo.group(2) == sim.user_id
    assert re.fullmatch(r"<https://s\.mj\.run/[\w-]+> a glass cat --v 7", echo.group(1))

    job_uuid = ""
    for update in events[3:-2]:
        d = update["d"]
        assert d["id"] == start["id"] and "nonce" not in d and d["edited_timestamp"]
        assert re.fullmatch(rf"\*\*{re.escape(echo.group(1))}\*\* - <@{sim.user_id}> \(\d+%\) \(fast\)", d["content"])
        (frame,) = d["attachments"]
        match = re.fullmatch(rf"({UUID})_grid_0\.webp", frame["filename"])
        assert match and frame["content_type"] == "image/webp"
        job_uuid = match.group(1)
        assert custom_ids(d) == [f"MJ::CancelJob::ByJobid::{job_uuid}"]
    preview = await rest.get(events[-3]["d"]["attachments"][0]["url"])
    assert preview.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(preview.content)).size == (
        256,
        256,
    )

    assert events[-2]["d"] == {"id": start["id"], "channel_id": sim.channel_id, "guild_id": sim.guild_id}
    final = events[-1]["d"]
    assert "nonce" not in final and "interaction" not in final and "interaction_metadata" not in final
    assert final["id"] != start["id"] and int(final["id"]) > int(start["id"])
    assert final["content"] == f"**{echo.group(1)}** - <@{sim.user_id}> (fast)"
    assert final["mentions"][0]["id"] == sim.user_id
    assert custom_ids(final) == [
        *(f"MJ::JOB::upsample::{i}::{job_uuid}" for i in range(1, 5)),
        f"MJ::JOB::reroll::0::{job_uuid}::SOLO",
        *(f"MJ::JOB::variation::{i}::{job_uuid}" for i in range(1, 5)),
    ]
    (attachment,) = final["attachments"]
    assert attachment["filename"] == f"sim_user_a_glass_cat_{job_uuid}.png"
    grid = await png(rest, attachment["url"])
    assert (grid.format, grid.size) == ("PNG", (attachment["width"], attachment["height"])) == ("PNG", (1024, 1024))
    singles = [await png(rest, f"{sim.mj_cdn_base}/{job_uuid}/0_{i}.png") for i in range(4)]
    assert {s.size for s in singles} == {(512, 512)}
    # Each single is the matching quadrant of the grid.
    top_right = grid.convert("RGB").crop((512, 0, 1024, 512))
    assert top_right.getpixel((256, 400)) == singles[1].convert("RGB").getpixel((256, 400))

    captured = fixture("captured/gateway-message-create-imagine-final-grid.json")["d"]
    assert set(captured) - {"webhook_id"} <= set(final)
    assert set(captured["attachments"][0]) <= set(attachment)
    assert [[set(c) for c in row["components"]] for row in captured["components"]] == [
        [set(c) for c in row["components"]] for row in final["components"]
    ]
    waiting = fixture("captured/gateway-message-create-imagine-waiting-to-start.json")["d"]
    assert set(waiting) <= set(start)

    # Over REST: newest first, the progress message gone, no nonce stored.
    listed = (await rest.get(f"/channels/{sim.channel_id}/messages?limit=10")).json()
    assert [m["id"] for m in listed] == [final["id"]] and "nonce" not in listed[0]
    gone = await rest.get(f"/channels/{sim.channel_id}/messages/{start['id']}")
    assert gone.json()["code"] == 10008


@pytest.mark.anyio
async def test_a_result_is_stamped_as_it_is_written_to_its_users_websocket(
    sim: SimulatorServer, rest: httpx2.AsyncClient
) -> None:
    # The hand-off benchmark measures from this stamp: it must be the write of the result to a websocket of the
    # job's user, not the moment the bot composed it, nor the write of someone else's result to ours.
    def ours(frame: JSON) -> bool:
        return is_result(frame) and "a stamped cat" in frame["d"]["content"]

    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        theirs = sim.inject_job("a stamped cat", username="someone")  # same channel: its result reaches us too
        body = await imagine_body(rest, sim, gateway.session_id, "a stamped cat")
        assert (await rest.post("/interactions", json=body)).status_code == 204
        received: list[tuple[JSON, float]] = []
        with anyio.fail_after(WAIT):
            while sum(ours(frame) for frame, _ in received) < 2:
                frame = await gateway.next_event()
                received.append((frame, time.monotonic()))
    results = [(i, frame) for i, (frame, _) in enumerate(received) if ours(frame)]
    [(mine_at, mine)] = [(i, f) for i, f in results if f["d"]["mentions"][0]["id"] == sim.user_id]
    [(_, other)] = [(i, f) for i, f in results if f["d"]["mentions"][0]["id"] != sim.user_id]
    assert theirs in custom_ids(other["d"])[0]
    uuid = custom_ids(mine["d"])[0].rsplit("::", 1)[1]
    stamps = dict(sim.results_sent())
    assert set(stamps) == {uuid}  # the other user's result was written to our websocket: not a send to its user
    assert stamps[uuid] <= received[mine_at][1]

    # A result composed while nothing is written to its user's websocket (a zombie connection) is not stamped.
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        body = await imagine_body(rest, sim, gateway.session_id, "an unsent cat")
        assert (await rest.post("/interactions", json=body)).status_code == 204
        await gateway.next_event("INTERACTION_SUCCESS")
        assert sim.freeze_connections() == 1
        for _ in range(int(WAIT / 0.05)):  # the job goes on to its end on the bot's side
            if list(sim.job_states().values()).count("done") == 3:
                break
            await anyio.sleep(0.05)
    assert list(sim.job_states().values()).count("done") == 3
    assert set(dict(sim.results_sent())) == {uuid}


@pytest.mark.anyio
async def test_buttons_u2_reply_and_v1_job(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        await rest.post("/interactions", json=await imagine_body(rest, sim, gateway.session_id, "red fox"))
        grid = (await gateway.events_until(is_result))[-1]["d"]
        job_uuid = custom_ids(grid)[0].rsplit("::", 1)[1]

        u2 = press_body(sim, gateway.session_id, grid, f"MJ::JOB::upsample::2::{job_uuid}")
        assert (await rest.post("/interactions", json=u2)).status_code == 204
        events = await gateway.events_until(lambda f: f["t"] == "MESSAGE_UPDATE")
        assert [e["t"] for e in events] == [
            "INTERACTION_CREATE",
            "INTERACTION_SUCCESS",
            "MESSAGE_CREATE",
            "MESSAGE_UPDATE",
        ]
        reply = events[2]["d"]
        assert reply["type"] == 19 and reply["message_reference"]["message_id"] == grid["id"]
        assert reply["referenced_message"]["id"] == grid["id"]
        assert reply["interaction_metadata"]["id"] == events[0]["d"]["id"] and "nonce" not in reply
        assert reply["content"] == f"**red fox --v 7** - Image #2 <@{sim.user_id}>"
        (image,) = reply["attachments"]
        assert (await png(rest, image["url"])).size == (512, 512)
        single_uuid = image["filename"].rsplit("_", 1)[1].removesuffix(".png")
        assert single_uuid != job_uuid and all(c.endswith(single_uuid) or single_uuid in c for c in custom_ids(reply))
        assert f"MJ::JOB::upsample_v7_2x_subtle::1::{single_uuid}::SOLO" in custom_ids(reply)
        assert f"MJ::Outpaint::50::1::{single_uuid}::SOLO" in custom_ids(reply)
        labels = [c.get("label") for row in reply["components"] for c in row["components"]]
        assert labels[:4] == ["Upscale (Subtle)", "Upscale (Creative)", "Vary (Subtle)", "Vary (Strong)"]
        # The grid's U2 turns blue; pressing it again gets an ack and no new message.
        pressed = events[3]["d"]
        assert pressed["id"] == grid["id"] and pressed["components"][0]["components"][1]["style"] == 1
        await rest.post("/interactions", json=press_body(sim, gateway.session_id, grid, u2["data"]["custom_id"]))
        again = await gateway.silence(0.4)
        assert [e["t"] for e in again] == ["INTERACTION_CREATE", "INTERACTION_SUCCESS"]

        v1 = press_body(sim, gateway.session_id, grid, f"MJ::JOB::variation::1::{job_uuid}")
        await rest.post("/interactions", json=v1)
        events = await gateway.events_until(is_result)
        start = next(e["d"] for e in events if e["t"] == "MESSAGE_CREATE")
        assert start["nonce"] == v1["nonce"]
        assert start["content"] == f"**red fox --v 7** - Variations (Strong) by <@{sim.user_id}> (Waiting to start)"
        assert start["message_reference"]["message_id"] == grid["id"]
        final = events[-1]["d"]
        assert final["content"] == f"**red fox --v 7** - Variations (Strong) by <@{sim.user_id}> (fast)"
        assert final["type"] == 19 and final["message_reference"]["message_id"] == grid["id"]
        new_uuid = custom_ids(final)[0].rsplit("::", 1)[1]
        assert new_uuid != job_uuid and len(custom_ids(final)) == 9


@pytest.mark.anyio
async def test_queue_errors_and_other_users(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    sim.configure(max_running_jobs=1, max_queued_jobs=1, job_seconds=0.4)
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        bodies = [await imagine_body(rest, sim, gateway.session_id, f"job {n}") for n in range(3)]
        for body in bodies:
            assert (await rest.post("/interactions", json=body)).status_code == 204
        events = await gateway.events_until(lambda f: is_result(f) and "job 1" in f["d"]["content"], timeout=10)

    by_nonce = {e["d"].get("nonce"): e["d"] for e in events if e["t"] == "MESSAGE_CREATE" and e["d"].get("nonce")}
    queued, full = by_nonce[bodies[1]["nonce"]], by_nonce[bodies[2]["nonce"]]
    assert queued["embeds"][0]["title"] == "Job queued" and queued["flags"] == 64
    expected = fixture("reconstructed/embed-queue-full.json")["embed"]
    got = full["embeds"][0]
    assert {k: got[k] for k in ("type", "title", "description", "color")} == {
        k: expected[k] for k in ("type", "title", "description", "color")
    }
    assert got["footer"]["text"] == "/imagine job 2 --v 7"
    # The queued job starts once the first is done: a follow-up of its interaction, without the nonce.
    created = {e["d"]["id"]: e for e in events if e["t"] == "INTERACTION_CREATE"}
    later = next(
        e["d"]
        for e in events
        if e["t"] == "MESSAGE_CREATE" and "job 1" in e["d"]["content"] and "Waiting" in e["d"]["content"]
    )
    assert "nonce" not in later and later["interaction_metadata"]["id"] in created
    assert later["interaction_metadata"]["original_response_message_id"] == queued["id"]

    sim.configure(max_running_jobs=3, max_queued_jobs=10)
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        for prompt, title in (
            ("a forbiddenword cat", "Banned prompt detected"),
            ("cat --zzz 3", "Invalid parameter"),
            ("cat --ar 16:x", "Invalid parameter"),
        ):
            body = await imagine_body(rest, sim, gateway.session_id, prompt)
            await rest.post("/interactions", json=body)
            reply = (await gateway.next_event("MESSAGE_CREATE"))["d"]
            assert reply["nonce"] == body["nonce"] and reply["embeds"][0]["title"] == title
            assert reply["embeds"][0]["color"] == 16711680

        # Another user's job with the same prompt: visible, but with their nonce and no INTERACTION_* for us.
        mine = await imagine_body(rest, sim, gateway.session_id, "twin")
        await rest.post("/interactions", json=mine)
        theirs = sim.inject_job("twin", username="someone")
        events = await gateway.events_until(lambda f: is_result(f) and theirs in custom_ids(f["d"])[0], timeout=10)
    starts = [e["d"] for e in events if e["t"] == "MESSAGE_CREATE" and "Waiting" in e["d"]["content"]]
    assert len(starts) == 2 and {s["nonce"] for s in starts} >= {mine["nonce"]}
    other = next(s for s in starts if s["nonce"] != mine["nonce"])
    assert other["interaction"]["user"]["username"] == "someone"
    assert all(e["d"].get("nonce") in (None, mine["nonce"]) for e in events if e["t"].startswith("INTERACTION"))


@pytest.mark.anyio
async def test_remix_opens_a_modal_and_its_submit_runs_the_job(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        await rest.post("/interactions", json=await imagine_body(rest, sim, gateway.session_id, "a boat"))
        grid = (await gateway.events_until(is_result))[-1]["d"]
        job_uuid = custom_ids(grid)[0].rsplit("::", 1)[1]
        sim.set_remix(True)
        press = press_body(sim, gateway.session_id, grid, f"MJ::JOB::variation::3::{job_uuid}")
        await rest.post("/interactions", json=press)
        modal = (await gateway.next_event("INTERACTION_MODAL_CREATE"))["d"]
        assert modal["nonce"] == press["nonce"] and modal["custom_id"] == f"MJ::RemixModal::{job_uuid}::3::1"
        field = modal["components"][0]["components"][0]
        assert field["custom_id"] == "MJ::RemixModal::new_prompt" and field["value"] == "a boat --v 7"
        submit = {
            "type": 5,
            "application_id": MIDJOURNEY_BOT_ID,
            "channel_id": sim.channel_id,
            "guild_id": sim.guild_id,
            "session_id": gateway.session_id,
            "nonce": nonce(),
            "data": {
                "id": modal["id"],
                "custom_id": modal["custom_id"],
                "components": [
                    {"type": 1, "components": [{"type": 4, "custom_id": field["custom_id"], "value": "a red boat"}]}
                ],
            },
        }
        assert (await rest.post("/interactions", json=submit)).status_code == 204
        events = await gateway.events_until(is_result)
    start = next(e["d"] for e in events if e["t"] == "MESSAGE_CREATE")
    assert start["nonce"] == submit["nonce"]
    assert start["interaction_metadata"]["triggering_interaction_metadata"]["id"] == modal["id"]
    assert events[-1]["d"]["content"] == f"**a red boat --v 7** - Remix (Strong) by <@{sim.user_id}> (fast)"


@pytest.mark.anyio
async def test_upload_then_describe(sim: SimulatorServer, rest: httpx2.AsyncClient) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (64, 32), (20, 40, 200)).save(picture, "PNG")
    slots = await rest.post(
        f"/channels/{sim.channel_id}/attachments",
        json={"files": [{"id": "0", "filename": "blue.png", "file_size": len(picture.getvalue())}]},
    )
    (slot,) = slots.json()["attachments"]
    assert slot["id"] == 0 and slot["upload_filename"].endswith("/blue.png")
    async with httpx2.AsyncClient() as bare:  # the upload URL takes no Authorization
        assert (await bare.put(slot["upload_url"], content=picture.getvalue())).status_code == 200
    async with connect(rest, sim.gateway_url) as ws:
        gateway = RawGateway(ws)
        await gateway.identify(sim.token)
        cmd = await command(rest, "describe")
        body = {
            "type": 2,
            "application_id": MIDJOURNEY_BOT_ID,
            "guild_id": sim.guild_id,
            "channel_id": sim.channel_id,
            "session_id": gateway.session_id,
            "nonce": nonce(),
            "data": {
                "version": cmd["version"],
                "id": cmd["id"],
                "name": "describe",
                "type": 1,
                "options": [{"type": 11, "name": "image", "value": 0}],
                "attachments": [{"id": "0", "filename": "blue.png", "uploaded_filename": slot["upload_filename"]}],
            },
        }
        assert (await rest.post("/interactions", json=body)).status_code == 204
        first = (await gateway.next_event("MESSAGE_CREATE"))["d"]
        described = (await gateway.next_event("MESSAGE_UPDATE"))["d"]
    assert first["nonce"] == body["nonce"] and first["embeds"][0]["image"]["width"] == 64
    assert described["id"] == first["id"] and described["embeds"][0]["description"].count("--ar 64:32") == 4
    assert custom_ids(described)[:4] == [f"MJ::Job::PicReader::{i}" for i in range(1, 5)]


def test_the_echo_is_rewritten_like_midjourneys() -> None:
    rewritten = sim_prompts.echo("https://x.test/a.png   cats  and\tdogs —ar 16:9")
    assert re.fullmatch(r"<https://s\.mj\.run/[\w-]{11}> cats and dogs --ar 16:9 --v 7", rewritten)
    assert sim_prompts.echo("cat --niji 6") == "cat --niji 6"
    assert sim_prompts.echo("cat --v 6.1") == "cat --v 6.1"
    assert sim_prompts.check("cat --zzz", ()) is not None
    assert sim_prompts.check("cat --ar 3:2 --s 250 --no dogs, birds", ()) is None
    assert sim_prompts.slug("Sea, waves, background image, realistic. --v 7") == "Sea_waves_background_image_realistic."
