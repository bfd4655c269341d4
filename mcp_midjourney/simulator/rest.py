"""Discord's REST API (the part a Midjourney client uses) and the fake CDNs.

Answers are Discord's, status and body (errors.py): 401 `{"message": "401: Unauthorized", "code": 0}`, 404 code
10003 / 10008, 403 code 50001, 400 code 50035 with a nested `errors` object, 429 with `retry_after` and the
X-RateLimit headers. A valid interaction (interactions.py) gets 204 and no body: its outcome arrives on the gateway.
A malformed body never gets a 500: what Discord would refuse gets a 400.
"""

from __future__ import annotations

import base64
import io
import logging
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
from PIL import Image, UnidentifiedImageError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .bot import MidjourneyBot
from .chat import Chat
from .errors import DiscordError, account_of, form_error, json_body, not_found, readable_channel
from .faults import RestFault, rest_fault_response
from .gateway import TRANSPORT_SCOPE_KEY, Gateway
from .images import ImageKey, fake_mp4
from .interactions import MAX_UPLOAD_BYTES, InteractionEndpoint, keep_upload, safe_filename
from .messages import BOT_USER
from .state import Account, Channel, StoredFile, World

JSON = dict[str, Any]

logger = logging.getLogger("mcp_midjourney.simulator")
Endpoint = Callable[[Request], Awaitable[Response]]

_GRID_IMAGE_NAMES = ("0_0.png", "0_1.png", "0_2.png", "0_3.png")
_MISSING = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code></Error>"  # the bucket's 404


