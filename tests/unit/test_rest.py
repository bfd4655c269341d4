"""The REST client against a mock transport: rate limits, retries, typed errors, no token in errors."""

from __future__ import annotations

import json
import time

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

pytestmark = pytest.mark.anyio
TOKEN = "made-up-token-for-tests.XXXXXXXX"


def client(handler, **kwargs) -> DiscordRest:
    return DiscordRest(
        "http://discord.test/api/v9",
        SecretStr(TOKEN),
        transport=httpx2.MockTransport(handler),
        interaction_interval=kwargs.pop("interaction_interval", 0.0),
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
    calls = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            payload = dict(body.get("body", body)) if isinstance(body, dict) else {}
            payload["retry_after"] = 0.2
            return httpx2.Response(429, json=payload, headers={"X-RateLimit-Scope": "user"})
        return httpx2.Response(200, json={"url": "wss://gateway.test"})

    rest = client(handler)
    assert await rest.gateway_url() == "wss://gateway.test"
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.19


async def test_bucket_with_no_remaining_waits_for_reset() -> None:
    calls = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(time.monotonic())
        headers = {
            "X-RateLimit-Bucket": "abc",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": "0.25",
        }
        return httpx2.Response(200, json=[], headers=headers)

    rest = client(handler)
    await rest.messages("111111111111111111")
    await rest.messages("111111111111111111")
    assert calls[1] - calls[0] >= 0.2


async def test_5xx_is_retried_then_reported() -> None:
    count = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal count
        count += 1
        return httpx2.Response(502, text="bad gateway")

    rest = client(handler, max_retries=2)
    rest._backoff = staticmethod(lambda attempt: 0.0)  # type: ignore[method-assign]
    with pytest.raises(DiscordUnavailable) as info:
        await rest.me()
    assert count == 3
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"message": "401: Unauthorized", "code": 0}, Unauthorized),
        (403, {"message": "Missing Access", "code": 50001}, Forbidden),
        (404, {"message": "Unknown Message", "code": 10008}, NotFound),
    ],
)
async def test_errors_are_typed_and_never_carry_the_token(status, body, error) -> None:
    rest = client(lambda request: httpx2.Response(status, json=body))
    with pytest.raises(error) as info:
        await rest.message("111111111111111111", "222222222222222222")
    assert info.value.status == status
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
    stamps = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        stamps.append(time.monotonic())
        return httpx2.Response(204)

    rest = client(handler, interaction_interval=0.1)
    for _ in range(3):
        await rest.interaction({})
    assert stamps[1] - stamps[0] >= 0.09 and stamps[2] - stamps[1] >= 0.09


def test_route_keys_keep_major_ids_and_fold_the_rest() -> None:
    key = DiscordRest.route_key("GET", "/channels/111111111111111111/messages/222222222222222222")
    assert key == "GET /channels/111111111111111111/messages/{id}"
