"""The gateway's pre-filter: message dispatches the engine would drop (another channel; a bot message naming
someone and never us) are skipped before `json.loads`, only in Discord's compact layout, with the sequence
number and the event count kept as if parsed; everything else is parsed in full. The property test checks
that, over frames built from the real captures, the engine ends in the same state with the filter as without.
"""

from __future__ import annotations

import copy
import json
import re
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

import mcp_midjourney.discord.gateway as gateway_module
from mcp_midjourney.config import Settings
from mcp_midjourney.discord.gateway import Gateway
from mcp_midjourney.engine.engine import BOT_IDS, WANTED_EVENTS, Engine
from mcp_midjourney.engine.store import Job
from mcp_midjourney.midjourney import normalise_prompt
from mcp_midjourney.models import MIDJOURNEY_BOT_ID, NIJI_BOT_ID
from tests.conftest import load_fixture

# Made-up ids.
ME = "555000000000000001"
OTHER = "555000000000000002"
THIRD = "555000000000000003"
CHANNEL = "555000000000000100"
OTHER_CHANNEL = "555000000000000101"
TOKEN = "made-up-token-frame-filter"
BOT = {"id": MIDJOURNEY_BOT_ID, "username": "Midjourney Bot", "bot": True}

Calls = list[tuple[str, dict[str, Any]]]


def make_gateway(*, user_id: str | None = ME, channel_id: str | None = CHANNEL, **kwargs: Any) -> tuple[Gateway, Calls]:
    calls: Calls = []
    gateway = Gateway(
        None,  # type: ignore[arg-type]  # no connection is made: frames are handed over directly
        SecretStr(TOKEN),
        on_dispatch=lambda event, data: calls.append((event, data)),
        wanted_events=WANTED_EVENTS,
        channel_id=channel_id,
        **kwargs,
    )
    gateway.user_id = user_id
    return gateway, calls


def frame(event: str, data: dict[str, Any], seq: int = 7, layout: str = "compact") -> str:
    """A dispatch as text: Discord's compact t,s,op,d layout, or another key order, or with spaces."""
    if layout == "compact":
        return json.dumps({"t": event, "s": seq, "op": 0, "d": data}, separators=(",", ":"), ensure_ascii=False)
    if layout == "reordered":
        return json.dumps({"op": 0, "t": event, "s": seq, "d": data}, separators=(",", ":"), ensure_ascii=False)
    assert layout == "spaced"
    return json.dumps({"t": event, "s": seq, "op": 0, "d": data})


def message(content: str, *, channel: str = CHANNEL, **extra: Any) -> dict[str, Any]:
    return {
        "id": "555000000000009001",
        "channel_id": channel,
        "guild_id": "555000000000000200",
        "author": BOT,
        "content": content,
        "attachments": [],
        "components": [],
        **extra,
    }