class RestApi:
    """The REST endpoints, mounted under /api/v9 and /api/v10, and the CDN endpoints at the root."""

    def __init__(self, world: World, gateway: Gateway, chat: Chat, bot: MidjourneyBot) -> None:
        self.world = world
        self.gateway = gateway
        self.chat = chat
        self.bot = bot
        self._pending_uploads: set[str] = set()
        self.interactions = InteractionEndpoint(world, gateway, chat, bot)

    # -- routing -----------------------------------------------------------------------------------

    def _route(self, path: str, endpoint: Endpoint, method: str) -> Route:
        key = f"{method} {path}"

        async def counted(request: Request) -> Response:
            self.world.rest_counts[key] += 1
            fault = self._fault(request, key)
            if fault is not None and not (fault.status == 0 and fault.handled):
                return await self._faulty(request, fault)
            try:
                response = await endpoint(request)
            except DiscordError as error:
                response = error.response()
            except Exception:  # a simulator bug met a body Discord would refuse: log it, answer as Discord would
                logger.exception("simulator: %s failed on a request", key)
                response = DiscordError(400, {"message": "Invalid Form Body", "code": 50035, "errors": {}}).response()
            return response if fault is None else await self._faulty(request, fault)

        return Route(path, counted, methods=[method], name=key)

    def _fault(self, request: Request, key: str) -> RestFault | None:
        """The armed fault this API request gets, if any (never for the CDNs)."""
        if not request.url.path.startswith("/api/"):
            return None
        return self.world.faults.take_rest(request.method, "/" + request.url.path.split("/", 3)[-1])

    async def _faulty(self, request: Request, fault: RestFault) -> Response:
        if fault.status == 0:
            # A network failure: the TCP connection goes away with no answer (under uvicorn; else a bare 502).
            transport = request.scope.get(TRANSPORT_SCOPE_KEY)
            if transport is not None:
                transport.abort()
                await anyio.sleep(0.05)  # let the server notice before it tries to answer
            return Response(status_code=502)
        status, body, headers = rest_fault_response(fault)
        return Response(body, status_code=status, headers=headers)

    def api_routes(self) -> list[Route]:
        """Routes relative to `/api/vN`."""
        return [
            self._route("/gateway", self.get_gateway, "GET"),
            self._route("/users/@me", self.get_me, "GET"),
            self._route("/guilds/{guild_id}/application-command-index", self.guild_command_index, "GET"),
            self._route("/channels/{channel_id}/application-command-index", self.channel_command_index, "GET"),
            self._route("/interactions", self.interactions.post_interaction, "POST"),
            self._route("/channels/{channel_id}", self.get_channel, "GET"),
            self._route("/channels/{channel_id}/messages", self.get_messages, "GET"),
            self._route("/channels/{channel_id}/messages/{message_id}", self.get_message, "GET"),
            self._route("/channels/{channel_id}/attachments", self.post_attachments, "POST"),
            self._route("/channels/{channel_id}/messages", self.post_message, "POST"),
        ]

    def cdn_routes(self) -> list[Route]:
        """Routes at the server's root: the Discord CDN and media proxy, Midjourney's CDN, uploads."""
        return [
            self._route("/attachments/{channel_id}/{attachment_id}/{filename}", self.get_attachment, "GET"),
            self._route("/media/attachments/{channel_id}/{attachment_id}/{filename}", self.get_attachment, "GET"),
            self._route("/mjcdn/{job_uuid}/{name}", self.get_mj_image, "GET"),
            self._route("/mjcdn/video/{job_uuid}/{name}", self.get_mj_video, "GET"),
            self._route("/upload/{upload_id}/{filename}", self.put_upload, "PUT"),
            # Midjourney's web activity (the Vary (Region) editor) lives outside Discord's API.
            self._route("/inpaint/api/submit-job", self.post_inpaint, "POST"),
        ]

    # -- helpers -----------------------------------------------------------------------------------

    def _account(self, request: Request) -> Account:
        return account_of(self.world, request)

    def _channel(self, account: Account, channel_id: str) -> Channel:
        return readable_channel(self.world, account, channel_id)

    async def _json(self, request: Request) -> JSON:
        return await json_body(request)

    # -- simple reads ------------------------------------------------------------------------------

    async def get_gateway(self, request: Request) -> Response:
        """`{"url": "ws://127.0.0.1:<port>"}`: where the websocket lives (no token needed, a wrong one is refused)."""
        if "authorization" in request.headers:
            self._account(request)
        return JSONResponse({"url": self.world.base_url.replace("http://", "ws://", 1)})

    async def get_me(self, request: Request) -> Response:
        """The account's own user object."""
        account = self._account(request)
        me = {
            **account.user,
            "mfa_enabled": False,
            "locale": "en-US",
            "premium_type": 0,
            "email": f"{account.username}@example.invalid",
            "verified": True,
            "phone": None,
            "nsfw_allowed": True,
            "bio": "",
        }
        return JSONResponse(me)

    async def guild_command_index(self, request: Request) -> Response:
        """The Midjourney command index seen from a guild."""
        self._account(request)
        if request.path_params["guild_id"] != self.world.config.guild_id:
            raise not_found("Guild", 10004)
        return JSONResponse(self.world.commands.payload())

    async def channel_command_index(self, request: Request) -> Response:
        """The Midjourney command index seen from a channel (how a DM asks)."""
        self._channel(self._account(request), request.path_params["channel_id"])
        return JSONResponse(self.world.commands.payload())

    async def get_messages(self, request: Request) -> Response:
        """A page of a channel's history, newest first, as `limit`/`before`/`after`/`around` select."""
        account = self._account(request)
        channel = self._channel(account, request.path_params["channel_id"])
        query = request.query_params
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            raise form_error(["limit"], "NUMBER_TYPE_COERCE", "Value is not int.") from None
        if not 1 <= limit <= 100:
            raise form_error(["limit"], "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")
        visible = [m for m in channel.messages.values() if not m.deleted and not m.ephemeral]
        visible.sort(key=lambda m: int(m.id), reverse=True)
        for name in ("before", "after", "around"):
            if name in query and not (query[name].isascii() and query[name].isdigit()):
                raise form_error([name], "NUMBER_TYPE_COERCE", f'Value "{query[name]}" is not snowflake.')
        if "before" in query:
            page = [m for m in visible if int(m.id) < int(query["before"])][:limit]
        elif "after" in query:
            page = [m for m in reversed(visible) if int(m.id) > int(query["after"])][:limit][::-1]
        elif "around" in query:
            pivot = int(query["around"])
            older = [m for m in visible if int(m.id) <= pivot][: (limit + 1) // 2]
            newer = [m for m in reversed(visible) if int(m.id) > pivot][: limit // 2][::-1]
            page = newer + older
        else:
            page = visible[:limit]
        return JSONResponse([self.world.render(m, gateway=False) for m in page])

    async def get_message(self, request: Request) -> Response:
        """One message (404, code 10008, once deleted or when only someone else could see it)."""
        account = self._account(request)
        channel = self._channel(account, request.path_params["channel_id"])
        message = channel.messages.get(request.path_params["message_id"])
        if message is None or message.deleted or message.ephemeral:
            raise not_found("Message", 10008)
        return JSONResponse(self.world.render(message, gateway=False))

    async def get_channel(self, request: Request) -> Response:
        """The channel object (a guild text channel, or the DM with the bot)."""
        channel = self._channel(self._account(request), request.path_params["channel_id"])
        visible = [m for m in channel.messages.values() if not m.deleted and not m.ephemeral]
        last = visible[-1].id if visible else None
        if channel.guild_id is None:
            return JSONResponse(
                {"id": channel.id, "type": 1, "last_message_id": last, "flags": 0, "recipients": [BOT_USER]}
            )
        body = {
            "id": channel.id,
            "type": 0,
            "guild_id": channel.guild_id,
            "name": channel.name,
            "position": 0,
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "last_message_id": last,
            "rate_limit_per_user": 0,
            "flags": 0,
            "permission_overwrites": [],
        }
        return JSONResponse(body)

    async def post_message(self, request: Request) -> Response:
        """A user's own message, with files uploaded through the attachment flow (how image prompts get a URL)."""
        account = self._account(request)
        channel = self._channel(account, request.path_params["channel_id"])
        body = await self._json(request)
        attachments = body.get("attachments") or []
        if not isinstance(attachments, list):  # Discord: a form body error, never a crash
            raise DiscordError(400, {"message": "Invalid Form Body", "code": 50035})
        files = []
        for attachment in attachments:
            uploaded = str(attachment.get("uploaded_filename") if isinstance(attachment, dict) else "")
            data = self.world.uploads.get(uploaded)
            if data is None:
                raise DiscordError(400, {"message": "Invalid Form Body", "code": 50035})
            filename = str(attachment.get("filename") or "image.png")
            try:
                with Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
                    content_type = Image.MIME.get(image.format or "", "application/octet-stream")
            except (UnidentifiedImageError, OSError):
                width = height = 0
                content_type = "application/octet-stream"
            stored = StoredFile(filename, content_type, len(data), width, height, loader=partial(bytes, data))
            files.append(self.world.add_file(channel.id, stored))
        author = {"id": account.user_id, "username": account.username, "bot": False}
        message = self.chat.compose(channel, str(body.get("content") or ""), author=author, attachments=files)
        self.chat.post(message)
        return JSONResponse(self.world.render(message, gateway=False))

    async def post_inpaint(self, request: Request) -> Response:
        """The region editor's submit: starts the Vary (Region) job its iframe modal was opened for."""
        body = await self._json(request)
        mask = str(body.get("mask") or "")
        try:
            with Image.open(io.BytesIO(base64.b64decode(mask, validate=True))) as image:
                image.verify()
        except (ValueError, UnidentifiedImageError, OSError):
            return JSONResponse({"error": "mask must be a base64 PNG"}, status_code=400)
        if not self.bot.presses.submit_region(str(body.get("customId") or ""), str(body.get("prompt") or "")):
            return JSONResponse({"error": "unknown or expired customId"}, status_code=404)
        return JSONResponse({"success": True})

    # -- interactions ------------------------------------------------------------------------------

    # -- uploads -----------------------------------------------------------------------------------

    async def post_attachments(self, request: Request) -> Response:
        """Upload slots: one `upload_url` per file, to PUT the raw bytes to (no Authorization)."""
        account = self._account(request)
        self._channel(account, request.path_params["channel_id"])
        body = await self._json(request)
        files = body.get("files")
        if not isinstance(files, list) or not files:
            raise form_error(["files"], "BASE_TYPE_REQUIRED", "This field is required")
        slots = []
        for position, entry in enumerate(files):
            if not isinstance(entry, dict) or not entry.get("filename"):
                raise form_error(["files", str(position), "filename"], "BASE_TYPE_REQUIRED", "This field is required")
            size = entry.get("file_size") or 0
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise form_error(["files", str(position), "file_size"], "NUMBER_TYPE_COERCE", "Value is not int.")
            if size > MAX_UPLOAD_BYTES:
                raise DiscordError(400, {"message": "Request entity too large", "code": 40005})
            filename = safe_filename(str(entry["filename"]))
            upload_id = str(uuid.uuid4())
            upload_filename = f"{upload_id}/{filename}"
            upload_token = uuid.uuid4().hex
            self._pending_uploads.add(upload_filename)
            raw_id = entry.get("id", position)
            slots.append(
                {
                    "id": int(raw_id) if str(raw_id).isascii() and str(raw_id).isdigit() else raw_id,
                    "upload_url": f"{self.world.base_url}/upload/{upload_filename}?upload_id={upload_token}",
                    "upload_filename": upload_filename,
                }
            )
        return JSONResponse({"attachments": slots})

    async def put_upload(self, request: Request) -> Response:
        """The storage bucket behind `upload_url`: keeps the bytes for a later interaction to name."""
        name = f"{request.path_params['upload_id']}/{request.path_params['filename']}"
        if name not in self._pending_uploads:
            return Response("Not Found", status_code=404, media_type="text/plain")
        data = await request.body()
        if len(data) > MAX_UPLOAD_BYTES:
            return Response("Payload Too Large", status_code=413, media_type="text/plain")
        self._pending_uploads.discard(name)
        keep_upload(self.world, name, data)
        return Response(status_code=200)

    # -- CDNs --------------------------------------------------------------------------------------

    async def get_attachment(self, request: Request) -> Response:
        """A file of the Discord CDN (the query signature is accepted as is, like an unexpired one)."""
        stored = self.world.files.get(request.path_params["attachment_id"])
        if stored is None or stored.filename != request.path_params["filename"]:
            return Response("404: Not Found", status_code=404, media_type="text/plain")
        data = self.world.file_bytes(stored)
        return Response(data, media_type=stored.content_type, headers={"Cache-Control": "public, max-age=86400"})

    async def get_mj_video(self, request: Request) -> Response:
        """Midjourney's video files: `/video/<uuid>/<i>.mp4` (i = 0..videos-1; also trueai's `0_<i>.mp4`)."""
        job = self.bot.jobs.jobs.get(request.path_params["job_uuid"])
        name = request.path_params["name"].removeprefix("0_")
        if job is None or job.state != "done" or job.result not in ("video", "clip") or not name.endswith(".mp4"):
            return Response(_MISSING, status_code=404, media_type="application/xml")
        number = name.removesuffix(".mp4")
        if not number.isdigit() or int(number) >= job.videos:
            return Response(_MISSING, status_code=404, media_type="application/xml")
        data = fake_mp4(job.uuid, int(number))
        return Response(data, media_type="video/mp4", headers={"Cache-Control": "public, max-age=31536000"})

    async def get_mj_image(self, request: Request) -> Response:
        """Midjourney's CDN: `/<uuid>/0_<i>.png` (i = 0..3 of a grid, 0 of a single) and `grid_0.png`."""
        job = self.bot.jobs.jobs.get(request.path_params["job_uuid"])
        name = request.path_params["name"]
        key: ImageKey | None = None
        if job is not None and job.state == "done" and job.result != "video":
            if job.result == "grid" and name in _GRID_IMAGE_NAMES:
                key = ImageKey(job.echo, job.uuid, _GRID_IMAGE_NAMES.index(name) + 1)
            elif name == "0_0.png" or (name == "grid_0.png" and job.result == "grid"):
                key = job.image_key()
        if key is None:
            # What the real bucket answers for a missing object.
            return Response(_MISSING, status_code=404, media_type="application/xml")
        data, content_type, _, _ = self.world.images.get(key)
        return Response(data, media_type=content_type, headers={"Cache-Control": "public, max-age=31536000"})
