"""Shared test helpers: the anyio backend and the real Discord captures (tests/fixtures, see its README)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROTOCOL = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fixtures_dir(*parts: str) -> Path:
    """A file or folder of real payloads in tests/fixtures (part of the repository: a missing one is an error)."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"no capture at {path}: tests/fixtures/README.md lists what belongs there")
    return path


def load_fixture(*parts: str) -> Any:
    return json.loads(fixtures_dir(*parts).read_text(encoding="utf-8"))


def session_ready(gateway: Any, user_id: str = "439110225975443468") -> None:
    """Bring a gateway's session up as Discord's READY does, through its public frame handler (no network)."""
    ready = {"session_id": "made-up-session", "resume_gateway_url": "ws://127.0.0.1:1", "user": {"id": user_id}}
    gateway.handle_frame(json.dumps({"t": "READY", "s": 1, "op": 0, "d": ready}, separators=(",", ":")))


@contextlib.contextmanager
def no_errors_logged() -> Iterator[None]:
    """Fails if the package logged an ERROR (the dispatcher's catch-all logs one for anything that raised)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("mcp_midjourney")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert not records, [r.getMessage() for r in records]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A private redis-server (tests/redis_server.py); skips the test where none is installed."""
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