@pytest.fixture
def loads_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the gateway module hands to `json.loads`."""
    seen: list[str] = []
    real = json.loads

    def counting(text: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(gateway_module, "json", SimpleNamespace(loads=counting, dumps=json.dumps))
    return seen


# --- skipped ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"])
def test_a_message_in_another_channel_is_skipped_unparsed(event: str, loads_calls: list[str]) -> None:
    gateway, calls = make_gateway()
    data = message(f"**a cat** - <@{ME}> (fast)", channel=OTHER_CHANNEL)
    gateway.handle_frame(frame(event, data, seq=12))
    assert calls == [] and loads_calls == []
    assert gateway.frames_skipped == 1 and gateway.events_received == 1 and gateway.seq == 12


@pytest.mark.parametrize("event", ["MESSAGE_CREATE", "MESSAGE_UPDATE"])
@pytest.mark.parametrize("mention", [f"<@{OTHER}>", f"<@!{OTHER}>"])
def test_another_users_bot_message_in_our_channel_is_skipped_unparsed(
    event: str, mention: str, loads_calls: list[str]
) -> None:
    gateway, calls = make_gateway()
    data = message(f"**a dog** - {mention} (42%) (fast)", mentions=[{"id": OTHER}])
    gateway.handle_frame(frame(event, data, seq=3))
    assert calls == [] and loads_calls == []
    assert gateway.frames_skipped == 1 and gateway.events_received == 1 and gateway.seq == 3


# --- parsed ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(message(f"**a cat** - <@{ME}> (fast)"), id="mentions us"),
        pytest.param(message(f"**a cat** - <@!{ME}> (fast)"), id="mentions us with !"),
        pytest.param(message("**a cat** (fast)"), id="no mention at all"),
        pytest.param(
            message(
                f"**portrait of <@{OTHER}>** (fast)",
                interaction_metadata={"id": "555000000000009002", "type": 2, "user": {"id": ME}},
            ),
            id="names another, our id only in interaction_metadata",
        ),
        pytest.param(
            {k: v for k, v in message(f"**a cat** - <@{ME}> (50%) (fast)").items() if k != "author"},
            id="partial update naming us",
        ),
    ],
)
@pytest.mark.parametrize("event", ["MESSAGE_CREATE", "MESSAGE_UPDATE"])
def test_our_messages_are_parsed_and_dispatched(event: str, data: dict[str, Any], loads_calls: list[str]) -> None:
    gateway, calls = make_gateway()
    gateway.handle_frame(frame(event, data))
    assert calls == [(event, data)]
    assert len(loads_calls) == 1 and gateway.frames_skipped == 0 and gateway.events_received == 1


@pytest.mark.parametrize("extra", [{}, {"note": f"<@{OTHER}>"}], ids=["as Discord sends it", "naming someone"])
def test_a_delete_in_our_channel_is_parsed_and_dispatched(extra: dict[str, Any]) -> None:
    gateway, calls = make_gateway()
    data = {"id": "555000000000009001", "channel_id": CHANNEL, "guild_id": "555000000000000200", **extra}
    gateway.handle_frame(frame("MESSAGE_DELETE", data))
    assert calls == [("MESSAGE_DELETE", data)] and gateway.frames_skipped == 0


@pytest.mark.parametrize("layout", ["reordered", "spaced"])
@pytest.mark.parametrize(
    "data",
    [message("**a cat** - <@555000000000000002> (fast)"), message("**a cat** (fast)", channel=OTHER_CHANNEL)],
    ids=["another user's", "another channel"],
)
def test_any_other_layout_is_parsed_in_full(layout: str, data: dict[str, Any], loads_calls: list[str]) -> None:
    gateway, calls = make_gateway()
    gateway.handle_frame(frame("MESSAGE_CREATE", data, seq=9, layout=layout))
    assert calls == [("MESSAGE_CREATE", data)] and len(loads_calls) == 1
    assert gateway.frames_skipped == 0 and gateway.seq == 9


@pytest.mark.parametrize(
    "raw",
    [
        # Not the prefix the filter knows (or an event it passes): a leading space, a sequence JSON would reject.
        frame("INTERACTION_SUCCESS", {"id": "1", "nonce": "2", "channel_id": OTHER_CHANNEL}),
        " " + frame("MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL)),
        frame("MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL)).replace('"s":7', '"s":07'),
        frame("MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL)).replace('"op":0', '"op":0.0'),
    ],
    ids=["interaction", "leading space", "leading zero", "op as float"],
)
def test_frames_outside_the_known_prefix_are_never_skipped(raw: str, loads_calls: list[str]) -> None:
    gateway, _ = make_gateway()
    gateway.handle_frame(raw)
    assert gateway.frames_skipped == 0 and loads_calls == [raw]


def test_events_nobody_wants_are_skipped_unparsed(loads_calls: list[str]) -> None:
    gateway, calls = make_gateway()
    for event in ("MESSAGE_REACTION_ADD", "PRESENCE_UPDATE", "TYPING_START", "MESSAGE_ACK"):
        gateway.handle_frame(frame(event, {"channel_id": CHANNEL, "user_id": OTHER}))
    assert gateway.frames_skipped == 4 and gateway.events_received == 4 and loads_calls == [] and calls == []
    ready = frame("READY", {"session_id": "s", "user": {"id": ME}}, seq=1)
    gateway.handle_frame(ready)
    assert loads_calls == [ready] and gateway.session_id == "s"  # READY and RESUMED are always read


def test_a_person_chatting_in_our_channel_is_skipped_but_not_a_reply_to_the_bot(loads_calls: list[str]) -> None:
    gateway, calls = make_gateway(authors=frozenset({MIDJOURNEY_BOT_ID}))
    person = {"id": THIRD, "username": "someone"}
    gateway.handle_frame(frame("MESSAGE_CREATE", message("what a nice grid", author=person)))
    assert gateway.frames_skipped == 1 and calls == []
    reply = message("nice", author=person, referenced_message=message("**glass** - Image #1"))
    edited = message("what a nice grid (edited)", author=person)
    for raw in (frame("MESSAGE_CREATE", reply), frame("MESSAGE_UPDATE", edited)):
        gateway.handle_frame(raw)
    # The reply carries the bot's id (the engine drops it by author); an update may be partial: both are read.
    assert gateway.frames_skipped == 1 and [event for event, _ in calls] == ["MESSAGE_CREATE", "MESSAGE_UPDATE"]
    bot_without_mention = message("**a prompt** - Image #2")
    gateway.handle_frame(frame("MESSAGE_CREATE", bot_without_mention))
    assert gateway.frames_skipped == 1 and len(calls) == 3


def test_seq_advances_for_skipped_frames_and_never_moves_back() -> None:
    gateway, calls = make_gateway()
    elsewhere = message("**a cat** (fast)", channel=OTHER_CHANNEL)
    gateway.handle_frame(frame("MESSAGE_CREATE", elsewhere, seq=5))
    assert gateway.seq == 5
    gateway.handle_frame(frame("MESSAGE_UPDATE", elsewhere, seq=3))  # late: must not move it back
    assert gateway.seq == 5
    gateway.handle_frame(frame("MESSAGE_CREATE", message("**a cat** (fast)"), seq=8))  # parsed
    assert gateway.seq == 8
    gateway.handle_frame(frame("MESSAGE_DELETE", elsewhere, seq=120))
    assert gateway.seq == 120
    assert gateway.frames_skipped == 3 and gateway.events_received == 4 and len(calls) == 1


def test_ready_after_skipped_frames_starts_the_sequence_anew() -> None:
    gateway, _ = make_gateway()
    gateway.handle_frame(frame("MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL), seq=40))
    gateway.handle_frame(frame("READY", {"session_id": "s", "user": {"id": ME}}, seq=1))
    assert gateway.seq == 1 and gateway.user_id == ME


def test_without_a_user_id_the_mention_rule_skips_nothing() -> None:
    gateway, calls = make_gateway(user_id=None)
    theirs = message(f"**a dog** - <@{OTHER}> (fast)")
    gateway.handle_frame(frame("MESSAGE_CREATE", theirs))
    assert calls == [("MESSAGE_CREATE", theirs)] and gateway.frames_skipped == 0
    # The channel rule does not need it.
    gateway.handle_frame(frame("MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL)))
    assert gateway.frames_skipped == 1 and len(calls) == 1


@pytest.mark.parametrize("channel_id", [None, "", "12 34", "١٢٣"])
def test_without_a_usable_channel_id_nothing_is_skipped(channel_id: str | None) -> None:
    gateway, calls = make_gateway(channel_id=channel_id)
    for data in (message("x", channel=OTHER_CHANNEL), message(f"**a dog** - <@{OTHER}> (fast)")):
        gateway.handle_frame(frame("MESSAGE_CREATE", data))
    assert len(calls) == 2 and gateway.frames_skipped == 0


def test_the_prefilter_can_be_switched_off() -> None:
    gateway, calls = make_gateway(prefilter=False)
    for data in (message("x", channel=OTHER_CHANNEL), message(f"**a dog** - <@{OTHER}> (fast)")):
        gateway.handle_frame(frame("MESSAGE_CREATE", data))
    assert len(calls) == 2 and gateway.frames_skipped == 0


def test_handle_frame_returns_the_ops_the_read_loop_must_answer() -> None:
    gateway, _ = make_gateway()
    gateway._acked[0] = False
    assert gateway.handle_frame('{"op":11}') is None
    assert gateway._acked[0] is True and gateway.last_ack is not None
    for op in (1, 7, 9):
        assert gateway.handle_frame(json.dumps({"op": op, "d": None})) == {"op": op, "d": None}
    assert gateway.handle_frame('{"op":10,"d":{}}') is None
    assert gateway.handle_frame("not json") is None and gateway.malformed_frames == 1


def our_engine() -> Engine:
    """An engine with one account on CHANNEL whose gateway knows our user id (as READY would have set it)."""
    engine = Engine(Settings(token=SecretStr(TOKEN), guild_id=None, channel_id=CHANNEL))
    engine.accounts[0].gateway.user_id = ME
    return engine


def test_an_accounts_gateway_knows_its_channel() -> None:
    gateway = our_engine().accounts[0].gateway
    gateway.handle_frame(frame("MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL)))
    assert gateway.frames_skipped == 1


def test_another_users_message_the_engine_follows_is_never_skipped() -> None:
    """A job rebuilt from another user's message (get_message on its id): its later edits must reach the engine."""
    engine = our_engine()
    account = engine.accounts[0]
    gateway = account.gateway
    followed = message(f"**a stranger's lighthouse** - <@{OTHER}> (31%) (fast)", id="555000000000009101")
    job = engine._rebuild(account, copy.deepcopy(followed))
    assert job.progress == 31
    gateway.handle_frame(frame("MESSAGE_UPDATE", followed | {"content": followed["content"].replace("31%", "77%")}))
    assert gateway.frames_skipped == 0 and job.progress == 77
    # Another message of the same user that nobody follows is still skipped unread.
    stranger = message(f"**something else** - <@{OTHER}> (12%) (fast)", id="555000000000009102")
    gateway.handle_frame(frame("MESSAGE_UPDATE", stranger, seq=8))
    assert gateway.frames_skipped == 1


