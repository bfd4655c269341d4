"""Discord's CDN: signed attachment URLs expire (about a day) and must be read again from their message."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit


def url_expired(url: str | None, now: float | None = None) -> bool:
    """Whether a signed Discord CDN URL (``ex=<hex unix time>``) has expired, or will within a minute."""
    if not url:
        return False
    values = parse_qs(urlsplit(url).query).get("ex")
    if not values:
        return False
    try:
        expires = int(values[0], 16)
    except ValueError:
        return False
    return expires - 60 <= (time.time() if now is None else now)
