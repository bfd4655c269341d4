"""Fault injection: what goes wrong on the real Discord and with the real bot, on demand, per test.

Every fault is off until a test arms it through the simulator's controls, and most are counted (the next N
requests, the next N jobs) so a test knows exactly what it caused. `log` records when each fault fired
(monotonic seconds, the same clock as the test's), so a test can measure how fast a client reacted.

- REST: 429s of every scope (user bucket, global, shared, a Cloudflare HTML page), 5xx bursts, and connections
  dropped before or after the request was handled.
- Gateway: frames duplicated, reordered (held back behind the next one), malformed frames mixed in, and
  connections frozen (a zombie: the socket stays open but nothing more comes, heartbeats included).
- Bot: any error or notice embed as the answer to a prompt (at once, or after the job started), jobs that stall,
  and another user's job with the same prompt beside each of ours.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

CLOUDFLARE_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Access denied | discord.com used Cloudflare to restrict access</title>"
    "</head><body><h1>Error 1015</h1><h2>You are being rate limited</h2><p>The owner of this website "
    "(discord.com) has banned you temporarily from accessing this website.</p></body></html>"
)
BAD_GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"

# Frames a broken proxy, a bug on Discord's side or a truncated read could hand a client.
GARBAGE_FRAMES: tuple[str, ...] = (
    "this is not json",
    '{"op": 0, "t": "MESSAGE_CREATE", "s": null, "d": ',
    "[1, 2, 3]",
    "null",
    '"a string"',
    '{"op": "zero"}',
    '{"op": 0, "t": "MESSAGE_CREATE", "s": null, "d": null}',
    '{"op": 0, "t": "MESSAGE_CREATE", "s": null, "d": []}',
    '{"op": 0, "t": null, "s": null, "d": {}}',
    '{"op": 0, "t": "MESSAGE_CREATE", "s": null, "d": {"content": "**x** - <@1> (fast)"}}',
    '{"op": 0, "t": "MESSAGE_UPDATE", "s": null, "d": {"id": 5, "channel_id": [], "author": "nobody"}}',
    '{"op": 0, "t": "MESSAGE_CREATE", "s": null, "d": {"id": "1", "channel_id": "1", "author": {"id": null},'
    ' "embeds": "nope", "attachments": {"a": 1}, "components": [null, 3]}}',
    '{"op": 0, "t": "INTERACTION_SUCCESS", "s": null, "d": {"nonce": 12, "id": {}}}',
    '{"op": 0, "t": "INTERACTION_FAILURE", "s": null, "d": {"nonce": null}}',
    '{"op": 0, "t": "SOMETHING_NEW", "s": null, "d": {"id": "1"}}',
    '{"op": 99, "d": {"what": "an opcode nobody knows"}}',
    '{"op": 11, "d": "unexpected"}',
)


@dataclass
class RestFault:
    """The next `count` API requests matching `route` get this answer instead of the real one."""

    status: int  # 429, 5xx; 0 = the TCP connection drops with no answer
    count: int = 1
    route: str | None = None  # a substring of "METHOD /path" (e.g. "POST /interactions"); None = any API call
    retry_after: float = 0.2
    scope: str = "user"  # for 429s: user | shared | global | cloudflare (an HTML page, no JSON)
    handled: bool = False  # for status 0: handle the request first, then drop (the client cannot know which)

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        return self.route is None or self.route in f"{method} {path}"


@dataclass
class EmbedAnswer:
    """The bot answers a prompt with this embed (Midjourney's error and notice embeds, protocol.md §6)."""

    title: str
    description: str
    color: int = 16711680
    prompt: str | None = None  # only prompts containing this text; None = the next prompt
    after_start: bool = False  # the job starts and runs a while first ("refused after start")
    count: int = 1


@dataclass
class Faults:
    """Every armed fault. Lives on the simulator's loop, like the rest of its world."""

    rest: list[RestFault] = field(default_factory=list)
    answers: list[EmbedAnswer] = field(default_factory=list)
    duplicate: float = 0.0  # chance that a dispatch is sent twice
    reorder: float = 0.0  # chance that a dispatch is held back and sent after the next one
    garbage: float = 0.0  # chance that a malformed frame goes out before a dispatch
    stall_jobs: int = 0  # the next N jobs stop after `stall_after` progress updates (until released)
    stall_after: int = 1
    mirror_prompts: bool = False  # each job of ours is shadowed by another user's job with the same prompt
    seed: int = 7
    log: list[tuple[float, str, str]] = field(default_factory=list)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    def clear(self) -> None:
        """Disarm every fault (the log is kept)."""
        self.rest.clear()
        self.answers.clear()
        self.duplicate = self.reorder = self.garbage = 0.0
        self.stall_jobs = 0
        self.mirror_prompts = False

    def note(self, kind: str, detail: str = "") -> None:
        """Record that a fault fired, with the time (monotonic)."""
        self.log.append((time.monotonic(), kind, detail))
        del self.log[:-10_000]

    def chance(self, probability: float) -> bool:
        """A seeded coin: the same faults fire in the same places run after run."""
        return probability > 0 and self._random.random() < probability

    def pick(self, choices: int) -> int:
        """A seeded index in range(choices)."""
        return self._random.randrange(choices)

    # -- REST --------------------------------------------------------------------------------------

    def take_rest(self, method: str, path: str) -> RestFault | None:
        """The fault the next request to this route must get, if one is armed (it is counted down)."""
        for fault in self.rest:
            if fault.count > 0 and fault.matches(method, path):
                fault.count -= 1
                if fault.count == 0:
                    self.rest.remove(fault)
                self.note(f"rest {fault.status or 'drop'}", f"{method} {path}")
                return fault
        return None

    # -- the bot -----------------------------------------------------------------------------------

    def take_answer(self, prompt: str) -> EmbedAnswer | None:
        """The embed this prompt must be answered with, if one is armed for it."""
        for answer in self.answers:
            if answer.count > 0 and (answer.prompt is None or answer.prompt in prompt):
                answer.count -= 1
                if answer.count == 0:
                    self.answers.remove(answer)
                return answer
        return None

    def take_stall(self) -> int | None:
        """For a job starting now: after how many progress updates it stalls, or None."""
        if self.stall_jobs <= 0:
            return None
        self.stall_jobs -= 1
        return self.stall_after


def rest_fault_response(fault: RestFault) -> tuple[int, str | bytes, dict[str, str]]:
    """Status, body and headers of the answer a REST fault gives (status 0 is handled by the caller)."""
    wait = max(0.0, fault.retry_after)
    headers: dict[str, str] = {}
    if fault.status == 429 and fault.scope == "cloudflare":
        headers = {
            "Content-Type": "text/html; charset=UTF-8",
            "Retry-After": str(math.ceil(wait)),
            "Server": "cloudflare",
        }
        return 429, CLOUDFLARE_PAGE, headers
    if fault.status == 429:
        is_global = fault.scope == "global"
        body: JSON = {"message": "You are being rate limited.", "retry_after": round(wait, 3), "global": is_global}
        headers = {
            "Content-Type": "application/json",
            "Retry-After": str(math.ceil(wait)),
            "X-RateLimit-Scope": fault.scope,
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + wait:.3f}",
                    "X-RateLimit-Reset-After": f"{wait:.3f}",
                    "X-RateLimit-Bucket": "f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5",
                }
            )
        return 429, json.dumps(body), headers
    if fault.status == 502:
        return 502, BAD_GATEWAY_PAGE, {"Content-Type": "text/html", "Server": "cloudflare"}
    body = {"message": f"{fault.status}: Internal Server Error", "code": 0}
    return fault.status, json.dumps(body), {"Content-Type": "application/json"}
