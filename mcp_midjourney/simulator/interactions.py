"""`POST /interactions`: what Discord accepts, what it refuses, and the per-account rate limit.

Faithful by default (protocol.md §8): no `nonce` is needed (the echo then carries none), `session_id` is
required but not checked against live gateway sessions, and the body may be JSON or `multipart/form-data`
with a `payload_json` part plus `files[n]`. Strict where Discord is: the token, the application, the
guild and channel, the command's id and version. `SimulatorConfig.strict_interactions` brings back the
older, stricter checks (a nonce required, a live session of the same account) for tests that want them.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response

from mcp_midjourney.models import MIDJOURNEY_BOT_ID

from .bot import MidjourneyBot
from .chat import INTERACTION_COMMAND, INTERACTION_COMPONENT, Chat, Interaction
from .errors import (
    DiscordError,
    account_of,
    form_error,
    json_body,
    not_found,
    parse_json_object,
    readable_channel,
    stale_command,
)
from .gateway import Gateway
from .messages import custom_ids
from .state import Account, World

JSON = dict[str, Any]

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
_KEPT_UPLOADS = 200
_MAX_FILES = 10


def keep_upload(world: World, name: str, data: bytes) -> None:
    """Keep uploaded bytes for a later interaction or message to name (the last 200)."""
    world.uploads[name] = data
    while len(world.uploads) > _KEPT_UPLOADS:
        world.uploads.popitem(last=False)


def safe_filename(name: str) -> str:
    """A filename as the upload bucket stores it (anything odd becomes `_`)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "file"


def _bad_form() -> DiscordError:
    return DiscordError(400, {"message": "Invalid Form Body", "code": 50035, "errors": {}})


async def multipart_body(world: World, request: Request) -> JSON:
    """A multipart interaction: its `payload_json`, with each `files[n]` kept and named in `data.attachments`."""
    try:
        form = await request.form(max_files=_MAX_FILES, max_fields=_MAX_FILES + 5)
    except (HTTPException, MultiPartException, KeyError, ValueError):  # a broken body or boundary
        raise _bad_form() from None
    try:
        payload = form.get("payload_json")
        if payload is None:
            raise form_error(["payload_json"], "BASE_TYPE_REQUIRED", "This field is required")
        body = parse_json_object(await payload.read() if isinstance(payload, UploadFile) else payload)
        files: dict[str, tuple[str, bytes]] = {}
        for key, value in form.multi_items():
            if not (key.startswith("files[") and key.endswith("]")) or not isinstance(value, UploadFile):
                continue
            content = await value.read()
            if len(content) > MAX_UPLOAD_BYTES:
                raise DiscordError(413, {"message": "Request entity too large", "code": 40005})
            files[key[6:-1]] = (safe_filename(value.filename or "file"), content)
    finally:
        await form.close()
    data = body.get("data")
    attachments: Any = data.get("attachments") if isinstance(data, dict) else None
    for attachment in attachments if isinstance(attachments, list) else []:
        if not isinstance(attachment, dict) or str(attachment.get("id")) not in files:
            continue
        part_name, part = files[str(attachment.get("id"))]
        filename = safe_filename(str(attachment.get("filename") or part_name))
        # Discord keeps the part as if it had been uploaded to the bucket: later steps find it by that name.
        stored_name = f"{uuid.uuid4()}/{filename}"
        keep_upload(world, stored_name, part)
        attachment["uploaded_filename"] = stored_name
    return body


