"""The simulator never dies on a request: malformed REST bodies, uploads and gateway frames (issue 15).

Hypothesis throws broken input at one simulator per test; every answer must be one Discord could give
(never a 5xx, never an internal-error close), and the simulator must still run a job afterwards.
Bounded: a few dozen examples per test, sub-second jobs, all on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from httpx2.websockets import WebSocketDisconnect, WebSocketSession
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mcp_midjourney.models import MIDJOURNEY_BOT_ID
from mcp_midjourney.simulator import SimulatorServer

JSON = dict[str, Any]

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The close codes Discord's gateway uses for a client's mistakes (and 1000, a plain close).
DISCORD_CLOSE_CODES = {1000, 4000, 4001, 4002, 4003, 4004, 4005, 4007, 4008, 4009, 4012}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 90)).save(out, "PNG")
    return out.getvalue()


# Bytes that look like pictures to a sniffing reader, then go wrong.
picture_like = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda tail: _png()[:20] + tail, st.binary(max_size=200)),
    st.builds(lambda cut: _png()[:cut], st.integers(min_value=0, max_value=len(_png()))),
    st.builds(lambda tail: b"\xff\xd8\xff\xe0" + tail, st.binary(max_size=200)),
    st.builds(lambda tail: b"GIF89a" + tail, st.binary(max_size=200)),
    st.builds(lambda tail: b"RIFF\x00\x00\x00\x00WEBPVP8 " + tail, st.binary(max_size=200)),
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        job_seconds=0.2,
        ack_seconds=0.01,
        progress_steps=2,
        interaction_timeout_seconds=0.1,
        ready_min_bytes=0,
        max_queued_jobs=1000,
        max_running_jobs=50,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def rest(sim: SimulatorServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=sim.api_base, headers={"Authorization": sim.token}, timeout=10) as client:
        yield client


def commands(rest: httpx2.Client, sim: SimulatorServer) -> dict[str, JSON]:
    index = rest.get(f"/guilds/{sim.guild_id}/application-command-index").json()
    return {c["name"]: c for c in index["application_commands"]}


def slash_body(sim: SimulatorServer, command: JSON, options: list[JSON], attachments: list[JSON]) -> JSON:
    return {
        "type": 2,
        "application_id": MIDJOURNEY_BOT_ID,
        "guild_id": sim.guild_id,
        "channel_id": sim.channel_id,
        "session_id": "a" * 32,
        "data": {
            "version": command["version"],
            "id": command["id"],
            "name": command["name"],
            "type": 1,
            "options": options,
            "attachments": attachments,
        },
    }


def assert_alive_and_working(sim: SimulatorServer, rest: httpx2.Client) -> None:
    """The simulator still answers REST and the gateway, and still runs a job to its result."""
    assert rest.get("/gateway").status_code == 200
    imagine = commands(rest, sim)["imagine"]
    body = slash_body(sim, imagine, [{"type": 3, "name": "prompt", "value": "still alive"}], [])
    with rest.websocket(f"{sim.gateway_url}/?v=9&encoding=json", max_message_size_bytes=4 * 2**20) as ws:
        assert ws.receive_json(timeout=5)["op"] == 10
        ws.send_json({"op": 2, "d": {"token": sim.token, "capabilities": 30717, "properties": {}}})
        assert rest.post("/interactions", json=body).status_code == 204
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = ws.receive_json(timeout=5)
            data = frame.get("d") or {}
            if frame.get("t") == "MESSAGE_CREATE" and "still alive" in data.get("content", "") and data["attachments"]:
                return
    raise AssertionError("no result for a job after the fuzzing")


def assert_no_crash_logged(caplog: pytest.LogCaptureFixture) -> None:
    """No simulator bug was caught by its last-resort nets (they log at ERROR) and no ASGI error escaped."""
    crashes = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(("mcp_midjourney", "uvicorn"))
    ]
    assert not crashes, [r.getMessage() for r in crashes]


def assert_discord_answer(response: httpx2.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        assert isinstance(response.json(), dict)


# -- REST bodies ---------------------------------------------------------------------------------------

INTERACTION_FIELDS = ["type", "application_id", "guild_id", "channel_id", "session_id", "nonce", "data", "message_id"]
DATA_FIELDS = ["id", "version", "name", "type", "options", "attachments", "custom_id", "components", "values"]


@FUZZ
@given(
    kind=st.sampled_from([2, 3, 5]),
    changes=st.dictionaries(st.sampled_from(INTERACTION_FIELDS), json_values, max_size=4),
    data_changes=st.dictionaries(st.sampled_from(DATA_FIELDS), json_values, max_size=4),
    as_multipart=st.booleans(),
)
def test_malformed_interactions_get_discord_answers(
    sim: SimulatorServer,
    rest: httpx2.Client,
    caplog: pytest.LogCaptureFixture,
    kind: int,
    changes: JSON,
    data_changes: JSON,
    as_multipart: bool,
) -> None:
    body = slash_body(sim, commands(rest, sim)["imagine"], [{"type": 3, "name": "prompt", "value": "fuzz"}], [])
    body["type"] = kind
    body.update(changes)
    if isinstance(body.get("data"), dict):
        body["data"] = {**body["data"], **data_changes}
    if as_multipart:
        response = rest.post("/interactions", files={"payload_json": (None, json.dumps(body))})
    else:
        response = rest.post("/interactions", json=body)
    assert_discord_answer(response)
    assert_no_crash_logged(caplog)


ROUTES = [
    ("POST", "/interactions"),
    ("POST", "/channels/{channel}/attachments"),
    ("POST", "/channels/{channel}/messages"),
    ("GET", "/channels/{channel}/messages"),
    ("GET", "/channels/{channel}/messages/{channel}"),
    ("GET", "/channels/{channel}"),
    ("GET", "/guilds/{guild}/application-command-index"),
    ("POST", "/../inpaint/api/submit-job"),
]
CONTENT_TYPES = [
    None,
    "application/json",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded",
    "text/plain; charset=utf-8",
]


def _shaped(keys: list[str]) -> st.SearchStrategy[bytes]:
    """JSON objects with the route's own keys and wrong values: deeper than random JSON gets."""
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys)).map(lambda v: json.dumps(v).encode())


