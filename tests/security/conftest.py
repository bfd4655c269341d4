"""The security suite's harness: a decoy home folder (secrets where an injected agent would look for them) and
the server spawned with it as HOME, against the simulator."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import server_log, sim  # noqa: F401 (fixtures)

SECRET = "DECOY-SECRET-7c1e9a-do-not-upload"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME, also this process's (so platformdirs and ~ agree with the spawned server's)."""
    folder = tmp_path / "home" / "decoy-user"
    (folder / "Pictures").mkdir(parents=True)
    (folder / "Documents").mkdir()
    (folder / ".ssh").mkdir()
    (folder / ".ssh" / "id_ed25519").write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n")
    monkeypatch.setenv("HOME", str(folder))
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "MJ_ALLOWED_DIRS"):
        monkeypatch.delenv(name, raising=False)
    return folder


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """The spawned server's environment: the decoy HOME, and `extra` MJ_* settings."""
    return {"HOME": str(home), **extra}


def png(path: Path, size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG")
    return path


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid black PNG of width x height pixels in a few hundred KB (a decompression bomb, if decoded)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + b"\x00" * width  # filter byte, then one grey byte per pixel
    squeeze = zlib.compressobj(9)
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def uploads(simulator: Any) -> list[bytes]:
    """The bytes of every file uploaded to the simulated Discord so far (what left the machine), oldest first."""
    return simulator.call(lambda: list(simulator.simulator.world.uploads.values()))


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