def test_the_result_of_another_users_job_the_engine_follows_is_read() -> None:
    """Its result is a new message naming only that user: the job's uuid, learned from its progress, lets it in."""
    engine = our_engine()
    account = engine.accounts[0]
    gateway = account.gateway
    uuid = "1a2b3c4d-0000-4000-8000-00000000beef"
    waiting = message(f"**a stranger's harbour** - <@{OTHER}> (Waiting to start)", id="555000000000009111")
    job = engine._rebuild(account, copy.deepcopy(waiting))  # looked up by id before Midjourney started it
    assert job.job_uuid is None
    progress = waiting | {
        "content": f"**a stranger's harbour** - <@{OTHER}> (40%) (fast)",
        "attachments": [{"id": "1", "filename": f"stranger_{uuid}.png", "url": f"https://cdn.example/{uuid}.png"}],
    }
    gateway.handle_frame(frame("MESSAGE_UPDATE", progress, seq=7))
    assert job.job_uuid == uuid and job.progress == 40
    result = message(
        f"**a stranger's harbour** - <@{OTHER}> (fast)",
        id="555000000000009112",
        attachments=[{"id": "2", "filename": f"stranger_harbour_{uuid}.png", "url": f"https://cdn.example/{uuid}.png"}],
    )
    gateway.handle_frame(frame("MESSAGE_DELETE", {"id": progress["id"], "channel_id": CHANNEL}, seq=8))
    gateway.handle_frame(frame("MESSAGE_CREATE", result, seq=9))
    assert gateway.frames_skipped == 0 and job.result_message_id == result["id"] and not job.in_flight


