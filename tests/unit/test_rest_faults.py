"""The REST client's fault paths against a mock transport: an interaction is never sent twice when Discord may
have taken it, 429s of every scope are waited out once (not twice), Cloudflare blocks everything for a while."""

from __future__ import annotations

import time

import anyio
import httpx2
import pytest
from pydantic import SecretStr

from mcp_midjourney.discord.rest import DiscordRest, DiscordUnavailable, InvalidRequest

pytestmark = pytest.mark.anyio
TOKEN = "made-up-token-for-rest-faults.XXXX"


def client(handler) -> DiscordRest:
    rest = DiscordRest(
        "http://discord.test/api/v9", SecretStr(TOKEN), transport=httpx2.MockTransport(handler), interaction_interval=0
    )
    rest._backoff = staticmethod(lambda attempt: 0.0)  # type: ignore[method-assign]
    return rest


def failing_then_204(failure):
    calls: list[float] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return failure(request)
        return httpx2.Response(204)

    return handler, calls


def reset(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=request)


@pytest.mark.parametrize("failure", [reset, lambda r: httpx2.Response(502, text="<html>Bad Gateway</html>")])
@pytest.mark.parametrize("taken", [True, False])
async def test_an_interaction_whose_answer_was_lost_is_resent_only_if_discord_did_not_take_it(failure, taken) -> None:
    handler, calls = failing_then_204(failure)
    asked = []

    async def confirm() -> bool:
        asked.append(1)
        return taken

    await client(handler).interaction({"type": 2}, confirm=confirm)
    assert asked == [1]
    assert len(calls) == (1 if taken else 2)


async def test_without_a_way_to_confirm_an_ambiguous_interaction_fails_rather_than_doubling() -> None:
    handler, calls = failing_then_204(reset)
    with pytest.raises(DiscordUnavailable) as info:
        await client(handler).interaction({"type": 2})
    assert len(calls) == 1 and TOKEN not in str(info.value)


async def test_a_request_that_never_connected_is_retried_even_for_interactions() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    handler, calls = failing_then_204(refuse)
    await client(handler).interaction({"type": 2}, confirm=None)
    assert len(calls) == 2


async def test_a_cloudflare_html_429_blocks_every_route_for_its_retry_after() -> None:
    calls: list[tuple[str, float]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append((request.url.path, time.monotonic()))
        if len(calls) == 1:
            page = "<!DOCTYPE html><html><h1>Error 1015</h1>You are being rate limited</html>"
            return httpx2.Response(429, text=page, headers={"Content-Type": "text/html", "Retry-After": "1"})
        return httpx2.Response(200, json={"url": "wss://gateway.test"})

    rest = client(handler)
    async with anyio.create_task_group() as tg:
        tg.start_soon(rest.gateway_url)
        await anyio.sleep(0.05)
        tg.start_soon(rest.me)  # another route: Cloudflare blocks it too
    started = calls[0][1]
    assert all(at - started >= 0.95 for _, at in calls[1:]), calls


async def test_a_bucket_429_is_waited_once_not_twice() -> None:
    calls: list[float] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            headers = {
                "X-RateLimit-Bucket": "b1",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": "0.3",
                "X-RateLimit-Scope": "user",
                "Retry-After": "1",
            }
            body = {"message": "You are being rate limited.", "retry_after": 0.3, "global": False}
            return httpx2.Response(429, json=body, headers=headers)
        return httpx2.Response(200, json=[])

    await client(handler).messages("111111111111111111")
    assert 0.28 <= calls[1] - calls[0] < 0.55


async def test_a_global_429_holds_every_route() -> None:
    calls: list[tuple[str, float]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append((request.url.path, time.monotonic()))
        if len(calls) == 1:
            body = {"message": "You are being rate limited.", "retry_after": 0.4, "global": True}
            return httpx2.Response(429, json=body, headers={"X-RateLimit-Global": "true"})
        return httpx2.Response(200, json={})

    rest = client(handler)
    await rest.me()
    await rest.message("111111111111111111", "222222222222222222")
    assert calls[2][1] - calls[0][1] >= 0.38  # the second route waited too (it came after the retried first)


async def test_a_rate_limit_longer_than_the_cap_is_reported_not_waited() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(429, json={"message": "slow down", "retry_after": 3600, "global": False})

    started = time.monotonic()
    with pytest.raises(DiscordUnavailable) as info:
        await client(handler).me()
    assert time.monotonic() - started < 1 and "3600" in str(info.value)


def test_an_invalid_session_is_recognised() -> None:
    error = InvalidRequest(400, "Invalid Form Body", 50035, ["INTERACTION_SESSION_ID_INVALID"])
    assert error.invalid_session and not error.stale_command
