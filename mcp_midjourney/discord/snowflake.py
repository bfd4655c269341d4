"""Discord snowflakes: the ids and the nonces a client makes."""

from __future__ import annotations

import itertools
import os
import threading
import time

DISCORD_EPOCH_MS = 1_420_070_400_000  # 2015-01-01T00:00:00Z

_counter = itertools.count(int.from_bytes(os.urandom(2), "big"))
_lock = threading.Lock()


def make_snowflake(now_ms: int | None = None) -> str:
    """A new snowflake as a string: ``(ms since 2015-01-01) << 22`` plus a 22-bit counter.

    Unique within the process (the counter wraps only after 4 million ids in one millisecond), which is all
    a nonce needs: Discord echoes it back so we can tell our requests' results from everyone else's.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        low = next(_counter) & 0x3FFFFF
    return str(((ms - DISCORD_EPOCH_MS) << 22) | low)


def snowflake_time_ms(snowflake: str | int) -> int:
    """When a snowflake was made, in Unix milliseconds."""
    return (int(snowflake) >> 22) + DISCORD_EPOCH_MS
