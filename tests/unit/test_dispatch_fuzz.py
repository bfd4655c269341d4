"""Property-based: whatever the gateway or REST hands the client — arbitrary frames, real payloads mutated at
random — nothing escapes the gateway's frame handler, nothing fails inside the engine's dispatcher (it logs an
ERROR for anything that raises in it, so no ERROR record may appear), reconciliation or the rebuild of a job from a
message, and our jobs stay in a valid state."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mcp_midjourney.config import Settings
from mcp_midjourney.discord.gateway import Gateway
from mcp_midjourney.engine.engine import WANTED_EVENTS, Engine, EngineError
from mcp_midjourney.engine.store import Job
from mcp_midjourney.models import MIDJOURNEY_BOT_ID, JobStatus
from tests.conftest import load_fixture, no_errors_logged, session_ready

CHANNEL = "1069126859100524575"
ME = "439110225975443468"
# Every event the engine asks the gateway for, plus ones it must shrug off.
EVENTS = [*sorted(WANTED_EVENTS), "READY", "RESUMED", "SOMETHING_NEW"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)


def make_engine() -> Engine:
    """A fresh engine (cheap: nothing connects until it runs) whose session is up as after READY."""
    engine = Engine(Settings(token=SecretStr("made-up-token-fuzz-abcdef"), guild_id=None, channel_id=CHANNEL))
    session_ready(engine.accounts[0].gateway, ME)
    return engine


def with_jobs(engine: Engine) -> list[Job]:
    jobs = []
    for i, (prompt, fields) in enumerate(
        [
            ("glass", {}),
            ("glass", {"interaction_id": "1083788668470300001", "progress_message_id": "1083788668470300002"}),
            ("a cat", {"parent_message_id": "1083788807800897597", "parent_button": "U2", "parent_index": 2}),
        ]
    ):
        job = Job(nonce=f"100000000000000000{i}", kind="imagine", prompt=prompt, normalised_prompt=prompt)
        for key, value in fields.items():
            setattr(job, key, value)
        job.submitted = True
        engine.store.add(job)
        jobs.append(job)
    return jobs


def real_messages() -> list[dict[str, Any]]:
    messages = [
        load_fixture("captured", "gateway-message-create-imagine-waiting-to-start.json")["d"],
        load_fixture("captured", "gateway-message-create-imagine-final-grid.json")["d"],
    ]
    messages += load_fixture("captured", "rest-channel-messages-final-grids.json")[:3]
    return [m | {"channel_id": CHANNEL} for m in messages]


def mutate(payload: Any, data: st.DataObject, depth: int = 0) -> Any:
    """A real payload with random keys dropped, values replaced by arbitrary JSON, or types swapped."""
    if isinstance(payload, dict) and payload:
        result = dict(payload)
        for key in list(result):
            choice = data.draw(st.integers(0, 9), label=f"mutate {key}")
            if choice == 0:
                del result[key]
            elif choice == 1:
                result[key] = data.draw(json_values, label=f"replace {key}")
            elif choice == 2 and depth < 4:
                result[key] = mutate(result[key], data, depth + 1)
        return result
    if isinstance(payload, list) and payload and depth < 4:
        return [mutate(item, data, depth + 1) for item in payload]
    return payload


def assert_valid(jobs: list[Job]) -> None:
    for job in jobs:
        assert isinstance(job.status, JobStatus)
        assert 0 <= job.progress <= 100
        assert job.status is not JobStatus.FAILED or job.error


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), event=st.sampled_from(EVENTS))
def test_mutated_real_messages_never_break_the_dispatcher(data: st.DataObject, event: str) -> None:
    engine = make_engine()
    jobs = with_jobs(engine)
    with no_errors_logged():
        for message in real_messages():
            payload = mutate(copy.deepcopy(message), data)
            if isinstance(payload, dict):
                engine.dispatch(event, payload)
    assert_valid(jobs)


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(st.one_of(json_values, st.text(max_size=60)), max_size=12))
def test_arbitrary_frames_never_escape_the_gateway_frame_handler(frames: list[Any]) -> None:
    engine = make_engine()
    jobs = with_jobs(engine)
    gateway = Gateway(
        engine.accounts[0].rest, SecretStr("made-up-token-fuzz-abcdef"), on_dispatch=lambda e, d: engine.dispatch(e, d)
    )
    texts = [f if isinstance(f, str) else json.dumps(f) for f in frames]
    # Wrap some values as dispatches so they reach the engine, not just the opcode switch.
    texts += [
        json.dumps({"op": 0, "t": e, "s": i, "d": f}) for i, (e, f) in enumerate(zip(EVENTS, frames, strict=False))
    ]
    for text in texts:
        message = gateway.handle_frame(text)
        assert message is None or isinstance(message, dict)
    assert_valid(jobs)


class FakeRest:
    """REST that answers every read with the same (arbitrary) page."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def messages(self, channel_id: str, *, limit: int = 50, after: str | None = None) -> Any:
        return [m for m in self.page if isinstance(m, dict)] if isinstance(self.page, list) else []

    async def message(self, channel_id: str, message_id: str) -> Any:
        first = next((m for m in self.page if isinstance(m, dict)), {}) if isinstance(self.page, list) else {}
        return first | {"author": {"id": MIDJOURNEY_BOT_ID}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), extra=st.lists(st.dictionaries(st.text(max_size=10), json_values, max_size=6), max_size=4))
def test_reconcile_and_restart_lookups_survive_any_page(data: st.DataObject, extra: list[dict[str, Any]]) -> None:
    engine = make_engine()
    jobs = with_jobs(engine)
    page = [mutate(copy.deepcopy(m), data) for m in real_messages()] + extra
    real_rest = engine.accounts[0].rest
    engine.accounts[0].rest = FakeRest(page)  # type: ignore[assignment]

    async def go() -> None:
        await engine.reconcile(engine.accounts[0])
        for earlier in ("1083788668470300002", "1000000000000000000", "999"):
            with contextlib.suppress(EngineError):  # words for the agent are fine; anything else escaping is not
                await engine.get(earlier)

    try:
        with no_errors_logged():
            anyio.run(go)
    finally:
        engine.accounts[0].rest = real_rest
    assert_valid(jobs)


@pytest.mark.parametrize("frame", ["", "{", "[]", '{"op": 0}', '{"op": 0, "t": "MESSAGE_CREATE", "d": "x"}'])
def test_the_read_loop_counts_malformed_frames(frame: str) -> None:
    engine = make_engine()
    gateway = Gateway(engine.accounts[0].rest, SecretStr("made-up-token-fuzz-abcdef"), on_dispatch=lambda e, d: None)
    assert gateway.handle_frame(frame) is None
    assert gateway.malformed_frames == 1
