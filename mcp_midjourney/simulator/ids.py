"""Identifiers that look like Discord's and Midjourney's: snowflakes, timestamps, session ids, short links."""

from __future__ import annotations

import secrets
import string
import time
import uuid
from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000  # 2015-01-01T00:00:00Z

_SHORT_ALPHABET = string.ascii_letters + string.digits + "-_"


class Snowflakes:
    """Mints unique, time-ordered snowflakes: `(ms since 2015) << 22 | worker | process | increment`.

    Discord's ids sort by creation time; clients rely on that (`before`/`after` paging, "newest
    first"), so ids minted in one millisecond must still strictly increase.
    """

    def __init__(self, worker: int = 1, process: int = 0) -> None:
        self._low_bits = ((worker & 0x1F) << 17) | ((process & 0x1F) << 12)
        self._increment = 0
        self._last = 0

    def next_int(self, at_ms: int | None = None) -> int:
        """The next snowflake as an integer (at `at_ms`, default now)."""
        ms = int(time.time() * 1000) if at_ms is None else at_ms
        self._increment = (self._increment + 1) & 0xFFF
        value = ((ms - DISCORD_EPOCH_MS) << 22) | self._low_bits | self._increment
        # Two ids in the same millisecond after the 12-bit increment wrapped: keep strict order.
        value = max(value, self._last + 1)
        self._last = value
        return value

    def next(self) -> str:
        """The next snowflake, as Discord writes ids on the wire: a decimal string."""
        return str(self.next_int())


def snowflake_ms(snowflake: str | int) -> int:
    """Unix milliseconds at which a snowflake was minted."""
    return (int(snowflake) >> 22) + DISCORD_EPOCH_MS


def iso_timestamp(ms: int | None = None) -> str:
    """A Discord timestamp: `2023-03-10T16:29:47.602000+00:00`."""
    at = datetime.fromtimestamp((time.time() * 1000 if ms is None else ms) / 1000, tz=UTC)
    return at.isoformat(timespec="microseconds")


def now_ms() -> int:
    """Wall-clock milliseconds (what snowflakes and timestamps are made of)."""
    return int(time.time() * 1000)


def session_id() -> str:
    """A gateway session id: 32 hex characters, like Discord's."""
    return secrets.token_hex(16)


def job_uuid() -> str:
    """A Midjourney job id."""
    return str(uuid.uuid4())


def short_code(length: int = 11) -> str:
    """The random part of an `s.mj.run` short link (`<https://s.mj.run/Xg2Gq1TXMgc>`)."""
    return "".join(secrets.choice(_SHORT_ALPHABET) for _ in range(length))


def cdn_signature() -> str:
    """The `?ex=…&is=…&hm=…&` query of a signed Discord CDN URL (expiry about 24 h ahead)."""
    issued = int(time.time())
    return f"?ex={issued + 86_400:08x}&is={issued:08x}&hm={secrets.token_hex(32)}&"
