"""Shared test helpers: the anyio backend and the real Discord captures (tests/fixtures, see its README)."""

from __future__ import annotations

import json
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
