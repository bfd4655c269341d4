"""The prompt check: Midjourney's parameters read and validated before anything is sent.

A malformed parameter costs a round trip to Midjourney ("Invalid parameter") and, for an agent, a wasted
turn. `check_prompt` refuses the clear mistakes locally, each with what is wrong, why, and a corrected
example; anything it is unsure of (a parameter it does not know, a value one model version may refuse)
passes with a warning, because Midjourney adds parameters faster than any table learns them.

The knowledge is data: `params.json` beside this module lists names, aliases, value kinds, ranges and
the models where they differ. Pure: the table is read once; a check does no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["ParamSpec", "ParamTable", "PromptCheck", "ValueRule", "check_prompt", "default_table", "load_table"]

ParamValue = str | bool | list[str]


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


@dataclass(frozen=True, slots=True)
class ValueRule:
    """Bounds of a value: a numeric range, or a set of choices."""

    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter of the table (see the notes in params.json for what each field means)."""

    name: str
    kind: str
    about: str
    aliases: tuple[str, ...] = ()
    example: str = ""
    rule: ValueRule = ValueRule()
    optional: bool = False
    multiple: bool = False
    open_above: bool = False
    codes: re.Pattern[str] | None = None
    code_hint: str = ""
    code_example: str = ""
    pattern: re.Pattern[str] | None = None
    pattern_hint: str = ""
    known: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    by_model: Mapping[str, ValueRule] = field(default_factory=dict)
    deprecated: str | None = None
    requires_text: bool = False
    multiplies_jobs: bool = False


@dataclass(frozen=True)
class ParamTable:
    """The whole table, indexed by every name and alias."""

    specs: Mapping[str, ParamSpec]  # canonical name -> spec
    names: Mapping[str, ParamSpec]  # every name and alias (lower case) -> spec
    exclusive: tuple[tuple[tuple[str, ...], str], ...]  # (canonical names, why) of which at most one may appear
    max_prompt_chars: int = 6000
    max_jobs: int = 40


_KINDS = frozenset({"flag", "int", "number", "choice", "ratio", "version", "list", "refs", "codes", "token"})
_SINGLE = frozenset({"int", "number", "choice", "ratio", "version", "token"})

# A parameter starts a whitespace-separated word: "--name", or the long dash a phone types for "--".
# The name must start with a letter, so "-5", "--" and "—" alone stay text.
_PARAM_RE = re.compile(r"(?:--|[\u2013\u2014]-?|-[\u2013\u2014])([A-Za-z]\S*)\Z")
_DASHES = frozenset("-\u2013\u2014")
_URL_RE = re.compile(r"https?://[^\s/?#<>]+\S*\Z", re.IGNORECASE)
_INT_RE = re.compile(r"\d+\Z")
_NUMBER_RE = re.compile(r"\d*\.?\d+\Z")
_VERSION_RE = re.compile(r"\d+(?:\.\d+)?\Z")
_RATIO_RE = re.compile(r"(\d+):(\d+)\Z")
_WEIGHT_RE = re.compile(r"::-?\d*\.?\d+\Z")
_MAX_VARIANTS = 10_000


def _num_key(value: str) -> str:
    """A choice's comparison key: ".5", "0.5" and "0.50" are one value; words compare case-insensitively."""
    if _NUMBER_RE.match(value):
        return repr(float(value))
    return value.lower()


def _fmt(number: float) -> str:
    return str(int(number)) if number == int(number) else f"{number:g}"


def _rule(raw: Mapping[str, Any], where: str) -> ValueRule:
    choices = raw.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise ValueError(f"{where}: choices must be a list of strings")
    low, high = raw.get("min"), raw.get("max")
    for bound in (low, high):
        if bound is not None and (not isinstance(bound, int | float) or isinstance(bound, bool)):
            raise ValueError(f"{where}: min and max must be numbers")
    return ValueRule(low, high, tuple(choices))