def test_kept_ids_are_bounded_and_only_ids() -> None:
    gateway, _ = make_gateway()
    gateway.keep(None, "", "12", "not-an-id")
    assert not gateway._kept
    gateway.keep(*(f"5550000000000{i:05d}" for i in range(100)))
    assert len(gateway._kept) == 64 and "555000000000000099" in gateway._kept


# --- property: the engine decides the same with the filter as without ----------------------------------------

SNOWFLAKE = re.compile(r"\b\d{17,20}\b")
COMPACT = re.compile(r'\{"t":"([A-Z0-9_]+)","s":(0|[1-9][0-9]*),"op":0,"d":\{')
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KEEP = {MIDJOURNEY_BOT_ID, NIJI_BOT_ID}
JOB_FIELDS = (
    "status",
    "progress",
    "interaction_id",
    "progress_message_id",
    "result_message_id",
    "job_uuid",
    "image_url",
    "image_urls",
    "preview_url",
    "error",
    "queued_note",
    "message_flags",
    "account",
    "version",
)


def captured_messages() -> list[dict[str, Any]]:
    found = [
        load_fixture("captured", "gateway-message-create-imagine-waiting-to-start.json")["d"],
        load_fixture("captured", "gateway-message-create-imagine-final-grid.json")["d"],
    ]
    return cast(list[dict[str, Any]], found + load_fixture("captured", "rest-channel-messages-final-grids.json")[:3])


