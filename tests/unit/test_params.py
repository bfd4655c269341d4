"""The prompt check over a table of prompts: the verdict and what each message says."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from mcp_midjourney.midjourney.params import check_prompt, default_table, load_table

# (prompt, ok, fragments every one of which appears in some error, fragments that appear in some warning)
CASES: list[tuple[str, bool, list[str], list[str]]] = [
    # -- valid prompts --------------------------------------------------------------------------------
    ("a red fox in fresh snow", True, [], []),
    ("a red fox in fresh snow --ar 3:2 --s 250 --c 10 --v 7", True, [], []),
    ("portrait of an old fisherman --ar 2:3 --seed 4294967295 --stop 10 --w 3000", True, [], []),
    ("a cat --q .5 --v 6", True, [], []),
    ("a cat --quality 0.5 --version 6.0", True, [], []),
    ("a seamless pattern of ferns --tile --style raw --v 6.1", True, [], []),
    ("a cat --niji 6 --style raw", True, [], []),
    ("a cat --niji", True, [], []),
    ("a knight --sref 1234567890 https://cdn.example.com/s.png::2 random --sw 300 --sv 4", True, [], []),
    ("a knight --cref https://cdn.example.com/face.png --cw 0 --v 6.1", True, [], []),
    ("a knight --oref https://cdn.example.com/knight.png --ow 400 --v 7", True, [], []),
    ("https://cdn.example.com/a.png https://cdn.example.com/b.png", True, [], []),
    ("https://cdn.example.com/a.png a watercolour of this --iw 2.5", True, [], []),
    ("a cat --p", True, [], []),
    ("a cat --profile abc1234 mood5678", True, [], []),
    ("a cat --draft --v 7 --exp 25 --relax", True, [], []),
    ("https://cdn.example.com/j.png a drifting jellyfish --motion high --video 1 --loop --bs 2", True, [], []),
    ("a cat --AR 16:9", True, [], []),
    ("a cat —ar 16:9 —s 50", True, [], []),  # a phone's em dash means --
    ("a cat –v 7", True, [], []),  # and so does an en dash
    ("a cat — sitting on a mat", True, [], []),  # a lone dash is punctuation
    # -- URLs with -- inside are not parameters -----------------------------------------------------
    ("https://x.com/a--b.png a cat in the style of this", True, [], []),
    ("a cat --sref https://x.com/style--v2.png", True, [], []),
    ("<https://s.mj.run/abc--def> a cat", True, [], []),
    # -- --no takes everything up to the next parameter ---------------------------------------------
    ("a busy street --no cars, red trucks --ar 16:9", True, [], []),
    ("a busy street --no", False, ["--no: needs the things to leave out", "e.g. --no text, watermark"], []),
    # -- malformed values ---------------------------------------------------------------------------
    ("a cat --ar 16/9", False, ["--ar 16/9: aspect ratio must be W:H with whole numbers", "e.g. --ar 16:9"], []),
    ("a cat --ar 1.5:1", False, ["--ar 1.5:1: aspect ratio must be W:H", "e.g. --ar 3:2"], []),
    ("a cat --ar 0:1", False, ["--ar 0:1: aspect ratio must be W:H with whole numbers above 0"], []),
    ("a cat --ar", False, ["--ar: needs a value", "e.g. --ar 16:9"], []),
    ("a cat --chaos 150", False, ["--chaos 150: out of range; --chaos goes from 0 to 100", "e.g. --chaos 100"], []),
    ("a cat --s high", False, ["--s high: --s must be a whole number from 0 to 1000", "e.g. --s 250"], []),
    ("a cat --stop 5", False, ["--stop 5: out of range; --stop goes from 10 to 100", "e.g. --stop 10"], []),
    ("a cat --seed -1", False, ["--seed -1: --seed must be a whole number from 0 to 4294967295"], []),
    ("a cat --iw 4", False, ["--iw 4: out of range; --iw goes from 0 to 3", "e.g. --iw 3"], []),
    ("a cat --q 3", False, ["--q 3: --q accepts .25, .5, 1, 2, 4", "e.g. --q 1"], []),
    ("a cat --v 6.5", False, ["--v 6.5: --v accepts 1, 2, 3, 4, 5, 5.1, 5.2, 6, 6.1, 7", "e.g. --v 7"], []),
    ("a cat --motion fast", False, ["--motion fast: --motion accepts low, high"], []),
    ("a cat --r 41", False, ["--r 41: out of range; --r goes from 1 to 40"], []),
    ("a cat --style cinematic", False, ["--style cinematic: --style accepts raw", "describe a look such as"], []),
    ("a cat --p not/a/code", False, ["--p not/a/code: 'not/a/code' is not one of the personalization"], []),
    # -- words after the parameters -----------------------------------------------------------------
    ("a cat --ar 16:9 on a mat", False, ["--ar 16:9 on a mat: --ar takes one value", "move 'on a mat' before"], []),
    ("a cat --tile please", False, ["--tile please: --tile is a switch and takes no value"], []),
    ("--ar 16:9 a cat", False, ["move 'a cat' before the parameters", "the prompt has no text"], []),
    # -- glued values ---------------------------------------------------------------------------------
    ("a cat --v6", False, ["--v6: Midjourney needs a space between a parameter and its value, e.g. --v 6"], []),
    ("a cat --ar=16:9", False, ["e.g. --ar 16:9"], []),
    # -- duplicates, aliases included ---------------------------------------------------------------
    ("a cat --s 100 --stylize 200", False, ["--s 100 and --stylize 200: --stylize is given twice"], []),
    ("a cat --ar 1:1 --aspect 2:3", False, ["--aspect is given twice", "keep one"], []),
    ("a cat --no dogs --no birds", False, ["--no dogs and --no birds: --no is given twice"], []),
    # -- conflicts ----------------------------------------------------------------------------------
    ("a cat --v 7 --niji 6", False, ["--v 7 and --niji 6 together", "a job uses one model"], []),
    ("a cat --fast --relax", False, ["--fast and --relax together: a job runs at one speed; keep one"], []),
    ("a cat --fast --relax --turbo", False, ["--fast and --relax and --turbo together"], []),
    # -- image references ---------------------------------------------------------------------------
    ("a cat --cref ftp://x/face.png", False, ["--cref ftp://x/face.png: not an http(s) URL"], []),
    ("a cat --oref www.example.com/a.png", False, ["--oref www.example.com/a.png: not an http(s) URL"], []),
    ("a cat --sref cat-style", False, ["--sref cat-style: 'cat-style' is not an image URL nor one of the style"], []),
    ("a cat --sref", False, ["--sref: needs http(s) image URLs, style codes (numbers) or random"], []),
    (
        "a cat --oref https://a.com/1.png https://a.com/2.png",
        False,
        ["--oref takes one image URL"],
        [],
    ),
    (
        "https://a.com/1.png https://a.com/2.png --sref 123",
        False,
        ["--sref 123: --sref applies to prompts with text only"],
        [],
    ),
    # -- empty and too long -------------------------------------------------------------------------
    ("", False, ["the prompt has no text: describe the image you want"], []),
    ("   --ar 1:1", False, ["the prompt has no text"], []),
    ("https://cdn.example.com/a.png --ar 1:1", False, ["one image URL and no text"], []),
    ("a cat " * 1001, False, ["characters and Discord accepts at most 6000"], []),
    # -- unknown, deprecated and version-dependent: warnings only -----------------------------------
    ("a cat --foo 3", True, [], ["--foo is not a parameter this server knows; Midjourney may reject it"]),
    ("a cat --stylise 100", True, [], ["--stylise is not a parameter", "did you mean --stylize?"]),
    ("a cat --upbeta", True, [], ["--upbeta chose a retired upscaler"]),
    ("a cat --v 9", True, [], ["--v 9: newer than the values this server knows"]),
    ("a cat --niji 8", True, [], ["--niji 8: newer than the values"]),
    ("a cat --q 4 --v 6", True, [], ["--q 4: with --v 6 it accepts .25, .5, 1; Midjourney may refuse it"]),
    ("a cat --q .25 --v 7", True, [], ["--q .25: with --v 7 it accepts 1, 2, 4"]),
    ("a cat --exp 20 --v 6.1", True, [], ["--exp 20: works with v7, v8; with --v 6.1 Midjourney may refuse"]),
    ("a cat --cref https://a.com/f.png --v 7", True, [], ["--cref https://a.com/f.png: works with v6, niji 6"]),
    ("a cat --style cute --niji 6", True, [], ["--style cute: this style is for niji 5"]),
    ("a cat -- sitting", True, [], ["a lone '--' is read as text"]),
    # -- permutations and repeats ---------------------------------------------------------------------
    ("a {red, blue} cat --r 3", True, [], ["this prompt runs 6 jobs (2 permutations × --r 3)"]),
    ("a cat --ar {16:9, 1:1}", True, [], ["this prompt runs 2 jobs"]),
    ("a cat --ar {16:9, 1/1}", False, ["--ar 1/1: aspect ratio must be W:H"], []),
    ("a {red, blue} {cat, dog, owl} --repeat 10", False, ["would run 60 jobs", "at most 40"], []),
]


@pytest.mark.parametrize(("prompt", "ok", "errors", "warnings"), CASES, ids=[c[0][:60] or "empty" for c in CASES])
def test_verdict_and_messages(prompt: str, ok: bool, errors: list[str], warnings: list[str]) -> None:
    check = check_prompt(prompt)
    assert check.ok is ok, (check.errors, check.warnings)
    assert check.ok == (not check.errors)
    for fragment in errors:
        assert any(fragment in message for message in check.errors), (fragment, check.errors)
    for fragment in warnings:
        assert any(fragment in message for message in check.warnings), (fragment, check.warnings)
    if ok and not warnings:
        assert check.warnings == []


def test_table_has_forty_cases() -> None:
    assert len(CASES) >= 40


def test_every_error_gives_an_example_or_a_fix() -> None:
    for prompt, _ok, _, _ in CASES:
        for message in check_prompt(prompt).errors:
            assert "e.g." in message or "keep one" in message or "shorten" in message or "use fewer" in message, (
                prompt,
                message,
            )


def test_params_text_and_images() -> None:
    check = check_prompt(
        "https://x.com/a--b.png <https://y.com/c.png> a lighthouse at dusk, stormy sea "
        "--no boats, people on the pier --ar 16:9 --s 250 --sref 123 https://z.com/s.png --tile --p"
    )
    assert check.ok, check.errors
    assert check.image_urls == ["https://x.com/a--b.png", "https://y.com/c.png"]
    assert check.text == "a lighthouse at dusk, stormy sea"
    assert check.params == {
        "no": ["boats", "people on the pier"],
        "aspect": "16:9",
        "stylize": "250",
        "sref": ["123", "https://z.com/s.png"],
        "tile": True,
        "profile": True,
    }
    assert check.jobs == 1


def test_em_dash_parameters_are_read_like_double_dashes() -> None:
    check = check_prompt("a cat —ar 16:9 —no dogs, birds —niji 6")
    assert check.params == {"aspect": "16:9", "no": ["dogs", "birds"], "niji": "6"}
    assert check.text == "a cat"


def test_unknown_parameter_keeps_its_value_and_stays_sendable() -> None:
    check = check_prompt("a cat --newthing 5 --ar 1:1")
    assert check.ok
    assert check.params == {"newthing": "5", "aspect": "1:1"}


def test_jobs_counts_nested_permutations() -> None:
    assert check_prompt("a {red, {light, dark} blue} cat").jobs == 3
    assert check_prompt("a {unclosed cat").jobs == 1


def test_table_loads_and_names_are_unique() -> None:
    table = default_table()
    assert {"aspect", "chaos", "stylize", "quality", "version", "niji", "sref", "no", "repeat"} <= set(table.specs)
    assert table.names["ar"].name == "aspect"
    assert table.names["personalize"].name == "profile"


def _shipped() -> dict[str, Any]:
    text = resources.files("mcp_midjourney.midjourney").joinpath("params.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def test_a_bad_table_edit_is_named() -> None:
    data = _shipped()
    data["parameters"]["chaos"]["kind"] = "integer"
    with pytest.raises(ValueError, match="'chaos': kind must be one of"):
        load_table(data)
    data = _shipped()
    data["parameters"]["seed"]["aliases"] = ["s"]
    with pytest.raises(ValueError, match="--s belongs to two parameters"):
        load_table(data)


def test_a_custom_table_is_honoured() -> None:
    data = _shipped()
    data["parameters"]["chaos"]["max"] = 50
    check = check_prompt("a cat --c 60", load_table(data))
    assert not check.ok
    assert "--c goes from 0 to 50" in check.errors[0]
