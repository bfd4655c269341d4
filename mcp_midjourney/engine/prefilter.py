"""The engine's rule for gateway frames it would drop anyway, decided on the raw text before any parsing.

Most message dispatches of a busy channel are other users' jobs: the engine reads none of them. The gateway
hands each dispatch in Discord's compact layout to `FramePrefilter.skips` with its event name, and skips
parsing it when the answer is yes (it still records the frame's sequence number). The rule is the engine's:
the events it wants, its channel, the bots whose messages start jobs, and "a message that names someone and
never us is another user's job" unless it holds an id the engine follows (`keep`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeGuard

# How many followed ids are remembered (another user's job looked up by id, and its job uuid).
KEPT_IDS = 64


class FramePrefilter:
    """Whether a raw dispatch frame is one the engine would drop, for one account's channel."""

    def __init__(
        self,
        channel_id: str | None,
        *,
        authors: frozenset[str] = frozenset(),
        wanted_events: frozenset[str] | None = None,
        user_id: Callable[[], str | None] = lambda: None,
    ) -> None:
        """`user_id` gives the session's own user id (known after READY); `authors` empty means anyone's
        messages matter; `wanted_events` None means every event is wanted."""
        # Only an all-digit id (a snowflake) is looked for in the raw text: it has one spelling in JSON. Without
        # one, nothing is skipped.
        self._channel_needle = f'"channel_id":"{channel_id}"' if _is_snowflake(channel_id) else None
        # Only messages created by these users matter to the engine (empty: anyone's).
        self._authors = tuple(a for a in authors if _is_snowflake(a))
        self._wanted = wanted_events
        self._user_id = user_id
        self._kept: OrderedDict[str, None] = OrderedDict()  # ids whose frames are never skipped (see `keep`)

    def skips(self, event: str, raw: str) -> bool:
        """Whether the dispatch `event`, whose frame text is `raw`, is one the engine would drop: an event type
        it does not want; a message in another channel; a message created by none of `authors`; or a created or
        updated message that names someone (`<@`) and never contains our user id, unless it holds an id the
        engine asked to `keep`. A deleted message in our channel is always read."""
        needle = self._channel_needle
        if needle is None:
            return False
        if self._wanted is not None and event not in self._wanted:
            return True
        if not event.startswith("MESSAGE_"):
            return False
        if needle not in raw:  # certainly another channel
            return True
        if event == "MESSAGE_DELETE":
            return False
        by_anyone = event != "MESSAGE_CREATE" or not self._authors or any(a in raw for a in self._authors)
        return not by_anyone or self._names_someone_else(raw)

    def keep(self, *ids: str | None) -> None:
        """Never skip frames that contain these ids: messages the engine follows although they do not name our
        user (another user's job looked up by id, and its job uuid). The most recent `KEPT_IDS` are kept."""
        for value in ids:
            # Only ids long enough to be unique in a frame: a snowflake (15+ digits) or a job uuid.
            if value and value.isascii() and len(value) >= 15 and (value.isdigit() or "-" in value):
                self._kept[value] = None
                self._kept.move_to_end(value)
        while len(self._kept) > KEPT_IDS:
            self._kept.popitem(last=False)

    def _names_someone_else(self, raw: str) -> bool:
        """A message naming a user (`<@`) whose text never contains our user id, nor an id the engine follows."""
        if "<@" not in raw:
            return False
        me = self._user_id()
        if not _is_snowflake(me) or me in raw:
            return False
        return not (self._kept and any(kept in raw for kept in self._kept))


def _is_snowflake(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.isascii() and value.isdigit()
