"""Shared test helpers: the anyio backend and where the real Discord captures live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fixtures_dir(*parts: str) -> Path:
    """The folder of real payloads beside the project; skips the test (with the reason) where it is absent."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real Discord captures not found at {path} (they live in ../shared/fixtures beside the project)")
    return path


def load_fixture(*parts: str) -> Any:
    return json.loads(fixtures_dir(*parts).read_text(encoding="utf-8"))
