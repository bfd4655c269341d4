"""Finding 7: ids are ASCII digits. `\\d` takes any script's digits (full-width ones, Arabic-Indic ones...), and
those went to Discord as message ids; the settings' ids are held to the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_midjourney.config import ConfigError, load_settings
from tests.e2e.conftest import spawn, text

pytestmark = pytest.mark.anyio

FULL_WIDTH = "１０８３７８８８０７８００８９７５９７"  # 1083788807800897597 in full-width digits
ARABIC_INDIC = "١٠٨٣٧٨٨٨٠٧٨٠٠٨٩٧٥٩٧"


async def test_message_ids_in_other_scripts_are_refused_before_discord(sim, server_log: Path) -> None:
    async with spawn(sim, server_log) as client:
        for message_id in (FULL_WIDTH, ARABIC_INDIC):
            for tool, args in (("get_message", {}), ("press_button", {"button": "U1"})):
                result = await client.call_tool(tool, {"message_id": message_id, **args})
                assert result.is_error and "is not a Discord message id" in text(result), text(result)


def test_setting_ids_in_other_scripts_are_refused() -> None:
    base = {"MJ_DISCORD_TOKEN": "made-up-token.for-tests.0123456789", "MJ_CHANNEL_ID": "1083788807800897597"}
    load_settings(base)
    for name in ("MJ_CHANNEL_ID", "MJ_GUILD_ID", "MJ_APPLICATION_ID"):
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, name: FULL_WIDTH})
    account = {"name": "a", "token": "made-up-token.for-tests.0123456789", "channel_id": FULL_WIDTH}
    pool = json.dumps([account])
    with pytest.raises(ConfigError):
        load_settings({"MJ_ACCOUNTS": pool})
