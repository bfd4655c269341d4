"""Midjourney's permutation prompts: ``a {red, blue} bird`` stands for two prompts, nested groups multiply.

Pure text functions the prompt check (params.py) uses to validate each alternative and count the jobs.
"""

from __future__ import annotations

__all__ = ["MAX_VARIANTS", "count_permutations", "expand_permutations"]

MAX_VARIANTS = 10_000


def expand_permutations(text: str, limit: int = 64) -> list[str]:
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
                    out.extend(expand_permutations(head + option.strip() + tail, limit))
                    if len(out) >= limit:
                        break
                return out[:limit]
        elif char == "," and depth == 1:
            options.append(text[cut:at])
            cut = at + 1
    return [text]  # an unclosed brace is plain text


def count_permutations(text: str) -> int:
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
                count = min(count * inner, MAX_VARIANTS)
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
