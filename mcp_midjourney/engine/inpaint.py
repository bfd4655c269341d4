"""Vary (Region)'s second step: the mask and prompt go to Midjourney's region editor over plain HTTP.

The editor is Midjourney's web activity, not Discord's API, so the call lives here rather than in discord/:
the body comes from midjourney/inpaint.py, the client is the account's (same transport and TLS settings).
"""

from __future__ import annotations

from typing import Any

import httpx2

from ..midjourney.inpaint import inpaint_submit_url


class InpaintError(Exception):
    """The region editor could not be reached or refused the job; the message says which."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, or None when the editor was never reached


async def submit_region(client: httpx2.AsyncClient, base: str, payload: dict[str, Any]) -> None:
    """POST a Vary (Region) job (`midjourney.inpaint_payload`) to the editor at `base`.

    Raises `InpaintError` on a network error or an HTTP status of 400 or more. The client sends no Discord
    token: the editor gets only the payload.
    """
    try:
        response = await client.post(inpaint_submit_url(base), json=payload)
    except httpx2.HTTPError as exc:
        raise InpaintError(f"cannot reach Midjourney's region editor at {base}: {type(exc).__name__}") from None
    if response.status_code >= 400:
        raise InpaintError(f"HTTP {response.status_code} from the region editor", response.status_code)
