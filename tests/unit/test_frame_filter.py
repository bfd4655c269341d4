"""The frame pre-filter, in two parts and their wiring.

`FramePrefilter` (the engine's rule) on raw frames: message dispatches the engine would drop (another channel; a
message naming someone and never us; an event nobody wants) are skipped, everything else is read. The gateway's
side with a stub pre-filter: only dispatches in Discord's compact layout are offered, READY and RESUMED never,
and a skipped frame is never parsed while its sequence number and the event count are kept. The property test
checks that, over frames built from the real captures, the engine ends in the same state with the filter as
without.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any, cast

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mcp_midjourney.config import Settings
from mcp_midjourney.discord.gateway import Gateway
from mcp_midjourney.engine.engine import BOT_IDS, WANTED_EVENTS, Engine
from mcp_midjourney.engine.prefilter import KEPT_IDS, FramePrefilter
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


def frame(event: str, data: dict[str, Any], seq: int = 7, layout: str = "compact") -> str:
    """A dispatch as text: Discord's compact t,s,op,d layout, or another key order, or with spaces."""
    if layout == "compact":
        return json.dumps({"t": event, "s": seq, "op": 0, "d": data}, separators=(",", ":"), ensure_ascii=False)
    if layout == "reordered":
        return json.dumps({"op": 0, "t": event, "s": seq, "d": data}, separators=(",", ":"), ensure_ascii=False)
    assert layout == "spaced"
    return json.dumps({"t": event, "s": seq, "op": 0, "d": data})


def ready(user_id: str = ME, seq: int = 1) -> str:
    return frame("READY", {"session_id": "s", "user": {"id": user_id}}, seq=seq)


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


def engine_rule(
    *, channel_id: str | None = CHANNEL, user_id: str | None = ME, authors: frozenset[str] = frozenset()
) -> FramePrefilter:
    return FramePrefilter(channel_id, authors=authors, wanted_events=WANTED_EVENTS, user_id=lambda: user_id)


def skips(rule: FramePrefilter, event: str, data: dict[str, Any]) -> bool:
    return rule.skips(event, frame(event, data))


# --- the engine's rule, on raw frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"])
def test_a_message_in_another_channel_is_skipped(event: str) -> None:
    assert skips(engine_rule(), event, message(f"**a cat** - <@{ME}> (fast)", channel=OTHER_CHANNEL))


@pytest.mark.parametrize("event", ["MESSAGE_CREATE", "MESSAGE_UPDATE"])
@pytest.mark.parametrize("mention", [f"<@{OTHER}>", f"<@!{OTHER}>"])
def test_another_users_bot_message_in_our_channel_is_skipped(event: str, mention: str) -> None:
    assert skips(engine_rule(), event, message(f"**a dog** - {mention} (42%) (fast)", mentions=[{"id": OTHER}]))


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
def test_our_messages_are_read(event: str, data: dict[str, Any]) -> None:
    assert not skips(engine_rule(), event, data)


@pytest.mark.parametrize("extra", [{}, {"note": f"<@{OTHER}>"}], ids=["as Discord sends it", "naming someone"])
def test_a_delete_in_our_channel_is_read(extra: dict[str, Any]) -> None:
    data = {"id": "555000000000009001", "channel_id": CHANNEL, "guild_id": "555000000000000200", **extra}
    assert not skips(engine_rule(), "MESSAGE_DELETE", data)


def test_events_nobody_wants_are_skipped_and_wanted_ones_that_are_not_messages_are_read() -> None:
    rule = engine_rule()
    for event in ("MESSAGE_REACTION_ADD", "PRESENCE_UPDATE", "TYPING_START", "MESSAGE_ACK"):
        assert skips(rule, event, {"channel_id": CHANNEL, "user_id": OTHER}), event
    interaction = {"id": "555000000000009100", "nonce": "2", "channel_id": OTHER_CHANNEL}
    assert not skips(rule, "INTERACTION_SUCCESS", interaction)  # another channel, but not a message: read


def test_a_person_chatting_in_our_channel_is_skipped_but_not_a_reply_to_the_bot() -> None:
    rule = engine_rule(authors=frozenset({MIDJOURNEY_BOT_ID}))
    person = {"id": THIRD, "username": "someone"}
    assert skips(rule, "MESSAGE_CREATE", message("what a nice grid", author=person))
    # The reply carries the bot's id (the engine drops it by author); an update may be partial: both are read.
    reply = message("nice", author=person, referenced_message=message("**glass** - Image #1"))
    assert not skips(rule, "MESSAGE_CREATE", reply)
    assert not skips(rule, "MESSAGE_UPDATE", message("what a nice grid (edited)", author=person))
    assert not skips(rule, "MESSAGE_CREATE", message("**a prompt** - Image #2"))


