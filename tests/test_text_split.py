"""X's weighted length (its own conformance cases) and thread splitting (property-tested)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.text_split import split_thread, weighted_length

REFERENCE = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "twitter-text-validate.yml"
)
V3_GROUPS = ("WeightedTweetsWithDiscountedEmojiCounterTest", "UnicodeDirectionalMarkerCounterTest")


def conformance_cases() -> list[object]:
    if not REFERENCE.exists():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI needs {REFERENCE} (shared/reference beside the clone)")
        return [
            pytest.param(
                None,
                id="no-shared-reference",
                marks=pytest.mark.skip(
                    reason=f"{REFERENCE} is not here (a clone without ../shared); CI runs these"
                ),
            )
        ]
    tests = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))["tests"]
    return [
        pytest.param(case, id=f"{group}:{case['description']}")
        for group in V3_GROUPS
        for case in tests[group]
    ]


@pytest.mark.parametrize("case", conformance_cases())
def test_weighted_length_passes_xs_own_v3_conformance_cases(case: dict) -> None:
    assert weighted_length(case["text"]) == case["expected"]["weightedLength"]


def test_all_v3_cases_are_there() -> None:
    if not REFERENCE.exists() and os.environ.get("CI") != "true":
        pytest.skip(f"{REFERENCE} is not here (a clone without ../shared); CI runs this")
    assert len(conformance_cases()) == 24  # 22 discounted-emoji + 2 directional-marker cases


TOKENS = st.sampled_from(
    [
        "child",
        "labour",
        "inspectors",
        "visited",
        "farms",
        "schools.",
        "Progress!",
        "why?",
        "https://example.org/a/long/path?with=query",
        "http://t.co/x",
        "#EndChildLabour2021",
        "#AchieveSDG87",
        "@ilo",
        "@unicef",
        "👍",
        "👨‍👩‍👧",
        "🇬🇭",
        "👍🏽",
        "児童労働",
        "لا",
        "Ωmega",
        "supercalifragilisticexpialidocious" * 3,
    ]
)
SEPARATORS = st.sampled_from([" ", " ", " ", "\n", "\n\n"])


@st.composite
def texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(TOKENS, min_size=1, max_size=160))
    out = words[0]
    for word in words[1:]:
        out += draw(SEPARATORS) + word
    return out


NUMBER = re.compile(r" \(\d+/\d+\)$")


@settings(max_examples=150, deadline=None)
@given(texts())
def test_every_part_fits_and_the_parts_give_back_the_text(text: str) -> None:
    parts = split_thread(text)
    assert all(weighted_length(part) <= 280 for part in parts)
    if len(parts) == 1:
        assert parts == [text.strip()]
        return
    assert [NUMBER.search(p).group(0) for p in parts] == [  # type: ignore[union-attr]
        f" ({i}/{len(parts)})" for i in range(1, len(parts) + 1)
    ]
    bodies = [NUMBER.sub("", part) for part in parts]
    assert " ".join(bodies).split() == text.split(), "same words, same order, none cut"


def test_sentences_are_preferred_and_entities_kept_whole() -> None:
    sentence = "Our inspectors visited forty cocoa farms in the Ashanti region this month. "
    text = sentence * 6 + "Read more https://example.org/report #EndChildLabour2021 @ilo 👨‍👩‍👧"
    parts = split_thread(text)
    assert len(parts) == 3
    assert all(NUMBER.sub("", p).endswith(".") for p in parts[:-1]), "cut after a sentence"
    assert "https://example.org/report #EndChildLabour2021 @ilo 👨‍👩‍👧" in parts[-1]


def test_telegram_splits_only_past_4096_characters() -> None:
    text = "word " * 819  # 4,095 characters once stripped
    assert split_thread(text, limit=4096, measure=len) == [text.strip()]
    longer = "word " * 2000
    parts = split_thread(longer, limit=4096, measure=len)
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)


def test_a_word_longer_than_a_post_is_cut_between_characters_not_inside_an_emoji() -> None:
    word = "a" * 270 + "👨‍👩‍👧" * 10 + "b" * 100
    parts = split_thread(word)
    assert all(weighted_length(part) <= 280 for part in parts)
    assert "".join(NUMBER.sub("", part) for part in parts) == word
    assert all(NUMBER.sub("", part)[-1] != "\u200d" for part in parts), "no dangling ZWJ"
