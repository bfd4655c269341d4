"""One job per prompt, whatever the client's timeout: telling a retry from a new request, and learning how long
a client waits.

Agent frameworks time a tool call out (openai-agents and google-adk after 5 s) and tell the model to try again;
the model calls `imagine` again with the same arguments. A new job each time would be paid each time. The rule:

- A call is *abandoned* when its caller gave up on it: the client cancelled it (`notifications/cancelled`, sent by
  the mcp 2.x client when its timeout ends), or, for a client that never cancels (1.x clients), an identical call
  from the same client arrived at least `AT_ONCE` seconds after it began while it was still waiting (a client
  waits on a call, it does not send the same one again), or its wait outlasted the client's known limit.
- A new call with the same tool and the same normalised arguments as an abandoned one takes that call's job, once
  (each abandoned call hands its job on to one successor), while the job runs or up to `KEEP_FINISHED` seconds
  after it completed. A failed job is never handed on: trying again is then what the model should do.
- Identical calls that are all still waited on (sent at once, on purpose) each get their own job.

What a client's abandoned calls show is remembered as its *limit*: a cancel at t seconds (t >= `MIN_LIMIT`) says
the client waits t seconds; a retry from a client that never cancels says it waits at most the time between the
two calls, taken as no more than `NO_CANCEL_LIMIT`. Every later wait of that client ends before the limit (`cap`),
answering `in_progress` with the message_id instead of timing out.

Calls are matched server-wide (the server drives one person's Midjourney accounts); the limit is per client
(`client_of`).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass, field

import anyio

from ..engine.store import Job
from ..models import JobStatus

AT_ONCE = 4.0  # identical calls begun within this many seconds of each other are separate requests (a busy
# server may read two calls sent at once seconds apart; a retry after a 5 s timeout comes later than this)
KEEP_FINISHED = 300.0  # an abandoned call's completed job is handed on for this long after it finished
NO_CANCEL_LIMIT = 5.0  # a client that gave up without a cancel is assumed to wait at most this long
MIN_LIMIT = 3.0  # no client times out sooner: a cancel within this long teaches nothing
FORGET_AFTER = 900.0  # calls older than this are forgotten
RECENT_JOBS = 10
SESSIONS_KEPT = 256


@dataclass
class Call:
    """One tool call, from its start to its end; `job` once it has one."""

    tool: str
    key: Hashable
    session: Hashable  # the client it came from (`client_of`)
    started: float
    job: Job | None = None
    inherited: bool = False  # its job came from an abandoned identical call
    ended: float | None = None
    cancelled: bool = False
    handed_on: bool = False


@dataclass
class _Session:
    limit: float | None = None  # seconds this client is known to wait, at most
    cancels: bool = False  # it has sent notifications/cancelled


@dataclass
class Calls:
    """The tool calls of the last minutes, by tool and arguments, and what each session's client waits."""

    clock: Callable[[], float] = time.monotonic
    _calls: list[Call] = field(default_factory=list)
    _sessions: OrderedDict[Hashable, _Session] = field(default_factory=OrderedDict)  # by client, the latest kept
    _recent: OrderedDict[int, Job] = field(default_factory=OrderedDict)

    def begin(self, session: Hashable, tool: str, key: Hashable) -> Call:
        """A call starts: its `job` is the job of an abandoned identical call, if one may be handed on."""
        now = self.clock()
        self._calls = [c for c in self._calls if c.ended is None or now - c.started < FORGET_AFTER]
        info = self._session(session)
        call = Call(tool, (tool, key), session, now)
        for earlier in self._calls:
            if earlier.key != call.key or earlier.handed_on or earlier.job is None:
                continue
            if self._abandoned(earlier, call, info, now) and _reusable(earlier.job, now):
                earlier.handed_on = True
                call.job, call.inherited = earlier.job, True
                break
        self._calls.append(call)
        return call

    @contextlib.asynccontextmanager
    async def track(self, session: Hashable, tool: str, key: Hashable) -> AsyncIterator[Call]:
        """`begin` and `end` around a tool call's body; a cancel from the client counts as one."""
        call = self.begin(session, tool, key)
        cancelled = False
        try:
            yield call
        except anyio.get_cancelled_exc_class():
            cancelled = True  # the client gave up (notifications/cancelled), or the server stops
            raise
        finally:
            self.end(call, cancelled=cancelled)

    def started(self, call: Call, job: Job) -> None:
        """The call has its job (new, or the one it inherited)."""
        call.job = job
        self._recent[id(job)] = job
        self._recent.move_to_end(id(job))
        while len(self._recent) > RECENT_JOBS:
            self._recent.popitem(last=False)

    def end(self, call: Call, *, cancelled: bool) -> None:
        """The call returned (or was cancelled by its client)."""
        call.ended = self.clock()
        if cancelled:
            call.cancelled = True
            info = self._sessions.get(call.session)
            elapsed = call.ended - call.started
            if info is not None and elapsed >= MIN_LIMIT:  # quicker is a person pressing stop, not a timeout
                info.cancels = True
                info.limit = elapsed  # the latest: a client's timeout may change (a person's stop is not one)

    def cap(self, session: Hashable, seconds: float, call: Call | None = None) -> float:
        """`seconds` shortened so the wait (and `call`, counted from its start) ends before the client gives up."""
        limit = self._session(session).limit
        if limit is None:
            return seconds
        spent = self.clock() - call.started if call is not None else 0.0
        return max(0.0, min(seconds, limit - 1.0 - spent, limit * 0.8 - spent))

    def recent(self) -> list[Job]:
        """The jobs tool calls started or followed lately, newest first."""
        return list(reversed(self._recent.values()))

    def _session(self, session: Hashable) -> _Session:
        info = self._sessions.get(session)
        if info is None:
            info = self._sessions[session] = _Session()
            while len(self._sessions) > SESSIONS_KEPT:
                self._sessions.popitem(last=False)
        return info

    def _abandoned(self, earlier: Call, new: Call, info: _Session, now: float) -> bool:
        if earlier.cancelled:
            return True
        earlier_info = self._sessions.get(earlier.session)
        if earlier.ended is not None:
            if earlier_info is None or earlier_info.cancels or earlier_info.limit is None:
                return False  # answered: a client that cancels would have cancelled a call it gave up on
            return earlier.ended - earlier.started >= earlier_info.limit
        if earlier.session != new.session or info.cancels or now - earlier.started < AT_ONCE:
            return False  # still waited on: a client that cancels would have cancelled it
        info.limit = min(info.limit or float("inf"), NO_CANCEL_LIMIT, now - earlier.started)
        return True


def client_of(headers: Mapping[str, str] | None) -> str:
    """Which client a call comes from: its HTTP session (the Mcp-Session-Id header), else the one client a stdio
    server has. The SDK makes a session object per request, and a stateless client has nothing else to tell it
    by: stateless HTTP clients count as one (the server drives one person's accounts)."""
    return (headers or {}).get("mcp-session-id") or "the client"


def _reusable(job: Job, now: float) -> bool:
    if job.status is JobStatus.FAILED:
        return False
    if job.status is not JobStatus.COMPLETED:
        return True
    return now - (job.finished_at or job.updated) < KEEP_FINISHED
