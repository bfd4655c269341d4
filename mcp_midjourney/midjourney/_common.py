"""Small pieces shared by the parsers of this package: the uuid shape and a tolerant component walk.

Everything here takes values straight from Discord JSON and never trusts their types.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# A Midjourney job id is a lowercase RFC 4122 uuid; accept upper case too, and report it lower-cased.
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)

# Links that name a job: the web gallery page (midjourney.com/jobs/<uuid>) and the image CDN
# (cdn.midjourney.com/<uuid>/0_1.png). Matched right after each "midjourney.com/" that str.find locates,
# which is several times faster than letting a regex scan the whole text.
_SITE = "midjourney.com/"
_AFTER_SITE_RE = re.compile(r"(?:jobs/)?(" + UUID_RE.pattern + ")", re.IGNORECASE)

# Discord nests components: action rows (type 1) hold buttons; "components v2" containers and sections
# nest deeper and put a button in a section's `accessory`. A bound keeps hostile input cheap.
_MAX_DEPTH = 4


def is_int(value: object) -> bool:
    """True for a real int (JSON number without a fraction), False for bool, which is an int subclass."""
    return type(value) is int


def iter_components(components: object, _depth: int = 0) -> Iterator[dict[str, Any]]:
    """Yield every leaf component (anything that is not a container) in display order.

    Rows, containers and sections are walked; anything that is not a dict is skipped silently.
    """
    if not isinstance(components, list) or _depth > _MAX_DEPTH:
        return
    for component in components:
        if not isinstance(component, dict):
            continue
        children = component.get("components")
        if isinstance(children, list):
            yield from iter_components(children, _depth + 1)
            accessory = component.get("accessory")
            if isinstance(accessory, dict):
                yield accessory
            continue
        yield component


def job_link_uuid(text: object) -> str | None:
    """The job uuid of the first midjourney.com/jobs/<uuid> or cdn.midjourney.com/<uuid>/ link in `text`."""
    if not isinstance(text, str):
        return None
    at = text.find(_SITE)
    while at >= 0:
        match = _AFTER_SITE_RE.match(text, at + len(_SITE))
        if match is not None:
            return match.group(1).lower()
        at = text.find(_SITE, at + len(_SITE))
    return None


def last_uuid(text: object) -> str | None:
    """The last uuid in `text`, lower-cased (the last: a prompt slug before it could look like one)."""
    if not isinstance(text, str) or len(text) < 36:
        return None
    found = None
    for match in UUID_RE.finditer(text):
        found = match.group(0)
    return found.lower() if found else None
