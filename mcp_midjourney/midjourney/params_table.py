"""The parameter table behind the prompt check: `params.json` read into `ParamSpec`s, and how values compare.

The knowledge is data: `params.json` beside this module lists names, aliases, value kinds, ranges and the
models where they differ. `load_table` checks that structure (a ValueError names the entry that is wrong);
`default_table` reads the shipped file once. The checker itself is `params.check_prompt`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["ParamSpec", "ParamTable", "ParamValue", "ValueRule", "default_table", "load_table"]

ParamValue = str | bool | list[str]


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
    requires: tuple[str, ...] = ()  # parameters that must come with this one (--motion needs --video)
    requires_image: bool = False  # the prompt must start with an image (--video animates it)
    multiplies_jobs: bool = False


@dataclass(frozen=True)
class ParamTable:
    """The whole table, indexed by every name and alias."""

    specs: Mapping[str, ParamSpec]  # canonical name -> spec
    names: Mapping[str, ParamSpec]  # every name and alias (lower case) -> spec
    exclusive: tuple[tuple[tuple[str, ...], str], ...]  # (canonical names, why) of which at most one may appear
    max_prompt_chars: int = 6000
    max_jobs: int = 40


KINDS = frozenset({"flag", "int", "number", "choice", "ratio", "version", "list", "refs", "codes", "token"})
NUMBER_RE = re.compile(r"\d*\.?\d+\Z")
VERSION_RE = re.compile(r"\d+(?:\.\d+)?\Z")


def choice_key(value: str) -> str:
    """A choice's comparison key: ".5", "0.5" and "0.50" are one value; words compare case-insensitively."""
    if NUMBER_RE.match(value):
        return repr(float(value))
    return value.lower()


def format_number(number: float) -> str:
    """6.0 -> "6", 0.5 -> "0.5": a bound or a choice as a person writes it."""
    return str(int(number)) if number == int(number) else f"{number:g}"


def within_rule(rule: ValueRule, value: str) -> bool:
    """Whether `value` is one of the rule's choices or inside its range (a malformed number counts as inside)."""
    if rule.choices:
        return choice_key(value) in {choice_key(c) for c in rule.choices}
    if not NUMBER_RE.match(value):
        return True  # already reported as malformed
    low = -math.inf if rule.minimum is None else rule.minimum
    high = math.inf if rule.maximum is None else rule.maximum
    return low <= float(value) <= high


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
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {sorted(KINDS)}, got {kind!r}")
    rule = _rule(raw, where)
    if kind in ("int", "number") and (rule.minimum is None or rule.maximum is None):
        raise ValueError(f"{where}: an {kind} needs min and max")
    if kind in ("choice", "version") and not rule.choices:
        raise ValueError(f"{where}: a {kind} needs choices")
    if kind == "version" and not all(VERSION_RE.match(c) for c in rule.choices):
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
        requires=tuple(raw.get("requires", ())),
        requires_image=bool(raw.get("requires_image", False)),
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
    for spec in specs.values():
        if any(name not in specs for name in spec.requires):
            raise ValueError(f"params.json parameter {spec.name!r} requires unknown parameters {list(spec.requires)}")
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
