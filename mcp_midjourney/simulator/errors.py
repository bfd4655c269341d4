"""Discord's REST error answers, and the token, channel and body checks that raise them.

Answers are Discord's, status and body: 401 `{"message": "401: Unauthorized", "code": 0}`, 404 code 10003 /
10008, 403 code 50001, 400 code 50035 with a nested `errors` object, 400 code 50109 for a body that is not JSON.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .state import Account, Channel, World

JSON = dict[str, Any]


class DiscordError(Exception):
    """An error answer, as Discord words it."""

    def __init__(self, status: int, body: JSON, headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        """The HTTP response carrying this error."""
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def unauthorized() -> DiscordError:
    """401: missing or wrong token."""
    return DiscordError(401, {"message": "401: Unauthorized", "code": 0})


def not_found(what: str, code: int) -> DiscordError:
    """404 `Unknown <what>`."""
    return DiscordError(404, {"message": f"Unknown {what}", "code": code})


def form_error(path: list[str], code: str, message: str) -> DiscordError:
    """400 Invalid Form Body, with Discord's nested `errors` object pointing at the bad field."""
    errors: JSON = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {key: errors}
    return DiscordError(400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"})


def invalid_json() -> DiscordError:
    """400 code 50109: the body is not a JSON object."""
    return DiscordError(400, {"message": "The request body contains invalid JSON.", "code": 50109})


def stale_command() -> DiscordError:
    """400 for a slash command whose id/version is not the registered one."""
    return form_error(
        ["data"],
        "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION",
        "This command is outdated, please try again in a few minutes",
    )


def account_of(world: World, request: Request) -> Account:
    """The account whose token the request carries (401 for none, or a wrong one)."""
    account = world.accounts.get(request.headers.get("authorization", ""))
    if account is None:
        raise unauthorized()
    return account


def readable_channel(world: World, account: Account, channel_id: str) -> Channel:
    """A channel the account may use: 404 code 10003 if unknown, 403 code 50001 if not theirs."""
    channel = world.channels.get(channel_id)
    if channel is None:
        raise not_found("Channel", 10003)
    if not channel.readable_by(account.user_id):
        raise DiscordError(403, {"message": "Missing Access", "code": 50001})
    return channel


def parse_json_object(raw: bytes | str) -> JSON:
    """A request body that must be one JSON object (400 code 50109 otherwise)."""
    try:
        body = json.loads(raw)
    except ValueError:  # bad UTF-8 too: UnicodeDecodeError is a ValueError
        raise invalid_json() from None
    if not isinstance(body, dict):
        raise invalid_json()
    return body


async def json_body(request: Request) -> JSON:
    """The request's body as one JSON object."""
    return parse_json_object(await request.body())