class InteractionEndpoint:
    """Validates interactions as Discord would, records them and hands them to the bot."""

    def __init__(self, world: World, gateway: Gateway, chat: Chat, bot: MidjourneyBot) -> None:
        self.world = world
        self.gateway = gateway
        self.chat = chat
        self.bot = bot

    def _rate_limit(self, account: Account) -> dict[str, str]:
        """Count an interaction against the account's bucket; headers to send, or a 429 to raise."""
        limit = self.world.config.interaction_rate_limit
        if limit is None:
            return {}
        allowed, window = limit
        now = time.monotonic()
        recent = self.world.interaction_times.setdefault(account.user_id, deque())
        while recent and recent[0] <= now - window:
            recent.popleft()
        reset_after = (recent[0] + window - now) if recent else window
        headers = {
            "X-RateLimit-Limit": str(allowed),
            "X-RateLimit-Remaining": str(max(0, allowed - len(recent) - 1)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "4a8b1c2d3e4f5a6b7c8d9e0f1a2b3c4d",
        }
        if len(recent) >= allowed:
            headers.update(
                {
                    "Retry-After": str(math.ceil(reset_after)),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Scope": "user",
                }
            )
            body = {
                "message": "You are being rate limited.",
                "retry_after": round(reset_after, 3),
                "global": False,
            }
            raise DiscordError(429, body, headers)
        recent.append(now)
        return headers

    async def post_interaction(self, request: Request) -> Response:
        """Validate an interaction as Discord would, record it, and hand it to the bot: 204."""
        account = account_of(self.world, request)
        headers = self._rate_limit(account)
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            body = await multipart_body(self.world, request)
        else:
            body = await json_body(request)
        strict = self.world.config.strict_interactions
        kind = body.get("type")
        if kind not in (2, 3, 5) or isinstance(kind, bool):
            raise form_error(["type"], "BASE_TYPE_CHOICES", "Value must be one of {2, 3, 5}.")
        for name in ("application_id", "channel_id", "session_id", "nonce", "data"):
            if name == "nonce" and not strict:
                continue
            if body.get(name) in (None, ""):
                raise form_error([name], "BASE_TYPE_REQUIRED", "This field is required")
        data = body["data"]
        if not isinstance(data, dict):
            raise form_error(["data"], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        nonce = self._nonce(body.get("nonce"))
        if str(body["application_id"]) != MIDJOURNEY_BOT_ID:
            raise not_found("Application", 10002)
        channel = readable_channel(self.world, account, str(body["channel_id"]))
        guild_id = body.get("guild_id")
        if guild_id is not None and str(guild_id) != self.world.config.guild_id:
            raise not_found("Guild", 10004)
        if (str(guild_id) if guild_id is not None else None) != channel.guild_id:
            raise not_found("Channel", 10003)
        if strict:
            session = self.gateway.sessions.get(str(body["session_id"]))
            if session is None or session.account is not account or session not in self.gateway.live_sessions():
                raise form_error(["session_id"], "INTERACTION_SESSION_ID_INVALID", "Invalid session ID.")
        interaction = Interaction(self.world.snowflakes.next(), nonce, kind, account.user, channel, account, data=data)
        valid = self._check_kind(interaction, body)
        self.world.gateway_counts[f"interaction type {kind}"] += 1
        # Discord creates the interaction while answering the request: the event may beat the 204.
        self.chat.interaction_event(interaction, "INTERACTION_CREATE")
        if valid:
            self.bot.handle(interaction)
        else:
            self.bot.fail_later(interaction)
        return Response(status_code=204, headers=headers)

    @staticmethod
    def _nonce(value: Any) -> str | None:
        """The nonce to echo: none when none was sent; else a snowflake (digits, at most 25)."""
        if value in (None, ""):
            return None
        nonce = str(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, str | int)
            or not (nonce.isascii() and nonce.isdigit())
            or len(nonce) > 25
        ):
            raise form_error(["nonce"], "NONCE_TYPE_INVALID", "Nonce must be a snowflake or a string of digits.")
        return nonce

    def _check_kind(self, it: Interaction, body: JSON) -> bool:
        """Type-specific checks: 400 for a malformed request; False for one no bot will answer."""
        data = it.data
        if it.type == INTERACTION_COMMAND:
            command = self.world.commands.find(str(data.get("id")))
            if command is None or str(data.get("version")) != command.version or data.get("name") != command.name:
                raise stale_command()
            it.name = command.name
            return True
        if it.type == INTERACTION_COMPONENT:
            if not body.get("message_id"):
                raise form_error(["message_id"], "BASE_TYPE_REQUIRED", "This field is required")
            if not isinstance(data.get("custom_id"), str) or not data["custom_id"]:
                raise form_error(["data", "custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
            it.message_id = str(body["message_id"])
            message = self.world.message(it.channel.id, it.message_id)
            return (
                message is not None
                and not message.deleted
                and (message.visible_to is None or message.visible_to == it.user_id)
                and data["custom_id"] in custom_ids(message.components)
            )
        for name in ("id", "custom_id", "components"):
            if not data.get(name):
                raise form_error(["data", name], "BASE_TYPE_REQUIRED", "This field is required")
        return self.bot.presses.pending_modal(str(data["id"]), str(data["custom_id"]), it.user_id) is not None