def _spec(name: str, raw: Mapping[str, Any]) -> ParamSpec:
    where = f"params.json parameter {name!r}"
    kind = raw.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"{where}: kind must be one of {sorted(_KINDS)}, got {kind!r}")
    rule = _rule(raw, where)
    if kind in ("int", "number") and (rule.minimum is None or rule.maximum is None):
        raise ValueError(f"{where}: an {kind} needs min and max")
    if kind in ("choice", "version") and not rule.choices:
        raise ValueError(f"{where}: a {kind} needs choices")
    if kind == "version" and not all(_VERSION_RE.match(c) for c in rule.choices):
        raise ValueError(f"{where}: versions must be numbers like 6 or 6.1")
    by_model = raw.get("by_model", {})
    codes, pattern = raw.get("codes"), raw.get("pattern")
    return ParamSpec(
        name=name,
        kind=kind,
        about=str(raw.get("about", "")),
        aliases=tuple(raw.get("aliases", ())),
        example=str(raw.get("example", "")),
        rule=rule,
        optional=bool(raw.get("optional", False)),
        multiple=bool(raw.get("multiple", False)),
        open_above=bool(raw.get("open_above", False)),
        codes=re.compile(codes) if codes else None,
        code_hint=str(raw.get("code_hint", "")),
        code_example=str(raw.get("code_example", "")),
        pattern=re.compile(pattern) if pattern else None,
        pattern_hint=str(raw.get("pattern_hint", "")),
        known={str(k).lower(): tuple(v) for k, v in raw.get("known", {}).items()},
        models=tuple(raw.get("models", ())),
        by_model={m: _rule(r, f"{where} by_model {m!r}") for m, r in by_model.items()},
        deprecated=raw.get("deprecated"),
        requires_text=bool(raw.get("requires_text", False)),
        multiplies_jobs=bool(raw.get("multiplies_jobs", False)),
    )


def load_table(data: Mapping[str, Any]) -> ParamTable:
    """Build a table from params.json's structure; a ValueError names the entry that is wrong."""
    specs: dict[str, ParamSpec] = {}
    names: dict[str, ParamSpec] = {}
    for name, raw in data["parameters"].items():
        spec = _spec(name, raw)
        specs[name] = spec
        for alias in (name, *spec.aliases):
            if alias.lower() in names:
                raise ValueError(f"params.json: the name --{alias} belongs to two parameters")
            names[alias.lower()] = spec
    exclusive = []
    for group in data.get("exclusive", []):
        unknown = [n for n in group["names"] if n not in specs]
        if unknown:
            raise ValueError(f"params.json exclusive group names unknown parameters {unknown}")
        exclusive.append((tuple(group["names"]), str(group["why"])))
    return ParamTable(
        specs=specs,
        names=names,
        exclusive=tuple(exclusive),
        max_prompt_chars=int(data.get("max_prompt_chars", 6000)),
        max_jobs=int(data.get("max_jobs", 40)),
    )


