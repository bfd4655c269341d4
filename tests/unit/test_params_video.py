"""The prompt check on the video and v7/v8 parameters (protocol.md §7): each rule of params.json, one case or more.

--video animates a leading image; --motion, --loop, --end and --bs need --video; --loop and --end exclude each
other; --ow needs --oref; --oref takes one image; --exp, --draft and --p/--profile are V7/V8 parameters that pass.
"""

from __future__ import annotations

import pytest

from mcp_midjourney.midjourney.params import check_prompt, default_table

IMAGE = "https://cdn.example.com/start.png"

# (prompt, ok, fragments of some error, fragments of some warning)
CASES: list[tuple[str, bool, list[str], list[str]]] = [
    # --video: an image with or without words, the motion, raw, a loop or an end frame, a batch size
    (f"{IMAGE} --video", True, [], []),
    (f"{IMAGE} waves roll in --video 1 --motion low --raw", True, [], []),
    (f"{IMAGE} waves roll in --video --motion high --loop --bs 4", True, [], []),
    (f"{IMAGE} waves roll in --video --end https://cdn.example.com/last.png --bs 2", True, [], []),
    (f"{IMAGE} waves --video 2", True, [], ["--video 2: newer than the values"]),
    ("waves roll in --video", False, ["--video: --video animates an image: start the prompt with an image URL"], []),
    (f"{IMAGE} waves --video --motion fast", False, ["--motion fast: --motion accepts low, high"], []),
    (f"{IMAGE} waves --video --bs 3", False, ["--bs 3: --bs accepts 1, 2, 4"], []),
    (f"{IMAGE} waves --video --end", False, ["--end: needs"], []),
    (f"{IMAGE} waves --video --end last.png", False, ["--end last.png: 'last.png' is not an image URL"], []),
    (
        f"{IMAGE} waves --video --loop --end https://a.com/l.png",
        False,
        ["--loop and --end https://a.com/l.png together"],
        [],
    ),
    # video parameters without --video
    ("a cat --motion low", False, ["--motion low: --motion works only with --video", "e.g. '"], []),
    ("a cat --loop", False, ["--loop: --loop works only with --video"], []),
    ("a cat --end https://a.com/l.png", False, ["--end https://a.com/l.png: --end works only with --video"], []),
    ("a cat --bs 2", False, ["--bs 2: --bs works only with --video"], []),
    # --raw is also a V7 image parameter
    ("a cat --raw --v 7", True, [], []),
    # --oref / --ow
    ("a knight --oref https://a.com/o.png --ow 250 --v 7", True, [], []),
    ("a knight --ow 250", False, ["--ow 250: --ow works only with --oref"], []),
    ("a knight --oref https://a.com/o.png --ow 2000", False, ["--ow 2000: out of range; --ow goes from 1 to 1000"], []),
    ("a knight --oref https://a.com/o.png --v 6.1", True, [], ["--oref https://a.com/o.png: works with v7, v8"]),
    # --exp, --draft, --p / --profile on v7 and v8
    ("a cat --exp 50 --v 8", True, [], []),
    ("a cat --exp 101", False, ["--exp 101: out of range; --exp goes from 0 to 100"], []),
    ("a cat --draft --v 8", True, [], []),
    ("a cat --draft --v 6", True, [], ["--draft: works with v7, v8"]),
    ("a cat --p abc123 --v 8", True, [], []),
    ("a cat --profile", True, [], []),
    ("a cat --p bad/code", False, ["--p bad/code: 'bad/code' is not one of"], []),
]


@pytest.mark.parametrize(("prompt", "ok", "errors", "warnings"), CASES, ids=[c[0][-60:] for c in CASES])
def test_video_and_v7_v8_rules(prompt: str, ok: bool, errors: list[str], warnings: list[str]) -> None:
    check = check_prompt(prompt)
    assert check.ok is ok, (check.errors, check.warnings)
    for fragment in errors:
        assert any(fragment in message for message in check.errors), (fragment, check.errors)
    for fragment in warnings:
        assert any(fragment in message for message in check.warnings), (fragment, check.warnings)
    if ok and not warnings:
        assert check.warnings == []
    for message in check.errors:
        assert "e.g." in message or "keep one" in message, message


def test_every_video_parameter_is_in_the_table_with_its_rule() -> None:
    specs = default_table().specs
    for name in ("motion", "loop", "end", "bs"):
        assert specs[name].requires == ("video",), name
    assert specs["video"].requires_image and specs["ow"].requires == ("oref",)
    assert {"video", "motion", "raw", "loop", "end", "bs", "oref", "ow", "exp", "draft", "profile"} <= set(specs)
    assert default_table().names["p"].name == "profile"


def test_a_lone_image_with_video_is_a_prompt_but_without_it_is_not() -> None:
    assert check_prompt(f"{IMAGE} --video").ok
    assert not check_prompt(f"{IMAGE} --ar 1:1").ok


def test_a_table_requiring_an_unknown_parameter_is_named() -> None:
    import json
    from importlib import resources

    from mcp_midjourney.midjourney.params import load_table

    text = resources.files("mcp_midjourney.midjourney").joinpath("params.json").read_text(encoding="utf-8")
    data = json.loads(text)
    data["parameters"]["motion"]["requires"] = ["vidoe"]
    with pytest.raises(ValueError, match="'motion' requires unknown parameters"):
        load_table(data)
