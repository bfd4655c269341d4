"""The REST client's fault paths against a mock transport: an interaction is never sent twice when Discord may
have taken it, 429s of every scope are waited out once (not twice), Cloudflare blocks everything for a while.

Time is virtual (`VirtualClock`); which routes a limit holds is checked on `RateLimits`, the pure part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from mcp_midjourney.discord.ratelimit import RateLimits
from mcp_midjourney.discord.rest import DiscordRest, DiscordUnavailable, InvalidRequest
from tests.unit.virtual_time import VirtualClock

pytestmark = pytest.mark.anyio
TOKEN = "made-up-token-for-rest-faults.XXXX"
ME_ROUTE = "GET /users/@me"
MESSAGE_ROUTE = "GET /channels/111111111111111111/messages/{id}"

Handler = Callable[[httpx2.Request], httpx2.Response]


def client(handler: Handler, clock: VirtualClock | None = None) -> DiscordRest:
    clock = clock or VirtualClock()
    return DiscordRest(
        "http://discord.test/api/v9",
        SecretStr(TOKEN),
        transport=httpx2.MockTransport(handler),
        interaction_interval=0,
        clock=clock,
        sleep=clock.sleep,
    )


def failing_then_204(failure: Handler) -> tuple[Handler, list[str]]:
    calls: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            return failure(request)
        return httpx2.Response(204)

    return handler, calls


def reset(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=request)


@pytest.mark.parametrize("failure", [reset, lambda r: httpx2.Response(502, text="<html>Bad Gateway</html>")])
@pytest.mark.parametrize("taken", [True, False])
async def test_an_interaction_whose_answer_was_lost_is_resent_only_if_discord_did_not_take_it(
    failure: Handler, taken: bool
) -> None:
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


CLOUDFLARE_PAGE = "<!DOCTYPE html><html><h1>Error 1015</h1>You are being rate limited</html>"


def test_a_cloudflare_html_429_blocks_every_route_for_its_retry_after() -> None:
    clock = VirtualClock()
    limits = RateLimits(clock)
    page = httpx2.Response(429, text=CLOUDFLARE_PAGE, headers={"Content-Type": "text/html", "Retry-After": "1"})
    assert limits.limited(ME_ROUTE, page) == 1.0
    assert limits.wait_before(ME_ROUTE) == limits.wait_before(MESSAGE_ROUTE) == 1.0  # another route too
    clock.now += 0.6
    assert limits.wait_before(MESSAGE_ROUTE) == pytest.approx(0.4)
    clock.now += 0.4
    assert limits.wait_before(MESSAGE_ROUTE) == 0.0
    # Without a Retry-After, a good while.
    bare = httpx2.Response(429, text=CLOUDFLARE_PAGE, headers={"Content-Type": "text/html"})
    assert limits.limited(ME_ROUTE, bare) == 5.0 and limits.wait_before(MESSAGE_ROUTE) == 5.0


async def test_the_client_waits_a_cloudflare_429_out_before_retrying() -> None:
    clock = VirtualClock()
    sent: list[tuple[str, float]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append((request.url.path, clock.now))
        if len(sent) == 1:
            headers = {"Content-Type": "text/html", "Retry-After": "1"}
            return httpx2.Response(429, text=CLOUDFLARE_PAGE, headers=headers)
        return httpx2.Response(200, json={"url": "wss://gateway.test"})

    rest = client(handler, clock)
    assert await rest.gateway_url() == "wss://gateway.test"
    assert clock.sleeps == [1.0] and sent[1][1] - sent[0][1] == 1.0


async def test_a_block_in_force_holds_the_clients_request_on_another_route() -> None:
    clock = VirtualClock()
    sent: list[float] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(clock.now)
        return httpx2.Response(200, json={"id": "1"})

    rest = client(handler, clock)
    page = httpx2.Response(429, text=CLOUDFLARE_PAGE, headers={"Content-Type": "text/html", "Retry-After": "1"})
    blocked_at = clock.now
    rest.limits.limited(ME_ROUTE, page)  # as a concurrent request on /users/@me just learnt
    await rest.message("111111111111111111", "222222222222222222")
    assert clock.sleeps == [1.0] and sent == [blocked_at + 1.0]


async def test_a_bucket_429_is_waited_once_not_twice() -> None:
    clock = VirtualClock()
    calls: list[float] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(clock.now)
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
        return httpx2.Response(200, json=[], headers={"X-RateLimit-Bucket": "b1", "X-RateLimit-Remaining": "4"})

    await client(handler, clock).messages("111111111111111111")
    assert clock.sleeps == [pytest.approx(0.3)]  # the body's retry_after, once: not also the header's 1 s
    assert calls[1] - calls[0] == pytest.approx(0.3)


def test_a_bucket_or_route_429_holds_only_its_own_route() -> None:
    limits = RateLimits(VirtualClock())
    limits.learn(MESSAGE_ROUTE, httpx2.Headers({"X-RateLimit-Bucket": "b1", "X-RateLimit-Remaining": "3"}))
    body = {"message": "You are being rate limited.", "retry_after": 0.3, "global": False}
    assert limits.limited(MESSAGE_ROUTE, httpx2.Response(429, json=body, headers={"X-RateLimit-Bucket": "b1"})) == 0.3
    assert limits.wait_before(MESSAGE_ROUTE) == pytest.approx(0.3) and limits.wait_before(ME_ROUTE) == 0.0
    assert limits.limited(ME_ROUTE, httpx2.Response(429, json=body)) == 0.3  # no bucket named: this route only
    assert limits.wait_before(ME_ROUTE) == pytest.approx(0.3)
    assert limits.wait_before("POST /interactions") == 0.0


def test_a_global_429_holds_every_route() -> None:
    limits = RateLimits(VirtualClock())
    body = {"message": "You are being rate limited.", "retry_after": 0.4, "global": True}
    assert limits.limited(ME_ROUTE, httpx2.Response(429, json=body, headers={"X-RateLimit-Global": "true"})) == 0.4
    assert limits.wait_before(MESSAGE_ROUTE) == pytest.approx(0.4)
    assert limits.wait_before("POST /interactions") == pytest.approx(0.4)


async def test_a_rate_limit_longer_than_the_cap_is_reported_not_waited() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(429, json={"message": "slow down", "retry_after": 3600, "global": False})

    clock = VirtualClock()
    with pytest.raises(DiscordUnavailable) as info:
        await client(handler, clock).me()
    assert clock.sleeps == [] and "3600" in str(info.value)


async def test_a_long_limit_learnt_earlier_is_waited_at_most_the_cap() -> None:
    clock = VirtualClock()
    rest = client(lambda request: httpx2.Response(200, json={}), clock)
    body = {"message": "slow down", "retry_after": 600, "global": True}
    rest.limits.limited(ME_ROUTE, httpx2.Response(429, json=body))
    await rest.me()
    assert clock.sleeps == [60.0]  # max_rate_limit_wait


def test_an_invalid_session_is_recognised() -> None:
    error = InvalidRequest(400, "Invalid Form Body", 50035, ["INTERACTION_SESSION_ID_INVALID"])
    assert error.invalid_session and not error.stale_command


def test_route_and_bucket_state_read_only_what_headers_say() -> None:
    limits = RateLimits(VirtualClock())
    limits.learn(ME_ROUTE, httpx2.Headers({"X-RateLimit-Remaining": "0"}))  # no bucket: nothing learnt
    assert limits.wait_before(ME_ROUTE) == 0.0
    headers: Any = {"x-ratelimit-bucket": "b2", "x-ratelimit-remaining": "zero"}  # unreadable: ignored
    limits.learn(ME_ROUTE, headers)
    assert limits.wait_before(ME_ROUTE) == 0.0
