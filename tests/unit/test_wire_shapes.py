"""Our frames and bodies against the real captures and Discord's documented examples."""

from __future__ import annotations

import copy

import httpx2
import pytest
from pydantic import SecretStr

from mcp_midjourney.config import Settings
from mcp_midjourney.discord.gateway import identify_payload
from mcp_midjourney.discord.ratelimit import route_key
from mcp_midjourney.discord.rest import DiscordRest
from mcp_midjourney.engine.engine import Engine
from mcp_midjourney.engine.store import Job
from mcp_midjourney.models import MIDJOURNEY_BOT_ID, JobStatus
from tests.conftest import load_fixture
from tests.unit.virtual_time import VirtualClock

CHANNEL = "1069126859100524575"


def test_identify_matches_a_real_user_account_identify() -> None:
    real = load_fixture("captured", "gateway-identify-user-account.json")
    ours = identify_payload("made-up-token-abcdef")
    assert ours["op"] == real["op"] == 2
    assert set(ours["d"]) == set(real["d"])  # a user account sends no "intents"
    assert "intents" not in ours["d"]
    assert set(ours["d"]["properties"]) == set(real["d"]["properties"])
    assert set(ours["d"]["presence"]) == set(real["d"]["presence"])
    assert ours["d"]["token"] == "made-up-token-abcdef"


@pytest.mark.anyio
async def test_a_global_429_holds_every_route_until_it_passes() -> None:
    fixture = load_fixture("discord-docs", "rest-429-global.json")
    clock = VirtualClock()
    calls: list[tuple[str, float]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append((request.url.path, clock.now))
        if len(calls) == 1:
            body = copy.deepcopy(fixture["body"]) | {"retry_after": 0.3}
            return httpx2.Response(429, json=body, headers=fixture["headers"] | {"Retry-After": "1"})
        return httpx2.Response(200, json={"id": "1"})

    rest = DiscordRest(
        "http://discord.test/api/v9",
        SecretStr("made-up-token-abcdef"),
        transport=httpx2.MockTransport(handler),
        clock=clock,
        sleep=clock.sleep,
    )
    started = clock.now
    await rest.me()  # the documented global 429 (scaled down to 0.3 s), then the retry once it passed
    assert clock.sleeps == [pytest.approx(0.3)] and calls[1][1] == pytest.approx(started + 0.3)
    # The same answer seen on /users/@me holds a request on another route as long.
    body = copy.deepcopy(fixture["body"]) | {"retry_after": 0.3}
    rest.limits.limited("GET /users/@me", httpx2.Response(429, json=body, headers=fixture["headers"]))
    await rest.message(CHANNEL, "1083788807800897597")
    assert clock.sleeps == [pytest.approx(0.3)] * 2, "a global limit holds every route"
    assert rest.limits.wait_before(route_key("GET", f"/channels/{CHANNEL}/messages/1")) == 0.0  # and then passes


@pytest.mark.anyio
async def test_the_shared_scope_429_is_waited_out() -> None:
    fixture = load_fixture("discord-docs", "rest-429-shared-scope.json")
    clock = VirtualClock()
    count = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal count
        count += 1
        if count == 1:
            # The documented example, scaled down from 64 s: body and headers agree, as Discord's do.
            headers = fixture["headers"] | {"Retry-After": "1", "X-RateLimit-Reset-After": "0.05"}
            return httpx2.Response(429, json=fixture["body"] | {"retry_after": 0.05}, headers=headers)
        return httpx2.Response(204)

    rest = DiscordRest(
        "http://discord.test/api/v9",
        SecretStr("made-up-token-abcdef"),
        transport=httpx2.MockTransport(handler),
        interaction_interval=0,
        clock=clock,
        sleep=clock.sleep,
    )
    await rest.interaction({"type": 2})
    assert count == 2 and clock.sleeps == [pytest.approx(0.05)]  # waited once, what the body said


def test_reconstructed_gateway_events_are_handled_quietly() -> None:
    engine = Engine(Settings(token=SecretStr("made-up-token-abcdef"), guild_id=None, channel_id=CHANNEL))
    events = load_fixture("reconstructed", "gateway-interaction-events.json")
    misc = load_fixture("reconstructed", "gateway-misc-events.json")
    job = Job(nonce="1083788665919897601", kind="imagine", prompt="glass")
    job.submitted = True
    engine.store.add(job)
    success = copy.deepcopy(events["INTERACTION_SUCCESS"]["d"]) | {"nonce": job.nonce, "id": "1083788667513999501"}
    engine.dispatch("INTERACTION_CREATE", success)
    engine.dispatch("INTERACTION_SUCCESS", success)
    assert engine.store.get("1083788667513999501") is job and job.in_flight
    engine.dispatch("MESSAGE_ACK", misc["MESSAGE_ACK"] if isinstance(misc["MESSAGE_ACK"], dict) else {})
    engine.dispatch("MESSAGE_DELETE", misc["MESSAGE_DELETE_d"] | {"channel_id": CHANNEL})
    engine.dispatch("MESSAGE_REACTION_ADD", misc["MESSAGE_REACTION_ADD_d"])
    assert job.in_flight
    error = {
        "id": "1083788668470304799",
        "channel_id": CHANNEL,
        "nonce": job.nonce,
        "author": {"id": MIDJOURNEY_BOT_ID, "bot": True},
        "content": misc["plain_error_content"],
        "embeds": [],
        "attachments": [],
    }
    engine.dispatch("MESSAGE_CREATE", error)
    assert job.status is JobStatus.FAILED and "error processing your request" in (job.error or "")
    failure = events["INTERACTION_FAILURE (discord.py-self types)"]["d"] | {"nonce": "1", "reason_code": 2}
    engine.dispatch("INTERACTION_FAILURE", failure)  # someone else's nonce: nothing happens