MESSAGES = captured_messages()
WAITING_NONCE = MESSAGES[0]["nonce"]


def as_owned(base: dict[str, Any], owner: str, channel: str) -> dict[str, Any]:
    """A captured message moved to `channel` and made `owner`'s. Another user's message shares no id or uuid
    with ours (only the channel and the bot), as on Discord."""
    user = re.search(r"<@!?(\d+)>", base["content"])
    assert user is not None
    mapping = {base["channel_id"]: channel, user[1]: owner}

    def snowflake(match: re.Match[str]) -> str:
        value = match[0]
        if value in mapping:
            return mapping[value]
        return value if owner == ME or value in KEEP else "9" + value[1:]

    text = SNOWFLAKE.sub(snowflake, json.dumps(base))
    if owner != ME:
        text = UUID.sub(lambda m: m[0][:-4] + "beef", text)
    return cast(dict[str, Any], json.loads(text))


@st.composite
def streams(draw: st.DrawFn) -> list[str]:
    """Frames of one session. Each captured message keeps one shape for its owner through the session (its
    mention and metadata do not change between its create and its updates), as on Discord."""
    shapes: dict[tuple[str, int], tuple[str, bool]] = {}
    stream = []
    for _ in range(draw(st.integers(1, 25))):
        stream.append(draw(frame_of_session(shapes)))
    return stream


@st.composite
def frame_of_session(draw: st.DrawFn, shapes: dict[tuple[str, int], tuple[str, bool]]) -> str:
    kind = draw(st.sampled_from(["message"] * 8 + ["interaction", "ack", "presence", "person"]))
    seq = draw(st.integers(1, 60))
    layout = draw(st.sampled_from(["compact", "compact", "compact", "reordered", "spaced"]))
    if kind == "ack":
        return '{"op":11}'
    if kind == "interaction":
        return frame("INTERACTION_SUCCESS", {"id": "555000000000009100", "nonce": WAITING_NONCE}, seq, layout)
    if kind == "presence":
        return frame("PRESENCE_UPDATE", {"user": {"id": OTHER}, "status": "online"}, seq, layout)
    if kind == "person":  # someone chatting in a channel, maybe naming us or someone else
        said = draw(st.sampled_from(["nice one", f"<@{ME}> look", f"<@{OTHER}> look"]))
        where = draw(st.sampled_from([CHANNEL, OTHER_CHANNEL]))
        chat = message(said, channel=where, id="555000000000009200", author={"id": THIRD, "username": "person"})
        return frame(draw(st.sampled_from(["MESSAGE_CREATE", "MESSAGE_UPDATE"])), chat, seq, layout)
    owner = draw(st.sampled_from([ME, OTHER]))
    channel = draw(st.sampled_from([CHANNEL, CHANNEL, OTHER_CHANNEL]))
    index = draw(st.integers(0, len(MESSAGES) - 1))
    data = as_owned(MESSAGES[index], owner, channel)
    event = draw(st.sampled_from(["MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"]))
    if event == "MESSAGE_DELETE":
        return frame(event, {"id": data["id"], "channel_id": channel, "guild_id": data.get("guild_id")}, seq, layout)
    if (owner, index) not in shapes:
        variant = draw(st.sampled_from(["as is", "with !", "prompt only", "names someone else"]))
        # Our own messages always carry our id somewhere (content, mentions, interaction): drop the metadata
        # only where that stays true.
        drop = not (owner == ME and variant == "names someone else") and draw(st.booleans())
        shapes[owner, index] = (variant, drop)
    variant, drop = shapes[owner, index]
    mention = f"<@{owner}>"
    if variant == "with !":
        data["content"] = data["content"].replace(mention, f"<@!{owner}>")
    elif variant == "prompt only":
        data["content"] = data["content"].replace(f" - {mention}", "")
    elif variant == "names someone else":
        data["content"] = data["content"].replace(mention, f"<@{OTHER if owner == ME else THIRD}>")
    if drop:
        for key in ("nonce", "interaction", "interaction_metadata", "mentions"):
            data.pop(key, None)
    author = draw(st.sampled_from(["bot", "bot", "partial", "person"]))
    if author == "partial":
        data.pop("author", None)
    elif author == "person":
        data["author"] = {"id": owner, "username": "someone"}
    return frame(event, data, seq, layout)