shaped_bodies = st.one_of(
    st.lists(st.dictionaries(st.sampled_from(["id", "filename", "file_size"]), json_values), max_size=3).map(
        lambda files: json.dumps({"files": files}).encode()
    ),
    _shaped(["content", "attachments", "nonce", "tts", "flags"]),
    _shaped(["mask", "customId", "prompt", "userId", "username"]),
    _shaped(INTERACTION_FIELDS),
)


@settings(FUZZ, max_examples=200)  # cheap requests: more of them reach the deeper shapes
@given(
    route=st.sampled_from(ROUTES),
    body=st.one_of(st.binary(max_size=400), json_values.map(lambda v: json.dumps(v).encode()), shaped_bodies),
    content_type=st.sampled_from(CONTENT_TYPES),
    query=st.dictionaries(st.sampled_from(["limit", "before", "after", "around"]), st.text(max_size=8), max_size=2),
)
def test_malformed_rest_bodies_get_discord_answers(
    sim: SimulatorServer,
    rest: httpx2.Client,
    caplog: pytest.LogCaptureFixture,
    route: tuple[str, str],
    body: bytes,
    content_type: str | None,
    query: dict[str, str],
) -> None:
    method, template = route
    path = template.format(channel=sim.channel_id, guild=sim.guild_id)
    url = sim.base_url + "/inpaint/api/submit-job" if path.startswith("/..") else path
    headers = {"Content-Type": content_type} if content_type else {}
    if method == "GET":
        response = rest.get(url, params=query)
    else:
        response = rest.request(method, url, content=body, headers=headers)
    assert_discord_answer(response)
    assert_no_crash_logged(caplog)


# -- uploads -------------------------------------------------------------------------------------------


@FUZZ
@given(content=picture_like, through_multipart=st.booleans(), filename=st.text(max_size=20))
def test_uploads_of_anything_never_kill_describe(
    sim: SimulatorServer,
    rest: httpx2.Client,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
    through_multipart: bool,
    filename: str,
) -> None:
    describe = commands(rest, sim)["describe"]
    options = [{"type": 11, "name": "image", "value": 0}]
    if through_multipart:
        body = slash_body(sim, describe, options, [{"id": "0", "filename": filename or "x.png"}])
        parts = {"payload_json": (None, json.dumps(body)), "files[0]": (filename or "x.png", content)}
        response = rest.post("/interactions", files=parts)
    else:
        slots = rest.post(
            f"/channels/{sim.channel_id}/attachments",
            json={"files": [{"id": "0", "filename": filename or "x.png", "file_size": len(content)}]},
        )
        assert_discord_answer(slots)
        if slots.status_code != 200:
            return
        (slot,) = slots.json()["attachments"]
        assert httpx2.put(slot["upload_url"], content=content).status_code == 200
        attachment = {"id": "0", "filename": filename or "x.png", "uploaded_filename": slot["upload_filename"]}
        response = rest.post("/interactions", json=slash_body(sim, describe, options, [attachment]))
    assert_discord_answer(response)
    time.sleep(0.12)  # the bot reads the upload after its round trip and job_seconds / 3
    assert_no_crash_logged(caplog)


# -- gateway frames ------------------------------------------------------------------------------------

OPS = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 13, 14, 31, 37, 99, -1]
frames = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.builds(
        lambda op, d: json.dumps({"op": op, "d": d}),
        st.one_of(st.sampled_from(OPS), json_values),
        json_values,
    ),
    st.builds(
        lambda op, d: json.dumps({"op": op, "d": d}),
        st.sampled_from([2, 6, 8, 14, 37]),
        st.dictionaries(
            st.sampled_from(["token", "guild_id", "user_ids", "query", "limit", "nonce", "subscriptions", "seq"]),
            json_values,
            max_size=5,
        ),
    ),
)


def _drain(ws: WebSocketSession) -> int | None:
    """Read until the server goes quiet or closes; the close code, if it closed."""
    try:
        while True:
            ws.receive(timeout=0.3)
    except TimeoutError:
        return None
    except WebSocketDisconnect as closed:
        return closed.code


@FUZZ
@given(frame=frames, identified=st.booleans())
def test_malformed_gateway_frames_get_discord_answers(
    sim: SimulatorServer, rest: httpx2.Client, caplog: pytest.LogCaptureFixture, frame: str | bytes, identified: bool
) -> None:
    with rest.websocket(f"{sim.gateway_url}/?v=9&encoding=json", max_message_size_bytes=4 * 2**20) as ws:
        assert ws.receive_json(timeout=5)["op"] == 10
        if identified:
            ws.send_json({"op": 2, "d": {"token": sim.token, "capabilities": 30717, "properties": {}}})
        if isinstance(frame, bytes):
            ws.send_bytes(frame)
        else:
            ws.send_text(frame)
        code = _drain(ws)
    assert code is None or code in DISCORD_CLOSE_CODES, code
    assert_no_crash_logged(caplog)


def test_after_the_fuzzing_the_simulator_still_runs_jobs(
    sim: SimulatorServer, rest: httpx2.Client, caplog: pytest.LogCaptureFixture
) -> None:
    assert_alive_and_working(sim, rest)
    assert_no_crash_logged(caplog)
