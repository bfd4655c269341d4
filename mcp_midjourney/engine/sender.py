"""One interaction sent for a job, and what it takes to get it through: the body built from the job's request,
a stale command version (refresh the index, retry once), a gateway session that just died (wait for the next one,
retry), and an answer lost on the network (resent only if the gateway never echoed our nonce)."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from .. import midjourney as mj
from ..config import Settings
from ..discord.gateway import GatewayFatal
from ..discord.rest import InvalidRequest
from ..discord.snowflake import make_snowflake
from ..midjourney.results import Modal
from .accounts import Account, AccountError
from .errors import EngineError
from .inpaint import InpaintError, submit_region
from .store import ButtonPress, Job, JobStore, SlashCommand

log = logging.getLogger(__name__)

ECHO_SECONDS = 1.5  # Discord echoes an interaction it took (INTERACTION_CREATE) well within this


def interaction_body(
    request: SlashCommand | ButtonPress, account: Account, nonce: str, command: dict[str, Any] | None, app_id: str
) -> dict[str, Any]:
    """The Discord body of a job's request, for the account that sends it."""
    session_id = account.gateway.session_id or ""
    if isinstance(request, SlashCommand):
        assert command is not None
        return mj.slash_command(
            command,
            request.options,
            guild_id=account.guild_id,
            channel_id=account.channel_id,
            session_id=session_id,
            nonce=nonce,
            attachments=request.attachments,
        )
    return mj.button_press(
        application_id=app_id,
        guild_id=account.guild_id,
        channel_id=account.channel_id,
        message_id=request.message_id,
        message_flags=request.message_flags,
        session_id=session_id,
        nonce=nonce,
        custom_id=request.custom_id,
        component_type=request.component_type,
    )


async def echoed(job: Job, seconds: float = ECHO_SECONDS, *, since: str | None = None) -> bool:
    """Whether Discord took an interaction whose answer was lost: the gateway echoes its nonce at once.

    `since` is the job's interaction id before this one (a form's submit follows the press that opened it).
    """
    deadline = time.monotonic() + seconds
    while job.interaction_id in (None, since) and job.progress_message_id is None and job.in_flight:
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(0.05)
    return True


class Sender:
    """Sends jobs' interactions through their account's REST client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def _ready(self, account: Account) -> None:
        if not account.gateway.ready:
            try:
                await account.gateway.wait_ready(self.settings.gateway_ready_timeout)
            except (GatewayFatal, TimeoutError) as exc:
                raise AccountError(f"The Discord gateway of account {account.name!r} is down: {exc}") from None

    async def send(self, account: Account, job: Job) -> None:
        """Send the job's request on `account`; raises DiscordHTTPError or AccountError when it cannot go."""
        request = job.request
        assert request is not None
        name = request.name if isinstance(request, SlashCommand) else None
        command = await account.command(name) if name else None
        refreshed = False
        for attempt in range(3):
            await self._ready(account)
            try:
                body = interaction_body(request, account, job.nonce, command, self.settings.application_id)
                await account.rest.interaction(body, confirm=lambda: echoed(job))
                return
            except InvalidRequest as exc:
                if exc.stale_command and name and not refreshed:
                    # Midjourney updated its command: read the index afresh and retry once.
                    log.info("stale /%s version: refreshing the command index", name)
                    command = await account.command(name, refresh=True)
                    refreshed = True
                elif exc.invalid_session and attempt < 2:
                    log.info("interaction named a gateway session that just ended: retrying on the new one")
                    await anyio.sleep(0.5)
                else:
                    raise

    async def answer(
        self, account: Account, job: Job, modal: Modal, prompt: str, mask_png_b64: str | None, store: JobStore
    ) -> None:
        """Answer the form Midjourney opened for the job: a prompt (Remix, Custom Zoom, a describe pick), or for
        Vary (Region)'s editor the prompt and the mask, which go to Midjourney's web activity, not to Discord."""
        if modal.iframe:
            if not mask_png_b64:
                raise EngineError(
                    "Vary (Region) needs the region to change: pass region=[left, top, right, bottom] (fractions "
                    "0-1 of the image) or mask_path (a PNG whose white pixels mark the region)."
                )
            payload = mj.inpaint_payload(custom_id=modal.custom_id, mask_png_b64=mask_png_b64, prompt=prompt)
            try:
                await submit_region(account.rest.client, self.settings.inpaint_base, payload)
            except InpaintError as exc:
                raise EngineError(f"Midjourney's region editor refused the job: {exc}") from None
            return
        inputs = {modal.inputs[0][0]: prompt} if modal.inputs else {}
        nonce = make_snowflake()
        body = mj.modal_submit(
            application_id=self.settings.application_id,
            guild_id=account.guild_id,
            channel_id=account.channel_id,
            session_id=account.gateway.session_id or "",
            nonce=nonce,
            modal_interaction_id=modal.interaction_id,
            modal_custom_id=modal.custom_id,
            inputs=inputs,
        )
        store.index(job, nonce)  # the submit's echo and the job's messages carry this nonce
        since = job.interaction_id
        # A lost answer is resent only if the gateway never echoed this submit's nonce.
        await account.rest.interaction(body, confirm=lambda: echoed(job, since=since))