@cache
def default_table() -> ParamTable:
    """The table shipped with the package, read once."""
    text = resources.files("mcp_midjourney.midjourney").joinpath("params.json").read_text(encoding="utf-8")
    return load_table(json.loads(text))


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
            for variant in _expand(raw):
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
            pattern, what = (_INT_RE, "a whole number") if spec.kind == "int" else (_NUMBER_RE, "a number")
            assert rule.minimum is not None and rule.maximum is not None  # load_table guarantees both
            span = f"from {_fmt(rule.minimum)} to {_fmt(rule.maximum)}"
            if not pattern.match(value):
                self.errors.append(f"{shown}: {flag} must be {what} {span} ({spec.about}), e.g. {flag} {spec.example}")
            elif not rule.minimum <= float(value) <= rule.maximum:
                near = rule.minimum if float(value) < rule.minimum else rule.maximum
                self.errors.append(
                    f"{shown}: out of range; {flag} goes {span} ({spec.about}), e.g. {flag} {_fmt(near)}"
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
        if _num_key(value) in {_num_key(c) for c in choices}:
            return
        numeric = [float(c) for c in choices if _NUMBER_RE.match(c)]
        if spec.open_above and numeric and _NUMBER_RE.match(value) and float(value) > max(numeric):
            self.warnings.append(
                f"{flag} {value}: newer than the values this server knows (up to {_fmt(max(numeric))}); "
                "sent as written, Midjourney decides"
            )
            return
        listed = ", ".join(dict.fromkeys(_fmt(float(c)) if c in ("5.0", "6.0", "7.0", "8.0") else c for c in choices))
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
            elif len(image_urls) == 1:
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
        for names, why in table.exclusive:
            present = [self.shown[n] for n in names if n in self.shown]
            if len(present) > 1:
                self.errors.append(f"{' and '.join(present)} together: {why}; keep one, e.g. {present[0]}")
        self._models()

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
            if rule is not None and not _within(rule, value):
                allowed = ", ".join(rule.choices) or f"{_fmt(rule.minimum or 0)} to {_fmt(rule.maximum or 0)}"
                self.warnings.append(f"{self.shown[name]}: with {named} it accepts {allowed}; Midjourney may refuse it")
            where = spec.known.get(value.lower()) if spec.kind == "token" else None
            if where and full not in where and family not in where:
                self.warnings.append(
                    f"{self.shown[name]}: this style is for {', '.join(where)}; with {named} Midjourney may refuse it"
                )

    def _jobs(self) -> int:
        variants = _count_variants(self.prompt) if "{" in self.prompt else 1
        jobs, parts = variants, [f"{variants} permutations"] if variants > 1 else []
        for name, value in self.params.items():
            spec = self.table.specs.get(name)
            if spec is None or not spec.multiplies_jobs or not isinstance(value, str) or not value.isdigit():
                continue
            times = int(value)
            if times > 1 and _within(spec.rule, value):  # an out-of-range value is already an error
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
    if isinstance(version, str) and _VERSION_RE.match(version):
        number = version.removesuffix(".0")
        return f"v{number}", f"v{number.split('.')[0]}"
    if isinstance(niji, str) and _VERSION_RE.match(niji):
        name = f"niji {niji.split('.')[0]}"
        return name, name
    return None


def _within(rule: ValueRule, value: str) -> bool:
    if rule.choices:
        return _num_key(value) in {_num_key(c) for c in rule.choices}
    if not _NUMBER_RE.match(value):
        return True  # already reported as malformed
    low = -math.inf if rule.minimum is None else rule.minimum
    high = math.inf if rule.maximum is None else rule.maximum
    return low <= float(value) <= high


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


def _expand(text: str, limit: int = 64) -> list[str]:
    """The prompts a {a, b} permutation stands for (first `limit`); text without braces is itself."""
    start = text.find("{")
    if start < 0:
        return [text]
    depth, cut, options = 0, start + 1, []
    for at in range(start, len(text)):
        char = text[at]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                options.append(text[cut:at])
                head, tail = text[:start], text[at + 1 :]
                out: list[str] = []
                for option in options:
                    out.extend(_expand(head + option.strip() + tail, limit))
                    if len(out) >= limit:
                        break
                return out[:limit]
        elif char == "," and depth == 1:
            options.append(text[cut:at])
            cut = at + 1
    return [text]  # an unclosed brace is plain text


def _count_variants(text: str) -> int:
    """How many prompts the {…} permutations of `text` make (nested groups included), capped."""

    def sequence(at: int, stops: str) -> tuple[int, int]:
        count = 1
        while at < len(text):
            char = text[at]
            if char == "\\":
                at += 2
                continue
            if char in stops:
                break
            if char == "{":
                inner, at = group(at + 1)
                count = min(count * inner, _MAX_VARIANTS)
                continue
            at += 1
        return count, at

    def group(at: int) -> tuple[int, int]:
        total = 0
        while True:
            count, at = sequence(at, ",}")
            total += count
            if at >= len(text):
                return 1, at  # unclosed: plain text
            if text[at] == "}":
                return max(total, 1), at + 1
            at += 1

    return sequence(0, "")[0]
