"""The prompt check: Midjourney's parameters read and validated before anything is sent.

A malformed parameter costs a round trip to Midjourney ("Invalid parameter") and, for an agent, a wasted
turn. `check_prompt` refuses the clear mistakes locally, each with what is wrong, why, and a corrected
example; anything it is unsure of (a parameter it does not know, a value one model version may refuse)
passes with a warning, because Midjourney adds parameters faster than any table learns them.

The knowledge is data (params_table.py reads `params.json` into a `ParamTable`); {a, b} permutations are
expanded and counted by params_permutations.py. Pure: the table is read once; a check does no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches

from .params_permutations import count_permutations, expand_permutations
from .params_table import (
    NUMBER_RE,
    VERSION_RE,
    ParamSpec,
    ParamTable,
    ParamValue,
    ValueRule,
    choice_key,
    default_table,
    format_number,
    load_table,
    within_rule,
)

__all__ = ["ParamSpec", "ParamTable", "PromptCheck", "ValueRule", "check_prompt", "default_table", "load_table"]


@dataclass(frozen=True)
class PromptCheck:
    """The verdict on one prompt."""

    ok: bool  # False when there is at least one error
    errors: list[str]  # each says what is wrong, why, and gives a corrected example
    warnings: list[str]  # unknown or deprecated parameters, values one model may refuse, cost notes
    params: dict[str, ParamValue]  # canonical name -> value as written (True for a flag, a list for lists)
    text: str  # the prompt text without image URLs and parameters
    image_urls: list[str]  # the leading image prompt URLs
    jobs: int = 1  # how many jobs Midjourney will run: --repeat times {a, b} permutations


# A parameter starts a whitespace-separated word: "--name", or the long dash a phone types for "--".
# The name must start with a letter, so "-5", "--" and "—" alone stay text.
_PARAM_RE = re.compile(r"(?:--|[\u2013\u2014]-?|-[\u2013\u2014])([A-Za-z]\S*)\Z")
_DASHES = frozenset("-\u2013\u2014")
_URL_RE = re.compile(r"https?://[^\s/?#<>]+\S*\Z", re.IGNORECASE)
_INT_RE = re.compile(r"\d+\Z")
_RATIO_RE = re.compile(r"(\d+):(\d+)\Z")
_WEIGHT_RE = re.compile(r"::-?\d*\.?\d+\Z")


def check_prompt(prompt: str, table: ParamTable | None = None) -> PromptCheck:
    """Check a Midjourney prompt without sending it: the verdict, the parameters, the text and image URLs."""
    return _Check(prompt, table or default_table()).run()


def _is_param(token: str) -> re.Match[str] | None:
    # The first-character test keeps the common case (a plain word) away from the regex.
    return _PARAM_RE.match(token) if token[0] in _DASHES else None


class _Check:
    """One run of the checker; collects errors and warnings as it reads the prompt left to right."""

    def __init__(self, prompt: str, table: ParamTable) -> None:
        self.prompt = prompt
        self.table = table
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.params: dict[str, ParamValue] = {}
        self.shown: dict[str, str] = {}  # canonical name -> the parameter as the user wrote it

    def run(self) -> PromptCheck:
        tokens = self.prompt.split()
        count = len(tokens)
        at = 0
        image_urls: list[str] = []
        while at < count and _URL_RE.match(url := tokens[at].strip("<>")):
            image_urls.append(url)
            at += 1
        words: list[str] = []
        while at < count and not _is_param(tokens[at]):
            if tokens[at] == "--":
                self.warnings.append("a lone '--' is read as text; write parameters as --name value, e.g. --ar 3:2")
            words.append(tokens[at])
            at += 1
        while at < count:
            match = _is_param(tokens[at])
            assert match is not None  # the loops above stop only on a parameter
            at += 1
            start = at
            while at < count and not _is_param(tokens[at]):
                at += 1
            self._param(match.group(1), tokens[start:at])
        text = " ".join(words)
        self._after(text, image_urls)
        jobs = self._jobs()
        return PromptCheck(not self.errors, self.errors, self.warnings, self.params, text, image_urls, jobs)

    # -- one parameter -------------------------------------------------------------------------------

    def _param(self, written: str, values: list[str]) -> None:
        key = written.lower()
        shown = " ".join([f"--{written}", *values])
        spec = self.table.names.get(key)
        if spec is None:
            self._unknown(written, key, values)
            return
        if spec.name in self.shown:
            self.errors.append(
                f"{self.shown[spec.name]} and {shown}: --{spec.name} is given twice (aliases count) and Midjourney "
                f"refuses a repeated parameter; keep one, e.g. {shown}"
            )
            return
        self.shown[spec.name] = shown
        if spec.deprecated:
            self.warnings.append(f"{shown}: {spec.deprecated}; Midjourney may reject it")
        raw = " ".join(values)
        if spec.kind != "list" and "{" in raw:
            # A permutation such as --ar {16:9, 1:1}: every alternative must be valid on its own.
            for variant in expand_permutations(raw):
                self._value(spec, written, variant.split())
            self.params[spec.name] = raw
            return
        value = self._value(spec, written, values)
        if value is not None:
            self.params[spec.name] = value

    def _unknown(self, written: str, key: str, values: list[str]) -> None:
        glued = self._glued(key)
        if glued is not None:
            name, value = glued
            self.errors.append(
                f"--{written}: Midjourney needs a space between a parameter and its value, e.g. --{name} {value}"
            )
            return
        if key in self.params:
            return
        close = get_close_matches(key, list(self.table.names), n=1, cutoff=0.75)
        hint = f" (did you mean --{close[0]}?)" if close else ""
        self.warnings.append(f"--{written} is not a parameter this server knows; Midjourney may reject it{hint}")
        self.params[key] = " ".join(values) or True

    def _glued(self, key: str) -> tuple[str, str] | None:
        """("v", "6") for "--v6": a known name with its value stuck to it (longest name first)."""
        for cut in range(len(key) - 1, 0, -1):
            head, tail = key[:cut], key[cut:]
            if head in self.table.names and (tail[0].isdigit() or tail[0] in "=:."):
                value = tail.lstrip("=:")
                return (head, value) if value else None
        return None

    def _value(self, spec: ParamSpec, written: str, values: list[str]) -> ParamValue | None:
        flag = f"--{written}"
        if spec.kind == "flag":
            if values:
                self._trailing(flag, "", values, f"{flag} is a switch and takes no value")
            return True
        if spec.kind == "list":
            items = [item.strip() for item in " ".join(values).split(",")]
            items = [item for item in items if item]
            if not items:
                self.errors.append(f"{flag}: needs the things to leave out, e.g. {flag} {spec.example}")
            return items
        if spec.kind == "refs":
            return self._refs(spec, flag, values)
        if spec.kind == "codes":
            for code in values:
                if spec.pattern is not None and not spec.pattern.match(code):
                    self.errors.append(
                        f"{flag} {code}: '{code}' is not one of the {spec.pattern_hint}; write {flag} alone for "
                        f"your default profile, or name codes, e.g. {flag} {spec.example}"
                    )
            return list(values) if values else True
        # One value: int, number, choice, ratio, version or token.
        if not values:
            if not spec.optional:
                self.errors.append(f"{flag}: needs a value ({spec.about}), e.g. {flag} {spec.example}")
            return True if spec.optional else None
        value, rest = values[0], values[1:]
        if spec.optional and not (value[0].isdigit() or value[0] == "."):
            self._trailing(flag, "", values, f"{flag} takes no word value")
            return True
        self._single(spec, flag, value)
        if rest:
            self._trailing(flag, value, rest, f"{flag} takes one value")
        return value

    def _single(self, spec: ParamSpec, flag: str, value: str) -> None:
        rule, shown = spec.rule, f"{flag} {value}"
        if spec.kind == "ratio":
            match = _RATIO_RE.match(value)
            if match is None or int(match.group(1)) == 0 or int(match.group(2)) == 0:
                self.errors.append(
                    f"{shown}: aspect ratio must be W:H with whole numbers above 0, e.g. {flag} {_ratio_hint(value)}"
                )
        elif spec.kind in ("int", "number"):
            pattern, what = (_INT_RE, "a whole number") if spec.kind == "int" else (NUMBER_RE, "a number")
            assert rule.minimum is not None and rule.maximum is not None  # load_table guarantees both
            span = f"from {format_number(rule.minimum)} to {format_number(rule.maximum)}"
            if not pattern.match(value):
                self.errors.append(f"{shown}: {flag} must be {what} {span} ({spec.about}), e.g. {flag} {spec.example}")
            elif not rule.minimum <= float(value) <= rule.maximum:
                near = rule.minimum if float(value) < rule.minimum else rule.maximum
                self.errors.append(
                    f"{shown}: out of range; {flag} goes {span} ({spec.about}), e.g. {flag} {format_number(near)}"
                )
        elif spec.kind in ("choice", "version"):
            self._choice(spec, flag, value)
        elif spec.kind == "token":
            low = value.lower()
            if low not in spec.known and (spec.pattern is None or not spec.pattern.match(value)):
                names = ", ".join(spec.known)
                self.errors.append(
                    f"{shown}: {flag} accepts {names} or {spec.pattern_hint}; describe a look such as '{value}' "
                    f"in the prompt text instead, e.g. '… {value} {flag} {spec.example}'"
                )

    def _choice(self, spec: ParamSpec, flag: str, value: str) -> None:
        choices = spec.rule.choices
        if choice_key(value) in {choice_key(c) for c in choices}:
            return
        numeric = [float(c) for c in choices if NUMBER_RE.match(c)]
        if spec.open_above and numeric and NUMBER_RE.match(value) and float(value) > max(numeric):
            self.warnings.append(
                f"{flag} {value}: newer than the values this server knows (up to {format_number(max(numeric))}); "
                "sent as written, Midjourney decides"
            )
            return
        listed = ", ".join(
            dict.fromkeys(format_number(float(c)) if c in ("5.0", "6.0", "7.0", "8.0") else c for c in choices)
        )
        self.errors.append(f"{flag} {value}: {flag} accepts {listed} ({spec.about}), e.g. {flag} {spec.example}")

    def _refs(self, spec: ParamSpec, flag: str, values: list[str]) -> ParamValue | None:
        accepts = "http(s) image URLs" + (f", {spec.code_hint}" if spec.codes else "")
        example = f"{flag} {spec.example}" + (f" or {flag} {spec.code_example}" if spec.code_example else "")
        if not values:
            self.errors.append(f"{flag}: needs {accepts}, e.g. {example}")
            return None
        if not spec.multiple and len(values) > 1:
            self.errors.append(f"{flag} {' '.join(values)}: {flag} takes one image URL, e.g. {example}")
        for ref in values:
            bare = _WEIGHT_RE.sub("", ref.strip("<>")) if spec.multiple else ref.strip("<>")
            if _URL_RE.match(bare) or (spec.codes is not None and spec.codes.match(bare.lower())):
                continue
            if "://" in bare or bare.lower().startswith(("www.", "file:", "data:", "/", "c:\\")):
                why = "not an http(s) URL, and Midjourney downloads references over http(s) only"
            else:
                why = f"'{bare}' is not an image URL" + (f" nor one of the {spec.code_hint}" if spec.codes else "")
            self.errors.append(f"{flag} {ref}: {why}; {flag} takes {accepts}, e.g. {example}")
        return list(values) if spec.multiple else values[0]

    def _trailing(self, flag: str, value: str, rest: list[str], why: str) -> None:
        words = " ".join(rest)
        head = f"{flag} {value}".strip()
        self.errors.append(
            f"{head} {words}: {why}, and Midjourney reads parameters only at the end of the prompt; move "
            f"'{words}' before the parameters, e.g. '… {words} {head}'"
        )

    # -- the prompt as a whole -----------------------------------------------------------------------

    def _after(self, text: str, image_urls: list[str]) -> None:
        table = self.table
        if len(self.prompt) > table.max_prompt_chars:
            self.errors.append(
                f"the prompt is {len(self.prompt)} characters and Discord accepts at most {table.max_prompt_chars}; "
                "shorten the description (Midjourney weighs the first words most anyway)"
            )
        if not text:
            if not image_urls:
                self.errors.append(
                    "the prompt has no text: describe the image you want, "
                    "e.g. 'a red fox in fresh snow, soft morning light --ar 3:2'"
                )
            elif len(image_urls) == 1 and not any(table.specs[name].requires_image for name in self.shown):
                self.errors.append(
                    "one image URL and no text: an image prompt needs a description too, or a second image to "
                    f"blend with, e.g. '{image_urls[0]} the same scene as a watercolour painting'"
                )
            for name in self.shown:
                if table.specs[name].requires_text:
                    self.errors.append(
                        f"{self.shown[name]}: --{name} applies to prompts with text only; add a description, "
                        f"e.g. 'a lighthouse at dusk {self.shown[name]}'"
                    )
        for name, shown in self.shown.items():
            self._requirements(table.specs[name], shown, image_urls)
        for names, why in table.exclusive:
            present = [self.shown[n] for n in names if n in self.shown]
            if len(present) > 1:
                self.errors.append(f"{' and '.join(present)} together: {why}; keep one, e.g. {present[0]}")
        self._models()

    def _requirements(self, spec: ParamSpec, shown: str, image_urls: list[str]) -> None:
        """Errors for a parameter that needs another one (--motion needs --video) or a leading image (--video)."""
        if spec.requires_image and not image_urls:
            self.errors.append(
                f"{shown}: --{spec.name} animates an image: start the prompt with an image URL (or pass a local "
                f"file in images), e.g. 'https://example.com/start.png waves roll in {shown}'"
            )
        for needed in spec.requires:
            if needed in self.shown:
                continue
            other = self.table.specs[needed]
            add = f"--{needed} {other.example}".strip() if other.kind != "flag" else f"--{needed}"
            start = "https://example.com/start.png waves roll in" if other.requires_image else "a lighthouse at dusk"
            self.errors.append(
                f"{shown}: --{spec.name} works only with --{needed} ({re.split(r' ?[:(,]', other.about)[0]}); add it, "
                f"e.g. '{start} {add} {shown}'"
            )

    def _models(self) -> None:
        """Warnings for what the model named in the prompt may refuse (nothing to say when none is named)."""
        model = _model(self.params)
        if model is None:
            return
        full, family, named = model[0], model[1], self.shown.get("version") or self.shown.get("niji", "")
        for name, value in self.params.items():
            spec = self.table.specs.get(name)
            if spec is None:
                continue
            if spec.models and full not in spec.models and family not in spec.models:
                self.warnings.append(
                    f"{self.shown[name]}: works with {', '.join(spec.models)}; with {named} Midjourney may refuse "
                    "or ignore it"
                )
            if not isinstance(value, str) or "{" in value:
                continue
            rule = spec.by_model.get(full) or spec.by_model.get(family)
            if rule is not None and not within_rule(rule, value):
                allowed = (
                    ", ".join(rule.choices)
                    or f"{format_number(rule.minimum or 0)} to {format_number(rule.maximum or 0)}"
                )
                self.warnings.append(f"{self.shown[name]}: with {named} it accepts {allowed}; Midjourney may refuse it")
            where = spec.known.get(value.lower()) if spec.kind == "token" else None
            if where and full not in where and family not in where:
                self.warnings.append(
                    f"{self.shown[name]}: this style is for {', '.join(where)}; with {named} Midjourney may refuse it"
                )

    def _jobs(self) -> int:
        variants = count_permutations(self.prompt) if "{" in self.prompt else 1
        jobs, parts = variants, [f"{variants} permutations"] if variants > 1 else []
        for name, value in self.params.items():
            spec = self.table.specs.get(name)
            if spec is None or not spec.multiplies_jobs or not isinstance(value, str) or not value.isdigit():
                continue
            times = int(value)
            if times > 1 and within_rule(spec.rule, value):  # an out-of-range value is already an error
                jobs *= times
                parts.append(self.shown[name])
        if jobs > 1:
            self.warnings.append(
                f"this prompt runs {jobs} jobs ({' × '.join(parts)}); each uses GPU time and counts against the budget"
            )
        if jobs > self.table.max_jobs:
            self.errors.append(
                f"this prompt would run {jobs} jobs and Midjourney allows at most {self.table.max_jobs} from one "
                "prompt; use fewer {a, b} options or a smaller --repeat"
            )
        return jobs


def _model(params: Mapping[str, ParamValue]) -> tuple[str, str] | None:
    """("v6.1", "v6") or ("niji 6", "niji 6") for the model the prompt names; None when it names none."""
    version, niji = params.get("version"), params.get("niji")
    if isinstance(version, str) and VERSION_RE.match(version):
        number = version.removesuffix(".0")
        return f"v{number}", f"v{number.split('.')[0]}"
    if isinstance(niji, str) and VERSION_RE.match(niji):
        name = f"niji {niji.split('.')[0]}"
        return name, name
    return None


def _ratio_hint(value: str) -> str:
    """A W:H close to what was meant: "16/9" -> "16:9", "1.5:1" -> "3:2"; "16:9" when nothing is recognisable."""
    numbers = re.findall(r"\d+(?:\.\d+)?", value)
    if len(numbers) != 2:
        return "16:9"
    scale = 10 ** max(len(n.partition(".")[2]) for n in numbers)
    width, height = (round(float(n) * scale) for n in numbers)
    if width <= 0 or height <= 0:
        return "16:9"
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"