def test_without_a_user_id_the_mention_rule_skips_nothing_but_the_channel_rule_holds() -> None:
    rule = engine_rule(user_id=None)
    assert not skips(rule, "MESSAGE_CREATE", message(f"**a dog** - <@{OTHER}> (fast)"))
    assert skips(rule, "MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL))


def test_the_user_id_is_read_when_a_frame_comes_not_when_the_rule_is_made() -> None:
    session: dict[str, str | None] = {"user": None}  # as a gateway's user id before and after READY
    rule = FramePrefilter(CHANNEL, wanted_events=WANTED_EVENTS, user_id=lambda: session["user"])
    theirs = message(f"**a dog** - <@{OTHER}> (fast)")
    assert not skips(rule, "MESSAGE_CREATE", theirs)
    session["user"] = ME
    assert skips(rule, "MESSAGE_CREATE", theirs)


@pytest.mark.parametrize("channel_id", [None, "", "12 34", "١٢٣"])
def test_without_a_usable_channel_id_nothing_is_skipped(channel_id: str | None) -> None:
    rule = engine_rule(channel_id=channel_id)
    for data in (message("x", channel=OTHER_CHANNEL), message(f"**a dog** - <@{OTHER}> (fast)")):
        assert not skips(rule, "MESSAGE_CREATE", data)
    assert not skips(rule, "PRESENCE_UPDATE", {"user": {"id": OTHER}})


def test_without_wanted_events_every_event_is_offered_to_the_message_rules() -> None:
    rule = FramePrefilter(CHANNEL, user_id=lambda: ME)
    assert not skips(rule, "PRESENCE_UPDATE", {"user": {"id": OTHER}})
    assert skips(rule, "MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL))


def test_a_followed_message_of_another_user_is_read() -> None:
    rule = engine_rule()
    followed = message(f"**a stranger's lighthouse** - <@{OTHER}> (31%) (fast)", id="555000000000009101")
    uuid = "1a2b3c4d-0000-4000-8000-00000000beef"
    result = message(f"**a stranger's lighthouse** - <@{OTHER}> (fast)", id="555000000000009102")
    result["attachments"] = [{"id": "2", "filename": f"stranger_{uuid}.png", "url": f"https://cdn.example/{uuid}.png"}]
    assert skips(rule, "MESSAGE_UPDATE", followed) and skips(rule, "MESSAGE_CREATE", result)
    rule.keep(followed["id"], uuid)
    assert not skips(rule, "MESSAGE_UPDATE", followed) and not skips(rule, "MESSAGE_CREATE", result)
    stranger = message(f"**something else** - <@{OTHER}> (12%) (fast)", id="555000000000009103")
    assert skips(rule, "MESSAGE_UPDATE", stranger)  # nobody follows it


def test_only_ids_are_kept_and_only_the_most_recent() -> None:
    rule = engine_rule()
    junk = message(f"**12 not-an-id** - <@{OTHER}> (fast)")
    rule.keep(None, "", "12", "not-an-id")  # too short to be unique in a frame, or not an id at all
    assert skips(rule, "MESSAGE_CREATE", junk)
    ids = [f"7770000000000{i:05d}" for i in range(KEPT_IDS + 36)]
    rule.keep(*ids)
    named = [skips(rule, "MESSAGE_UPDATE", message(f"<@{OTHER}>", id=value)) for value in ids]
    assert named == [True] * 36 + [False] * KEPT_IDS  # the oldest were forgotten


CAPTURED = load_fixture("captured", "gateway-message-create-imagine-waiting-to-start.json")
CAPTURED_RAW = json.dumps(CAPTURED, separators=(",", ":"), ensure_ascii=False)
CAPTURED_USER = CAPTURED["d"]["mentions"][0]["id"]
CAPTURED_CHANNEL = CAPTURED["d"]["channel_id"]


@pytest.mark.parametrize(
    ("channel", "user", "skipped"),
    [
        (CAPTURED_CHANNEL, CAPTURED_USER, False),  # our job's first reply
        (CAPTURED_CHANNEL, ME, True),  # someone else's job in our channel
        (OTHER_CHANNEL, CAPTURED_USER, True),  # another channel
    ],
    ids=["ours", "another user's", "another channel"],
)
def test_a_captured_frame(channel: str, user: str, skipped: bool) -> None:
    rule = FramePrefilter(channel, authors=BOT_IDS, wanted_events=WANTED_EVENTS, user_id=lambda: user)
    assert rule.skips("MESSAGE_CREATE", CAPTURED_RAW) is skipped


# --- the gateway's side, with a stub pre-filter -----------------------------------------------------------------


class Stub:
    """A pre-filter that skips what `rule` says and records what it was offered."""

    def __init__(self, rule: Callable[[str, str], bool] = lambda event, raw: True) -> None:
        self.rule = rule
        self.offered: list[tuple[str, str]] = []

    def __call__(self, event: str, raw: str) -> bool:
        self.offered.append((event, raw))
        return self.rule(event, raw)


def stub_gateway(stub: Stub | None) -> tuple[Gateway, Calls]:
    calls: Calls = []
    gateway = Gateway(
        None,  # type: ignore[arg-type]  # no connection is made: frames are handed over directly
        SecretStr(TOKEN),
        on_dispatch=lambda event, data: calls.append((event, data)),
        wanted_events=WANTED_EVENTS,
        prefilter=stub,
    )
    return gateway, calls


def test_a_skipped_frame_is_never_parsed_but_counted_with_its_sequence() -> None:
    stub = Stub()
    gateway, calls = stub_gateway(stub)
    raw = frame("MESSAGE_CREATE", message("x"), seq=12)
    truncated = raw[: len(raw) // 2]  # not JSON past the prefix: parsing it would count a malformed frame
    gateway.handle_frame(truncated)
    assert stub.offered == [("MESSAGE_CREATE", truncated)] and calls == []
    assert gateway.frames_skipped == 1 and gateway.events_received == 1 and gateway.seq == 12
    assert gateway.malformed_frames == 0


def test_a_frame_the_prefilter_lets_through_is_parsed_and_dispatched() -> None:
    stub = Stub(lambda event, raw: False)
    gateway, calls = stub_gateway(stub)
    data = message("x")
    gateway.handle_frame(frame("MESSAGE_UPDATE", data, seq=4))
    assert calls == [("MESSAGE_UPDATE", data)] and len(stub.offered) == 1
    assert gateway.frames_skipped == 0 and gateway.events_received == 1 and gateway.seq == 4


@pytest.mark.parametrize(
    "raw",
    [
        frame("MESSAGE_CREATE", message("x"), layout="reordered"),
        frame("MESSAGE_CREATE", message("x"), layout="spaced"),
        " " + frame("MESSAGE_CREATE", message("x")),
        frame("MESSAGE_CREATE", message("x")).replace('"s":7', '"s":07'),
        frame("MESSAGE_CREATE", message("x")).replace('"op":0', '"op":0.0'),
        '{"t":"MESSAGE_CREATE","s":7,"op":0,"d":[]}',
        '{"op":11}',
    ],
    ids=["reordered", "spaced", "leading space", "leading zero", "op as float", "d not an object", "ack"],
)
def test_frames_outside_the_compact_dispatch_layout_are_never_offered(raw: str) -> None:
    stub = Stub()
    gateway, _ = stub_gateway(stub)
    gateway.handle_frame(raw)
    assert stub.offered == [] and gateway.frames_skipped == 0


def test_ready_and_resumed_are_never_offered_and_ready_starts_the_sequence_anew() -> None:
    stub = Stub()
    gateway, _ = stub_gateway(stub)
    gateway.handle_frame(frame("MESSAGE_CREATE", message("x"), seq=40))
    gateway.handle_frame(ready(seq=1))
    assert gateway.seq == 1 and gateway.user_id == ME and gateway.session_id == "s" and gateway.ready
    gateway.handle_frame(frame("RESUMED", {}, seq=2))
    assert [event for event, _ in stub.offered] == ["MESSAGE_CREATE"]


def test_seq_advances_for_skipped_frames_and_never_moves_back() -> None:
    gateway, calls = stub_gateway(Stub(lambda event, raw: "elsewhere" in raw))
    elsewhere = message("elsewhere")
    gateway.handle_frame(frame("MESSAGE_CREATE", elsewhere, seq=5))
    assert gateway.seq == 5
    gateway.handle_frame(frame("MESSAGE_UPDATE", elsewhere, seq=3))  # late: must not move it back
    assert gateway.seq == 5
    gateway.handle_frame(frame("MESSAGE_CREATE", message("**a cat** (fast)"), seq=8))  # parsed
    assert gateway.seq == 8
    gateway.handle_frame(frame("MESSAGE_DELETE", elsewhere, seq=120))
    assert gateway.seq == 120
    assert gateway.frames_skipped == 3 and gateway.events_received == 4 and len(calls) == 1


def test_without_a_prefilter_every_frame_is_parsed_and_it_can_be_removed_later() -> None:
    stub = Stub()
    gateway, calls = stub_gateway(None)
    gateway.handle_frame(frame("MESSAGE_CREATE", message("x")))
    gateway.prefilter = stub
    gateway.handle_frame(frame("MESSAGE_CREATE", message("y")))
    gateway.prefilter = None
    gateway.handle_frame(frame("MESSAGE_CREATE", message("z")))
    assert [data["content"] for _, data in calls] == ["x", "z"] and gateway.frames_skipped == 1


def test_handle_frame_returns_the_ops_the_read_loop_must_answer() -> None:
    gateway, _ = stub_gateway(Stub())
    assert gateway.last_ack is None
    assert gateway.handle_frame('{"op":11}') is None
    assert gateway.last_ack is not None
    for op in (1, 7, 9):
        assert gateway.handle_frame(json.dumps({"op": op, "d": None})) == {"op": op, "d": None}
    assert gateway.handle_frame('{"op":10,"d":{}}') is None
    assert gateway.handle_frame("not json") is None and gateway.malformed_frames == 1


# --- the wiring: an account hands the engine's rule to its gateway ---------------------------------------------


def our_engine(transport: httpx2.AsyncBaseTransport | None = None) -> Engine:
    """An engine with one account on CHANNEL whose gateway got READY for our user."""
    engine = Engine(Settings(token=SecretStr(TOKEN), guild_id=None, channel_id=CHANNEL), transport=transport)
    engine.accounts[0].gateway.handle_frame(ready())
    return engine


def test_an_accounts_gateway_skips_what_the_engine_would_drop() -> None:
    account = our_engine().accounts[0]
    gateway = account.gateway
    theirs = message(f"**a dog** - <@{OTHER}> (fast)", id="555000000000009120")
    for raw in (frame("MESSAGE_CREATE", message("x", channel=OTHER_CHANNEL)), frame("MESSAGE_UPDATE", theirs)):
        gateway.handle_frame(raw)
    assert gateway.frames_skipped == 2
    account.keep(theirs["id"])
    gateway.handle_frame(frame("MESSAGE_UPDATE", theirs))
    assert gateway.frames_skipped == 2


def engine_reading(*messages: dict[str, Any]) -> Engine:
    """An engine whose REST answers `GET /channels/{CHANNEL}/messages/{id}` with these messages."""
    by_id = {str(m["id"]): m for m in messages}

    def handler(request: httpx2.Request) -> httpx2.Response:
        found = by_id.get(request.url.path.rsplit("/", 1)[-1])
        return httpx2.Response(200, json=found) if found else httpx2.Response(404, json={"code": 10008})

    return our_engine(httpx2.MockTransport(handler))


def test_another_users_message_the_engine_follows_is_never_skipped() -> None:
    """A job read back by id (get_message on another user's message): its later edits must reach the engine."""
    followed = message(f"**a stranger's lighthouse** - <@{OTHER}> (31%) (fast)", id="555000000000009101")
    engine = engine_reading(followed)
    gateway = engine.accounts[0].gateway
    job = anyio.run(engine.get, followed["id"])
    assert job.progress == 31
    gateway.handle_frame(frame("MESSAGE_UPDATE", followed | {"content": followed["content"].replace("31%", "77%")}))
    assert gateway.frames_skipped == 0 and job.progress == 77
    # Another message of the same user that nobody follows is still skipped unread.
    stranger = message(f"**something else** - <@{OTHER}> (12%) (fast)", id="555000000000009102")
    gateway.handle_frame(frame("MESSAGE_UPDATE", stranger, seq=8))
    assert gateway.frames_skipped == 1


def test_the_result_of_another_users_job_the_engine_follows_is_read() -> None:
    """Its result is a new message naming only that user: the job's uuid, learned from its progress, lets it in."""
    uuid = "1a2b3c4d-0000-4000-8000-00000000beef"
    waiting = message(f"**a stranger's harbour** - <@{OTHER}> (Waiting to start)", id="555000000000009111")
    engine = engine_reading(waiting)
    gateway = engine.accounts[0].gateway
    job = anyio.run(engine.get, waiting["id"])  # looked up by id before Midjourney started it
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
    """The stream through a gateway (with the engine's rule, or none) into a fresh engine's account."""
    engine, jobs = engine_with_jobs()
    account = engine.accounts[0]
    calls: list[tuple[str, str]] = []

    def dispatch(event: str, data: dict[str, Any]) -> None:
        calls.append((event, json.dumps(data, sort_keys=True)))
        engine.dispatch_from(account, event, data)

    rule = FramePrefilter(CHANNEL, authors=BOT_IDS, wanted_events=WANTED_EVENTS, user_id=lambda: ME)
    gateway = Gateway(
        None,  # type: ignore[arg-type]
        SecretStr(TOKEN),
        on_dispatch=dispatch,
        wanted_events=WANTED_EVENTS,
        prefilter=rule.skips if prefilter else None,
    )
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