def engine_with_jobs() -> tuple[Engine, list[Job]]:
    engine = our_engine()
    account = engine.accounts[0]
    prompts = [("glass", WAITING_NONCE)] + [
        (str(m["content"]).split("**")[1], f"55500000000000{i:04d}") for i, m in enumerate(MESSAGES[2:])
    ]
    jobs = []
    for prompt, nonce in prompts:
        job = Job(nonce=nonce, kind="imagine", prompt=prompt, normalised_prompt=normalise_prompt(prompt))
        job.submitted = True
        job.account = account.name
        engine.store.add(job)
        jobs.append(job)
    return engine, jobs


def run_stream(stream: list[str], *, prefilter: bool) -> tuple[Gateway, list[tuple[str, str]], list[Job]]:
    engine, jobs = engine_with_jobs()
    account = engine.accounts[0]
    calls: list[tuple[str, str]] = []

    def dispatch(event: str, data: dict[str, Any]) -> None:
        calls.append((event, json.dumps(data, sort_keys=True)))
        engine.dispatch_from(account, event, data)

    gateway = Gateway(
        None,  # type: ignore[arg-type]
        SecretStr(TOKEN),
        on_dispatch=dispatch,
        wanted_events=WANTED_EVENTS,
        channel_id=CHANNEL,
        authors=BOT_IDS,
        prefilter=prefilter,
    )
    gateway.user_id = ME
    for raw in stream:
        gateway.handle_frame(raw)
    return gateway, calls, jobs


def is_subsequence(short: list[Any], long: list[Any]) -> bool:
    items = iter(long)
    return all(any(item == other for other in items) for item in short)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams())
def test_the_engine_decides_the_same_with_the_prefilter_as_without(stream: list[str]) -> None:
    on, on_calls, on_jobs = run_stream(copy.copy(stream), prefilter=True)
    off, off_calls, off_jobs = run_stream(copy.copy(stream), prefilter=False)

    assert (on.seq, on.events_received, on.malformed_frames) == (off.seq, off.events_received, off.malformed_frames)
    assert [[getattr(j, f, None) for f in JOB_FIELDS] for j in on_jobs] == [
        [getattr(j, f, None) for f in JOB_FIELDS] for j in off_jobs
    ]
    # What was skipped is exactly what the filter says it is, and by the engine's own rules it drops those.
    assert is_subsequence(on_calls, off_calls)
    unwanted = [raw for raw in stream if (m := COMPACT.match(raw)) and m[1] not in WANTED_EVENTS]
    assert len(off_calls) - len(on_calls) == on.frames_skipped - len(unwanted)
    for event, text in off_calls:
        if on_calls.count((event, text)) < off_calls.count((event, text)):
            data = json.loads(text)
            content = str(data.get("content"))
            by_bot = data.get("author", {}).get("id") in BOT_IDS
            assert (
                data["channel_id"] != CHANNEL
                or (event == "MESSAGE_CREATE" and not by_bot)
                or (
                    event != "MESSAGE_DELETE"
                    and "<@" in content
                    and f"<@{ME}>" not in content
                    and f"<@!{ME}>" not in content
                )
            )


def test_the_property_stream_really_exercises_the_filter() -> None:
    """The generator makes frames the filter skips and frames it must let through (or the property is empty)."""
    ours = as_owned(MESSAGES[0], ME, CHANNEL)
    theirs = as_owned(MESSAGES[1], OTHER, CHANNEL)
    assert ME in json.dumps(ours) and ME not in json.dumps(theirs) and WAITING_NONCE not in json.dumps(theirs)
    on, on_calls, on_jobs = run_stream(
        [frame("MESSAGE_CREATE", theirs, 2), frame("MESSAGE_CREATE", ours, 3)], prefilter=True
    )
    assert on.frames_skipped == 1 and len(on_calls) == 1
    assert on_jobs[0].progress_message_id == ours["id"]  # our waiting message reached our job
