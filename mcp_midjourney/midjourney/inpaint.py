"""Vary (Region): what Midjourney's region editor (its web activity, outside Discord's API) takes.

Pressing Vary (Region) opens an iframe modal; the mask and the prompt are then posted to the editor's own
service, not to Discord. Pure: the path and the body; the engine sends them (engine/inpaint.py).
"""

from __future__ import annotations

from typing import Any

# Where the editor takes a job, under its base URL (MJ_INPAINT_BASE).
SUBMIT_PATH = "/inpaint/api/submit-job"


def inpaint_submit_url(base: str) -> str:
    """The editor's submit-job URL under `base` (with or without a trailing slash)."""
    return f"{base.rstrip('/')}{SUBMIT_PATH}"


def inpaint_payload(*, custom_id: str, mask_png_b64: str, prompt: str) -> dict[str, Any]:
    """The editor's job body: the iframe modal's custom_id, the mask (a base64 PNG whose white pixels mark the
    region to change) and the prompt. The user fields are placeholders: the modal's custom_id names the job."""
    return {"customId": custom_id, "mask": mask_png_b64, "prompt": prompt, "userId": "0", "username": "0"}
