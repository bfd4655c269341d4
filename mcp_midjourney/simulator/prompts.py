"""What Midjourney does to a prompt: checks its parameters and rewrites the text it echoes back.

The echo differs from what was sent (image URLs become `<https://s.mj.run/…>`, a `--v 7` suffix is added,
whitespace collapses, a long dash becomes `--`): a client must not correlate by exact prompt text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .ids import short_code

DEFAULT_VERSION_SUFFIX = "--v 7"

_URL = re.compile(r"^https?://\S+$")
_DASHES = re.compile(r"[\u2013\u2014]{1,2}(?=[a-zA-Z])")  # "—v 6" typed on a phone means "--v 6"


def _int_in(low: int, high: int) -> Callable[[str], bool]:
    return lambda value: value.isascii() and value.isdigit() and low <= int(value) <= high


def _float_in(low: float, high: float) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return low <= float(value) <= high
        except ValueError:
            return False

    return check


def _ratio(value: str) -> bool:
    match = re.fullmatch(r"(\d{1,4}):(\d{1,4})", value)
    return bool(match) and int(match.group(1)) > 0 and int(match.group(2)) > 0  # type: ignore[union-attr]


def _one_of(*choices: str) -> Callable[[str], bool]:
    return lambda value: value in choices


def _any(value: str) -> bool:
    return bool(value)


_VERSIONS = ("1", "2", "3", "4", "5", "5.0", "5.1", "5.2", "6", "6.0", "6.1", "7", "7.0", "8", "8.0")

# name -> validator of its value; None = a flag that takes no value (a trailing word is tolerated).
_PARAMETERS: dict[str, Callable[[str], bool] | None] = {
    "ar": _ratio,
    "aspect": _ratio,
    "v": _one_of(*_VERSIONS),
    "version": _one_of(*_VERSIONS),
    "niji": None,
    "s": _int_in(0, 1000),
    "stylize": _int_in(0, 1000),
    "c": _int_in(0, 100),
    "chaos": _int_in(0, 100),
    "q": _one_of(".25", ".5", "0.25", "0.5", "1", "2", "4"),
    "quality": _one_of(".25", ".5", "0.25", "0.5", "1", "2", "4"),
    "seed": _int_in(0, 4_294_967_295),
    "no": _any,
    "style": _any,
    "w": _int_in(0, 3000),
    "weird": _int_in(0, 3000),
    "iw": _float_in(0, 3),
    "stop": _int_in(10, 100),
    "r": _int_in(1, 40),
    "repeat": _int_in(1, 40),
    "sref": _any,
    "cref": _any,
    "oref": _any,
    "sw": _int_in(0, 1000),
    "cw": _int_in(0, 100),
    "ow": _int_in(1, 1000),
    "sv": _any,
    "exp": _int_in(0, 100),
    "motion": _one_of("low", "high"),
    "zoom": _float_in(1, 2),
    "bs": _one_of("1", "2", "4"),
    "profile": None,
    "p": None,
    "personalize": None,
    "tile": None,
    "raw": None,
    "relax": None,
    "fast": None,
    "turbo": None,
    "draft": None,
    "video": None,
    "loop": None,
    "end": _any,
    "hd": None,
    "test": None,
    "testp": None,
    "uplight": None,
    "upbeta": None,
    "public": None,
    "stealth": None,
}


@dataclass(frozen=True)
class PromptProblem:
    """Why Midjourney refuses a prompt: the title and description of its error embed."""

    title: str
    description: str


def normalise(prompt: str) -> str:
    """Dash and whitespace clean-up, as Midjourney applies before anything else."""
    return " ".join(_DASHES.sub("--", prompt).split())


def parameters(prompt: str) -> list[tuple[str, str]]:
    """The `--name value` pairs of a (normalised) prompt, in order; a flag has an empty value."""
    found: list[tuple[str, str]] = []
    for chunk in re.split(r"(?:^|\s)--(?=\S)", normalise(prompt))[1:]:
        name, _, value = chunk.partition(" ")
        found.append((name.lower(), value.strip()))
    return found


def text_part(prompt: str) -> str:
    """The prompt without its parameters and image URLs (what a filename slug is made of)."""
    head = re.split(r"(?:^|\s)--(?=\S)", normalise(prompt))[0]
    return " ".join(word for word in head.split() if not _URL.match(word) and not word.startswith("<http"))


def check(prompt: str, banned_words: Iterable[str]) -> PromptProblem | None:
    """The error Midjourney would answer this prompt with, or None when it would run it."""
    clean = normalise(prompt)
    if not text_part(clean) and not clean.startswith("http"):
        return PromptProblem("Empty prompt", "Your prompt appears to be empty. Please add some text and try again.")
    lowered = clean.lower()
    for word in banned_words:
        if word and re.search(rf"\b{re.escape(word.lower())}\b", lowered):
            return PromptProblem(
                "Banned prompt detected",
                "Sorry! Our AI moderator thinks this prompt is probably against our community standards.\n\n"
                "Please review our current community standards:\n\n"
                "Click here for the full community standards: "
                "https://docs.midjourney.com/docs/community-guidelines",
            )
    if any(name == "video" for name, _ in parameters(clean)) and not clean.startswith("http"):
        return PromptProblem("Invalid parameter", "A video prompt needs a starting image: put an image URL first.")
    unknown = [name for name, _ in parameters(clean) if name not in _PARAMETERS]
    if unknown:
        listed = ", ".join(f"`--{name}`" for name in unknown)
        return PromptProblem("Invalid parameter", f"Unrecognized parameter(s): {listed}")
    for name, value in parameters(clean):
        validator = _PARAMETERS[name]
        if validator is None:
            continue
        first = value.split(" ")[0] if name not in ("no", "style", "sref", "cref", "oref", "sv", "end") else value
        if not validator(first):
            shown = first or "(nothing)"
            return PromptProblem("Invalid parameter", f"Invalid value for `--{name}`: `{shown}`")
    return None


def echo(prompt: str) -> str:
    """The prompt as the bot writes it between `**…**` in its messages."""
    words = normalise(prompt).split(" ")
    # Leading image URLs are replaced by Midjourney's own short links.
    for position, word in enumerate(words):
        if not _URL.match(word):
            break
        words[position] = f"<https://s.mj.run/{short_code()}>"
    rewritten = _PROFILE.sub(lambda m: f"{m.group(1)} {_profile_code(m.group(2))}", " ".join(words))
    names = {name for name, _ in parameters(rewritten)}
    if "video" in names:
        # A video's echo drops the --no clause (protocol.md §7) and names the video model.
        rewritten = re.sub(r"(?:^|\s)--no\s+(?:(?!--)\S+\s*)*", " ", rewritten).strip()
        rewritten = re.sub(r"--video(?=\s|$)(?!\s+\d)", "--video 1", rewritten)
    elif not names & {"v", "version", "niji"}:
        rewritten = f"{rewritten} {DEFAULT_VERSION_SUFFIX}".strip()
    return rewritten


# --p / --profile / --personalize with its codes (or none: the user's default profile).
_PROFILE = re.compile(r"(--(?:p|profile|personalize))((?:\s+(?!--)[A-Za-z0-9_-]+)*)(?=\s|$)", re.IGNORECASE)


def _profile_code(codes: str) -> str:
    """Midjourney echoes a profile by a code of its own (not the one typed): the default profile is `m7`-something,
    and every code given is echoed rewritten."""
    given = codes.split()
    if not given:
        return "m7294758923411"
    return " ".join(f"m{int(hashlib.sha256(code.encode()).hexdigest()[:10], 16)}" for code in given)


def video_echo(prompt: str, motion: str) -> str:
    """The echo of an Animate job made from an image's echo: its --no clause gone, the motion and video model
    named (`**<prompt> --motion high --video 1**`)."""
    kept = re.sub(r"(?:^|\s)--no\s+(?:(?!--)\S+\s*)*", " ", prompt).strip()
    if not any(name == "motion" for name, _ in parameters(kept)):
        kept = f"{kept} --motion {motion}"
    return kept if is_video(kept) else f"{kept} --video 1"


def video_count(prompt: str) -> int:
    """How many videos a video job makes (--bs 1, 2 or 4; four by default)."""
    for name, value in parameters(prompt):
        if name == "bs" and value.split(" ")[0] in ("1", "2", "4"):
            return int(value.split(" ")[0])
    return 4


def is_video(prompt: str) -> bool:
    """Whether a prompt asks for a video (an image prompt with --video)."""
    return any(name == "video" for name, _ in parameters(prompt))


def mode_override(prompt: str) -> str | None:
    """`fast`, `relax` or `turbo` when the prompt forces a speed with a parameter."""
    names = [name for name, _ in parameters(prompt)]
    for name in ("turbo", "fast", "relax"):
        if name in names:
            return name
    return None


def model_family(prompt: str) -> str:
    """The model that renders a prompt, as far as the button set goes: `v7`, `v6r1`, `v6` or `v5`."""
    version = "7"
    for name, value in parameters(prompt):
        if name in ("v", "version"):
            version = value.split(" ")[0]
        elif name == "niji":
            version = "6"
    if version.startswith("8"):
        return "v8"
    if version.startswith("7"):
        return "v7"
    if version == "6.1":
        return "v6r1"
    if version.startswith("6"):
        return "v6"
    return "v5"


def slug(prompt: str, limit: int = 60) -> str:
    """The prompt part of a result filename: `Sea, waves, realistic.` -> `Sea_waves_realistic.`."""
    underscored = "_".join(text_part(prompt).split())
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "", underscored)
    return re.sub(r"_+", "_", cleaned).strip("_")[:limit]


def filename_user(username: str) -> str:
    """The user part of a result filename (`Alex Poloz` -> `Alex_Poloz`)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "", "_".join(username.split())) or "user"
