"""The REST client against a mock transport: rate limits, retries, typed errors, no token in errors.

Time is virtual (`VirtualClock`): the tests assert what the client waited and when each request went out.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from mcp_midjourney.discord.rest import (
    DiscordRest,
    DiscordUnavailable,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from tests.conftest import load_fixture
from tests.unit.virtual_time import VirtualClock

pytestmark = pytest.mark.anyio
TOKEN = "made-up-token-for-tests.XXXXXXXX"


def client(handler: Any, clock: VirtualClock | None = None, **kwargs: Any) -> DiscordRest:
    clock = clock or VirtualClock()
    return DiscordRest(
        "http://discord.test/api/v9",
        SecretStr(TOKEN),
        transport=httpx2.MockTransport(handler),
        interaction_interval=kwargs.pop("interaction_interval", 0.0),
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )


async def test_interaction_sends_the_bare_token_and_returns_on_204() -> None:
    seen = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(204)

    rest = client(handler)
    assert await rest.interaction({"type": 2, "nonce": "1"}) is None
    assert seen[0].headers["authorization"] == TOKEN  # no "Bearer " prefix for a user token
    assert seen[0].url.path == "/api/v9/interactions"
    assert json.loads(seen[0].content) == {"type": 2, "nonce": "1"}
    assert rest.requests["POST /interactions"] == 1


async def test_429_waits_retry_after_then_retries() -> None:
    body = load_fixture("discord-docs", "rest-429-user-scope.json")
    clock = VirtualClock()
    calls: list[float] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(clock.now)
        if len(calls) == 1:
            payload = dict(body.get("body", body)) if isinstance(body, dict) else {}
            payload["retry_after"] = 0.2
            return httpx2.Response(429, json=payload, headers={"X-RateLimit-Scope": "user"})
        return httpx2.Response(200, json={"url": "wss://gateway.test"})

    rest = client(handler, clock)
    assert await rest.gateway_url() == "wss://gateway.test"
    assert clock.sleeps == [pytest.approx(0.2)]
    assert calls[1] - calls[0] == pytest.approx(0.2)


async def test_bucket_with_no_remaining_waits_for_reset() -> None:
    clock = VirtualClock()
    calls: list[float] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(clock.now)
        headers = {
            "X-RateLimit-Bucket": "abc",
            "X-RateLimit-Remaining": "0" if len(calls) == 1 else "4",
            "X-RateLimit-Reset-After": "0.25",
        }
        return httpx2.Response(200, json=[], headers=headers)

    rest = client(handler, clock)
    await rest.messages("111111111111111111")
    await rest.messages("111111111111111111")
    await rest.messages("111111111111111111")  # the bucket has requests left now: no wait
    assert clock.sleeps == [pytest.approx(0.25)]
    assert calls[1] - calls[0] == pytest.approx(0.25) and calls[2] == calls[1]


async def test_5xx_is_retried_with_growing_backoff_then_reported() -> None:
    clock = VirtualClock()
    count = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal count
        count += 1
        return httpx2.Response(502, text="bad gateway")

    rest = client(handler, clock, max_retries=2)
    with pytest.raises(DiscordUnavailable) as info:
        await rest.me()
    assert count == 3
    first, second = clock.sleeps  # one backoff before each retry: 0.25 s then 0.5 s, each with ±50% jitter
    assert 0.125 <= first <= 0.375 and 0.25 <= second <= 0.75
    assert TOKEN not in str(info.value) and "502" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"message": "401: Unauthorized", "code": 0}, Unauthorized),
        (403, {"message": "Missing Access", "code": 50001}, Forbidden),
        (404, {"message": "Unknown Message", "code": 10008}, NotFound),
    ],
)
async def test_errors_are_typed_and_never_carry_the_token(status: int, body: Any, error: type[Exception]) -> None:
    rest = client(lambda request: httpx2.Response(status, json=body))
    with pytest.raises(error) as info:
        await rest.message("111111111111111111", "222222222222222222")
    assert getattr(info.value, "status", None) == status
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)


async def test_stale_command_version_is_recognised() -> None:
    body = {
        "code": 50035,
        "errors": {"data": {"_errors": [{"code": "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION", "message": "x"}]}},
        "message": "Invalid Form Body",
    }
    rest = client(lambda request: httpx2.Response(400, json=body))
    with pytest.raises(InvalidRequest) as info:
        await rest.interaction({})
    assert info.value.code == 50035 and info.value.stale_command


async def test_interactions_are_paced() -> None:
    clock = VirtualClock()
    stamps: list[float] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        stamps.append(clock.now)
        return httpx2.Response(204)

    rest = client(handler, clock, interaction_interval=0.1)
    for _ in range(3):
        await rest.interaction({})
    assert [b - a for a, b in itertools.pairwise(stamps)] == [pytest.approx(0.1)] * 2
    clock.now += 5  # a person's pause: the next one goes at once
    await rest.interaction({})
    assert len(clock.sleeps) == 2


def test_route_keys_keep_major_ids_and_fold_the_rest() -> None:
    key = DiscordRest.route_key("GET", "/channels/111111111111111111/messages/222222222222222222")
    assert key == "GET /channels/111111111111111111/messages/{id}"
