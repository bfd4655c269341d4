"""Vary (Region)'s submit to Midjourney's region editor: the body (pure) and the POST with its errors."""

from __future__ import annotations

import json

import httpx2
import pytest

from mcp_midjourney.engine.inpaint import InpaintError, submit_region
from mcp_midjourney.midjourney import inpaint_payload, inpaint_submit_url

pytestmark = pytest.mark.anyio
CUSTOM_ID = "MJ::iframe::U3NjYWxlZC1jdXN0b20taWQ"  # made-up iframe modal id
BASE = "https://editor.test"


def test_the_payload_carries_the_modal_the_mask_and_the_prompt() -> None:
    payload = inpaint_payload(custom_id=CUSTOM_ID, mask_png_b64="iVBORw0KGgo=", prompt="a red door")
    assert payload == {
        "customId": CUSTOM_ID,
        "mask": "iVBORw0KGgo=",
        "prompt": "a red door",
        "userId": "0",
        "username": "0",
    }


@pytest.mark.parametrize("base", [BASE, BASE + "/"])
def test_the_submit_url_is_under_the_base(base: str) -> None:
    assert inpaint_submit_url(base) == "https://editor.test/inpaint/api/submit-job"


async def test_a_job_is_posted_as_json_without_any_authorization() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"ok": True})

    payload = inpaint_payload(custom_id=CUSTOM_ID, mask_png_b64="iVBORw0KGgo=", prompt="a red door")
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        await submit_region(client, BASE + "/", payload)
    [request] = seen
    assert request.method == "POST" and str(request.url) == "https://editor.test/inpaint/api/submit-job"
    assert json.loads(request.content) == payload and "authorization" not in request.headers


@pytest.mark.parametrize("status", [400, 403, 500])
async def test_a_refusal_is_an_inpaint_error_with_its_status(status: int) -> None:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(lambda r: httpx2.Response(status))) as client:
        with pytest.raises(InpaintError) as info:
            await submit_region(client, BASE, {})
    assert str(info.value) == f"HTTP {status} from the region editor" and info.value.status == status


async def test_an_unreachable_editor_is_an_inpaint_error_naming_it() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(refuse)) as client:
        with pytest.raises(InpaintError) as info:
            await submit_region(client, BASE, {})
    assert str(info.value) == f"cannot reach Midjourney's region editor at {BASE}: ConnectError"
    assert info.value.status is None
