"""A clock for code that takes `clock` and `sleep`: time passes only when someone sleeps, at once.

Tests then assert what was waited (`sleeps`) and when each request went (`now`), never how long the machine
took, so a busy machine cannot make them flake.
"""

from __future__ import annotations

import anyio.lowlevel


class VirtualClock:
    """Monotonic seconds that advance by exactly what is slept; every sleep is recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()  # still a checkpoint, as a real sleep is
