"""The result view's media hosts: what its Content-Security-Policy names, from the settings."""

from __future__ import annotations

from pydantic import SecretStr

from mcp_midjourney.config import Settings
from mcp_midjourney.server.view import media_origins, view_html


def settings(**given: str) -> Settings:
    return Settings(token=SecretStr("made-up-token-abcdef"), guild_id=None, channel_id="100000000000000002", **given)


def test_against_discord_the_view_loads_from_discords_and_midjourneys_cdns_only() -> None:
    expected = ["https://cdn.discordapp.com", "https://media.discordapp.net", "https://cdn.midjourney.com"]
    assert media_origins(settings()) == expected
    assert media_origins(None) == expected  # a configuration that does not load: the defaults


def test_a_stand_in_discord_and_cdn_are_named_by_their_origins() -> None:
    origins = media_origins(settings(api_base="http://127.0.0.1:8765/api/v9", cdn_base="http://127.0.0.1:8765/mjcdn"))
    assert origins == ["https://cdn.discordapp.com", "https://media.discordapp.net", "http://127.0.0.1:8765"]


def test_the_policy_in_the_page_names_those_origins_for_images_and_media() -> None:
    html = view_html(["https://cdn.discordapp.com", "http://127.0.0.1:8765"])
    assert "img-src https://cdn.discordapp.com http://127.0.0.1:8765 data:;" in html
    assert 'media-src https://cdn.discordapp.com http://127.0.0.1:8765"' in html
    assert "{{" not in html
